"""Configuration: file, environment overrides, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import ConfigError, load_settings


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("REDIS_URL", "DATABASE_URL", "JARVIS_HTTP_PORT", "JARVIS_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings()
    assert settings.http_host == "127.0.0.1"
    assert settings.http_port == 10300
    assert settings.backend_url == "http://127.0.0.1:10010"
    assert settings.ollama_url == "http://127.0.0.1:10104"
    assert settings.prometheus_url == "http://127.0.0.1:10200"
    assert settings.grafana_url == "http://127.0.0.1:10201"
    assert settings.redis_url is None
    assert settings.sqlalchemy_url.startswith("sqlite+aiosqlite:///")
    assert settings.remediator.enabled is False


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "jarvis.toml"
    config.write_text(
        'http_port = 11000\nbackend_url = "http://127.0.0.1:9"\n[detector]\nprobe_interval_s = 7\n'
    )
    monkeypatch.setenv("JARVIS_HTTP_PORT", "12000")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    settings = load_settings(config)
    assert settings.http_port == 12000
    assert settings.backend_url == "http://127.0.0.1:9"
    assert settings.detector.probe_interval_s == 7
    assert settings.redis_url == "redis://127.0.0.1:1/0"


def test_nested_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JARVIS_DETECTOR__PROBE_INTERVAL_S", "2.5")
    assert load_settings().detector.probe_interval_s == 2.5


def test_yaml_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JARVIS_HTTP_PORT", raising=False)
    config = tmp_path / "jarvis.yaml"
    config.write_text("http_port: 10999\nremediator:\n  enabled: true\n")
    settings = load_settings(config)
    assert settings.http_port == 10999
    assert settings.remediator.enabled is True


def test_invalid_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JARVIS_HTTP_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="http_port"):
        load_settings()


def test_unknown_setting_in_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "jarvis.toml"
    config.write_text("htp_port = 1\n")
    with pytest.raises(ConfigError, match="htp_port"):
        load_settings(config)


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load_settings(tmp_path / "missing.toml")


def test_approval_timeout_must_end_well_before_the_request_is_forgotten() -> None:
    # The remediator keeps a request 7 days: an approval that may come later than that
    # would find nothing to run (and its id would haunt the sweep).
    with pytest.raises(ConfigError, match=r"remediator: .*approval_timeout_s: 691200 s"):
        load_settings(None, remediator={"approval_timeout_s": 8 * 24 * 3600})
    assert load_settings(None, remediator={"approval_timeout_s": 86400}).remediator
