"""Classification: the runbook's examples as configured rules, precedence, sender severities."""

from __future__ import annotations

import pytest

from services.triage.classify import EXTERNAL_SEVERITY, Classifier
from services.triage.grouping import GroupingPolicy
from shared.events import AlertRaised, Level, Severity
from shared.settings import ConfigError, TriageSettings, load_settings

SETTINGS = TriageSettings()
CLASSIFY = Classifier(
    SETTINGS.rules, Level.MEDIUM, Level.MEDIUM, GroupingPolicy.of(SETTINGS).canonical
)


@pytest.mark.parametrize(
    ("alert", "severity", "rule"),
    [
        (AlertRaised(service="edge", summary="Complete system outage"), "P0", "complete outage"),
        (AlertRaised(service="x", summary="all services are down"), "P0", "complete outage"),
        (AlertRaised(service="db", description="index corrupted"), "P0", "database corruption"),
        (AlertRaised(service="backend", check="health"), "P1", "backend API down"),
        (AlertRaised(service="sutazai-ollama", check="tags"), "P1", "Ollama failure"),
        (AlertRaised(service="PostgreSQL", check="ready"), "P1", "database failure"),
        (AlertRaised(service="agents", summary="agent crashed"), "P2", "single agent failure"),
        (
            AlertRaised(service="backend", summary="p99 latency high"),
            "P2",
            "performance degradation",
        ),
        (AlertRaised(service="web", summary="UI glitch in header"), "P3", "UI glitch"),
        (AlertRaised(service="x", summary="non-critical warning"), "P3", "non-critical warning"),
    ],
)
def test_runbook_examples_are_the_default_rules(
    alert: AlertRaised, severity: str, rule: str
) -> None:
    verdict = CLASSIFY(alert)
    assert verdict.severity is Severity(severity)
    assert verdict.reason == f"rule {rule!r}"


def test_alertname_label_is_searched_with_camel_case_split() -> None:
    alert = AlertRaised(service="x", labels={"alertname": "DatabaseCorruption"})
    assert CLASSIFY(alert).reason == "rule 'database corruption'"
    alert = AlertRaised(service="x", labels={"alertname": "BackendLatencyHigh"})
    assert CLASSIFY(alert).reason == "rule 'performance degradation'"


def test_hints_beat_rules_and_flags_beat_hints() -> None:
    hinted = AlertRaised(service="backend", impact="low", urgency="low")
    assert CLASSIFY(hinted).severity is Severity.P3
    flagged = AlertRaised(service="backend", impact="low", urgency="low", security=True)
    verdict = CLASSIFY(flagged)
    assert (verdict.severity, verdict.reason) == (Severity.P0, "security breach suspected")


def test_a_single_hint_overrides_half_of_a_rule() -> None:
    verdict = CLASSIFY(AlertRaised(service="backend", urgency="high"))
    assert (verdict.impact, verdict.urgency, verdict.severity) == (
        Level.HIGH,
        Level.HIGH,
        Severity.P0,
    )
    assert verdict.reason == "rule 'backend API down' with the alert's own hint"


def test_rules_beat_the_sender_severity() -> None:
    alert = AlertRaised(service="backend", external_severity="info")
    assert CLASSIFY(alert).reason == "rule 'backend API down'"


@pytest.mark.parametrize(
    ("sender", "severity"),
    [
        ("critical", "P0"),
        ("error", "P1"),
        ("warning", "P2"),
        ("info", "P3"),
        ("CRITICAL", "P0"),
        ("alerting", "P1"),
        ("no_data", "P2"),
    ],
)
def test_sender_severities(sender: str, severity: str) -> None:
    verdict = CLASSIFY(AlertRaised(service="nothing-matches", external_severity=sender))
    assert verdict.severity is Severity(severity)
    assert verdict.reason == f"sender severity {sender.lower()!r}"


def test_every_documented_sender_severity_is_a_matrix_cell() -> None:
    assert {"critical", "error", "warning", "info", "alerting", "ok"} <= set(EXTERNAL_SEVERITY)


def test_unknown_sender_severity_falls_to_the_default() -> None:
    verdict = CLASSIFY(AlertRaised(service="nothing-matches", external_severity="weird"))
    assert (verdict.severity, verdict.reason) == (Severity.P1, "unclassified")


def test_rules_come_from_configuration() -> None:
    settings = load_settings(
        None,
        triage={
            "rules": [
                {"name": "disk", "checks": ["disk"], "impact": "low", "urgency": "high"},
                {
                    "name": "pd",
                    "external_severities": ["warning"],
                    "impact": "high",
                    "urgency": "high",
                },
            ]
        },
    ).triage
    classify = Classifier(settings.rules, Level.LOW, Level.LOW, str.lower)
    assert classify(AlertRaised(service="a", check="disk")).severity is Severity.P1
    assert classify(AlertRaised(service="a", external_severity="Warning")).reason == "rule 'pd'"
    assert classify(AlertRaised(service="backend")).reason == "unclassified"


def test_invalid_rule_is_named() -> None:
    with pytest.raises(ConfigError, match=r"triage\.rules\.0\.pattern"):
        load_settings(
            None,
            triage={"rules": [{"name": "x", "pattern": "(", "impact": "low", "urgency": "low"}]},
        )
    with pytest.raises(ConfigError, match=r"triage\.rules\.0\.impact"):
        load_settings(None, triage={"rules": [{"name": "x", "impact": "huge", "urgency": "low"}]})


@pytest.mark.parametrize("name", ["disk\x00full", "disk\x1b[31m", "two\nlines"])
def test_a_rule_name_with_a_control_character_is_refused_at_start(name: str) -> None:
    # Triage publishes the name in SeverityAssigned's reason without validating the event
    # again (shared.events.trusted_json): readers would dead-letter what it wrote.
    with pytest.raises(ConfigError, match=r"triage\.rules\.0\.name"):
        load_settings(None, triage={"rules": [{"name": name, "impact": "low", "urgency": "low"}]})
