"""The detector's configuration: CONTRACT §1 defaults, overrides and errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JARVIS_CONFIG", raising=False)


def test_defaults_follow_the_contract() -> None:
    d = load_settings().detector
    assert [c.name for c in d.docker.containers] == [
        "backend",
        "sutazai-ollama",
        "sutazai-postgres",
        "sutazai-redis",
        "sutazai-neo4j",
        "sutazai-prometheus",
        "sutazai-grafana",
        "sutazai-loki",
    ]
    assert d.docker.cpu_pct == d.docker.memory_pct == 80.0
    assert d.probe_interval_s == 5.0
    assert d.logs.window_s == 600.0
    assert d.prometheus.path == "/api/v1/alerts"
    assert d.grafana.path == "/api/alerts"
    assert d.ollama.canary_model is None


def test_nested_probe_settings_from_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "jarvis.yaml"
    config.write_text(
        "detector:\n"
        "  docker:\n    cpu_pct: 70\n    containers: [{name: app, service: web}]\n"
        "  http_targets:\n    - {name: site, url: 'http://127.0.0.1:8080/'}\n"
        "  heartbeats:\n    - {name: nightly-backup, period_s: 90000}\n"
    )
    monkeypatch.setenv("JARVIS_DETECTOR__FIRE_AFTER", "3")
    d = load_settings(config).detector
    assert d.docker.cpu_pct == 70
    assert d.docker.interval_s == 10.0  # the probe's own default survives a partial section
    assert d.docker.containers[0].service == "web"
    assert d.http_targets[0].url == "http://127.0.0.1:8080/"
    assert d.heartbeats[0].period_s == 90000
    assert d.fire_after == 3


@pytest.mark.parametrize(
    ("detector", "named"),
    [
        ({"logs": {"pattern": "(unclosed"}}, "detector.logs.pattern"),
        ({"docker": {"cpu_pct": 0}}, "detector.docker.cpu_pct"),
        ({"http_targets": [{"name": "a", "url": "ftp://x"}]}, "detector.http_targets.0.url"),
        ({"http_targets": [{"name": "a", "url": "http:///path"}]}, "URL has no host"),
        ({"http_targets": [{"name": "a", "url": "http://h:99999/"}]}, "invalid URL"),
        (
            {"http_targets": [{"name": "a", "url": "http://x"}, {"name": "a", "url": "http://y"}]},
            "duplicate names ['a']",
        ),
        ({"heartbeats": [{"name": "has space", "period_s": 1}]}, "detector.heartbeats.0.name"),
        ({"fire_after": 0}, "detector.fire_after"),
        ({"postgres": {"max_connections_pct": 150}}, "detector.postgres.max_connections_pct"),
    ],
)
def test_invalid_detector_settings_are_named(detector: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, detector=detector)
    assert named in str(caught.value)
