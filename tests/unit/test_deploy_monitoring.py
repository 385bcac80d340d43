"""deploy/prometheus and deploy/grafana: well-formed, and naming only metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import services.cli  # importing it registers every service's metrics

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
_METRIC = re.compile(r"\bjarvis_[a-z_]+\b")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _exported() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_rules_cover_lag_dead_letters_and_remediation_failures() -> None:
    rules = _rules()
    names = {r["alert"] for r in rules}
    assert {
        "JarvisResponderConsumerLag",
        "JarvisResponderDeadLetters",
        "JarvisResponderRemediationFailures",
    } <= names
    for rule in rules:
        assert rule["expr"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_rules_and_dashboard_name_only_exported_metrics() -> None:
    exported = _exported()
    texts = {
        "alerts.yml": (ROOT / "deploy/prometheus/alerts.yml").read_text(),
        "dashboard": (ROOT / "deploy/grafana/jarvis-responder.json").read_text(),
    }
    for where, text in texts.items():
        used = set(_METRIC.findall(text))
        assert used, where
        assert used <= exported, (where, sorted(used - exported))


def test_scrape_config_finds_every_service_and_loads_the_rules() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = config["scrape_configs"]
    names = {n for sd in job["dns_sd_configs"] for n in sd["names"]}
    assert names == set(services.cli.SERVICES)
    assert all(sd["port"] == 10300 for sd in job["dns_sd_configs"])


def test_dashboard_panels_have_queries_and_datasources() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/jarvis-responder.json").read_text())
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    titles = " ".join(p["title"] for p in panels)
    for topic in ("severity", "MTTA", "MTTR", "latency"):
        assert topic in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["targets"], panel["title"]
        uid = panel["datasource"]["uid"]
        assert uid.startswith("${")
        assert uid[2:-1] in variables
        for target in panel["targets"]:
            assert target.get("expr") or target.get("rawSql"), panel["title"]
