"""Deciding impact and urgency for an alert: pure, so the runbook's logic is unit-tested here.

Order of evidence, most specific first:

1. the alert's flags: data loss or a suspected security breach is high × high (P0);
2. the alert's own `impact` and `urgency` hints (a single hint overrides that half of
   whatever the later steps find);
3. the configured rules (`TriageSettings.rules`, first match wins), whose defaults are the
   runbook's "Severity Levels" examples;
4. the sender's severity (`external_severity`: Alertmanager's `severity` label, PagerDuty's
   severity, Grafana's state), through `EXTERNAL_SEVERITY`;
5. the configured defaults, with the reason "unclassified": an alert is never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.triage.rules import severity_for
from shared.events import AlertRaised, Level, Severity
from shared.settings import TriageRule

__all__ = [
    "EXTERNAL_SEVERITY",
    "Classification",
    "Classifier",
    "CompiledRule",
    "alert_text",
    "classify",
]

# Sender severities → (impact, urgency). Alertmanager's `severity` label is free text by
# convention (critical / error / warning / info); PagerDuty Events v2 has exactly
# critical / error / warning / info; Grafana sends the alert state (alerting / ok / …).
EXTERNAL_SEVERITY: dict[str, tuple[Level, Level]] = {
    "critical": (Level.HIGH, Level.HIGH),  # P0
    "page": (Level.HIGH, Level.HIGH),  # P0
    "error": (Level.HIGH, Level.LOW),  # P1
    "high": (Level.HIGH, Level.LOW),  # P1
    "major": (Level.HIGH, Level.LOW),  # P1
    "alerting": (Level.HIGH, Level.LOW),  # P1 (Grafana: a rule is firing)
    "warning": (Level.MEDIUM, Level.LOW),  # P2
    "medium": (Level.MEDIUM, Level.LOW),  # P2
    "minor": (Level.LOW, Level.MEDIUM),  # P2
    "pending": (Level.LOW, Level.MEDIUM),  # P2 (Grafana: about to fire)
    "no_data": (Level.LOW, Level.MEDIUM),  # P2 (Grafana: the query returned nothing)
    "nodata": (Level.LOW, Level.MEDIUM),  # P2
    "info": (Level.LOW, Level.LOW),  # P3
    "low": (Level.LOW, Level.LOW),  # P3
    "none": (Level.LOW, Level.LOW),  # P3
    "ok": (Level.LOW, Level.LOW),  # P3 (Grafana: normal; arrives as a resolved alert)
    "normal": (Level.LOW, Level.LOW),  # P3
}


@dataclass(frozen=True)
class Classification:
    impact: Level
    urgency: Level
    severity: Severity
    reason: str


@dataclass(frozen=True)
class CompiledRule:
    """A configured rule, ready to match (service names already canonical)."""

    name: str
    services: frozenset[str]
    checks: frozenset[str]
    external_severities: frozenset[str]
    pattern: re.Pattern[str] | None
    impact: Level
    urgency: Level

    @classmethod
    def of(cls, rule: TriageRule, canonical: Callable[[str], str]) -> CompiledRule:
        return cls(
            name=rule.name,
            services=frozenset(canonical(s) for s in rule.services),
            checks=frozenset(c.lower() for c in rule.checks),
            external_severities=frozenset(s.lower() for s in rule.external_severities),
            pattern=re.compile(rule.pattern, re.IGNORECASE) if rule.pattern else None,
            impact=Level(rule.impact),
            urgency=Level(rule.urgency),
        )

    def matches(self, alert: AlertRaised, service: str, text: str) -> bool:
        if self.services and service not in self.services:
            return False
        if self.checks and alert.check.lower() not in self.checks:
            return False
        sender = (alert.external_severity or "").lower()
        if self.external_severities and sender not in self.external_severities:
            return False
        return not (self.pattern and not self.pattern.search(text))


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def alert_text(alert: AlertRaised) -> str:
    """What rules and playbook selectors search: summary, description, check, and the
    alertname label with CamelCase split (`PostgresHighMemory` → `Postgres High Memory`)."""
    alertname = _CAMEL.sub(" ", alert.labels.get("alertname", ""))
    return " ".join(
        part for part in (alert.summary, alert.description, alert.check, alertname) if part
    )


def classify(
    alert: AlertRaised,
    default_impact: Level,
    default_urgency: Level,
    rules: Sequence[CompiledRule] = (),
    service: str | None = None,
) -> Classification:
    """Impact, urgency, severity and the reason, following the order in the module docstring."""
    if alert.data_loss or alert.security:
        impact, urgency = Level.HIGH, Level.HIGH
        reason = "data loss detected" if alert.data_loss else "security breach suspected"
        return Classification(impact, urgency, severity_for(impact, urgency), reason)
    if alert.impact and alert.urgency:
        impact, urgency = alert.impact, alert.urgency
        return Classification(
            impact, urgency, severity_for(impact, urgency), "impact and urgency from the alert"
        )
    found = _from_rules(alert, rules, service or alert.service) or _from_sender(alert)
    if found is None:
        impact = alert.impact or default_impact
        urgency = alert.urgency or default_urgency
        return Classification(impact, urgency, severity_for(impact, urgency), "unclassified")
    impact, urgency, reason = found
    if alert.impact or alert.urgency:
        impact, urgency = alert.impact or impact, alert.urgency or urgency
        reason += " with the alert's own hint"
    return Classification(impact, urgency, severity_for(impact, urgency), reason)


def _from_rules(
    alert: AlertRaised, rules: Sequence[CompiledRule], service: str
) -> tuple[Level, Level, str] | None:
    if not rules:
        return None
    text = alert_text(alert)
    for rule in rules:
        if rule.matches(alert, service, text):
            return rule.impact, rule.urgency, f"rule {rule.name!r}"
    return None


def _from_sender(alert: AlertRaised) -> tuple[Level, Level, str] | None:
    sender = (alert.external_severity or "").lower()
    if sender not in EXTERNAL_SEVERITY:
        return None
    impact, urgency = EXTERNAL_SEVERITY[sender]
    return impact, urgency, f"sender severity {sender!r}"


class Classifier:
    """`classify` bound to the configured rules and defaults."""

    def __init__(
        self,
        rules: Sequence[TriageRule],
        default_impact: Level,
        default_urgency: Level,
        canonical: Callable[[str], str],
    ) -> None:
        self._rules = tuple(CompiledRule.of(r, canonical) for r in rules)
        self._impact = default_impact
        self._urgency = default_urgency
        self._canonical = canonical

    def __call__(self, alert: AlertRaised) -> Classification:
        return classify(
            alert, self._impact, self._urgency, self._rules, self._canonical(alert.service)
        )
