"""Alerts of other monitoring systems, mapped to AlertRaised: pure functions, no I/O.

Alertmanager webhook v4 and Grafana's unified-alerting webhook arrive pushed; Prometheus'
`/api/v1/alerts` and Grafana's `/api/alerts` are polled. Fingerprints are stable: the
sender's own when it sends one, else the FNV-1a label fingerprint Prometheus and
Alertmanager use, so a resolve matches its firing alert and a polled Prometheus alert has
the fingerprint Alertmanager would give it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.events import AlertRaised, AlertSource, AlertStatus

__all__ = [
    "PayloadError",
    "from_alertmanager",
    "from_grafana",
    "from_grafana_api",
    "from_prometheus_api",
    "label_fingerprint",
    "service_of",
]

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF


class PayloadError(ValueError):
    """The body is not acceptable; `errors` name each bad field (FastAPI's 422 shape)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors

    @classmethod
    def from_validation(cls, exc: ValidationError) -> PayloadError:
        return cls(
            [
                {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
                for err in exc.errors()
            ]
        )


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """Prometheus' `LabelSet.Fingerprint()` (FNV-1a 64 over sorted name/value pairs)."""
    value = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                value = ((value ^ byte) * _FNV_PRIME) & _MASK
            value = ((value ^ 0xFF) * _FNV_PRIME) & _MASK
    return f"{value:016x}"


def service_of(labels: Mapping[str, str], service_labels: Sequence[str], default: str) -> str:
    """The first non-empty label naming the service, else the sender's name."""
    for name in service_labels:
        if labels.get(name):
            return labels[name][:128]
    return default


def _real_time(value: datetime | None) -> datetime | None:
    """Alertmanager says "no end" with Go's zero time 0001-01-01T00:00:00Z."""
    if value is None or value.year <= 1:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _lines(*parts: str) -> str:
    return "\n".join(p for p in parts if p)[:16384]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AlertmanagerAlert(_Lenient):
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(default="", max_length=128)


class AlertmanagerWebhook(_Lenient):
    version: Literal["4"] = "4"
    groupKey: str = Field(default="", max_length=1024)
    truncatedAlerts: int = Field(default=0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    externalURL: str = ""
    alerts: list[AlertmanagerAlert]


def from_alertmanager(
    body: Any, service_labels: Sequence[str], now: datetime
) -> tuple[list[AlertRaised], int]:
    """One AlertRaised per alert of a webhook v4 body, and its `truncatedAlerts`."""
    try:
        hook = AlertmanagerWebhook.model_validate(body)
    except ValidationError as exc:
        raise PayloadError.from_validation(exc) from exc
    alerts = []
    for item in hook.alerts:
        name = item.labels.get("alertname", "alertmanager")
        fingerprint = item.fingerprint or label_fingerprint(item.labels)
        alerts.append(
            AlertRaised(
                occurred_at=now,
                producer="detector",
                source=AlertSource.ALERTMANAGER,
                fingerprint=f"am:{fingerprint}",
                service=service_of(item.labels, service_labels, "alertmanager"),
                check=name[:128],
                status=AlertStatus(item.status),
                summary=(item.annotations.get("summary") or name)[:1024],
                description=_lines(
                    item.annotations.get("description", ""),
                    item.generatorURL and f"source: {item.generatorURL}",
                ),
                labels=item.labels,
                external_severity=(item.labels.get("severity") or None),
                group_key=hook.groupKey or None,
                starts_at=_real_time(item.startsAt),
                ends_at=_real_time(item.endsAt) if item.status == "resolved" else None,
            )
        )
    return alerts, hook.truncatedAlerts


class GrafanaAlert(_Lenient):
    status: Literal["firing", "resolved"] | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    values: dict[str, float | None] | None = None
    valueString: str = ""
    generatorURL: str = ""
    fingerprint: str = Field(default="", max_length=128)
    dashboardURL: str = ""
    panelURL: str = ""


class GrafanaWebhook(_Lenient):
    version: Literal["1"] = "1"
    status: Literal["firing", "resolved"] | None = None
    state: str = Field(default="", max_length=64)
    orgId: int | None = None
    title: str = ""
    message: str = ""
    groupKey: str = Field(default="", max_length=1024)
    truncatedAlerts: int = Field(default=0, ge=0)
    alerts: list[GrafanaAlert]


def from_grafana(
    body: Any, service_labels: Sequence[str], now: datetime
) -> tuple[list[AlertRaised], int]:
    """One AlertRaised per alert of a Grafana unified-alerting webhook body."""
    try:
        hook = GrafanaWebhook.model_validate(body)
    except ValidationError as exc:
        raise PayloadError.from_validation(exc) from exc
    overall = hook.status or ("resolved" if hook.state == "ok" else "firing")
    alerts = []
    for item in hook.alerts:
        status = item.status or overall
        name = item.labels.get("alertname") or hook.title or "grafana"
        values = ", ".join(f"{k}={v:g}" for k, v in (item.values or {}).items() if v is not None)
        alerts.append(
            AlertRaised(
                occurred_at=now,
                producer="detector",
                source=AlertSource.GRAFANA,
                fingerprint=f"grafana:{item.fingerprint or label_fingerprint(item.labels)}",
                service=service_of(item.labels, service_labels, "grafana"),
                check=name[:128],
                status=AlertStatus(status),
                summary=(item.annotations.get("summary") or hook.title or name)[:1024],
                description=_lines(
                    item.annotations.get("description", "") or hook.message,
                    values and f"values: {values}",
                    item.valueString and f"value string: {item.valueString}",
                    item.dashboardURL and f"dashboard: {item.dashboardURL}",
                    item.panelURL and f"panel: {item.panelURL}",
                ),
                labels=item.labels,
                external_severity=(item.labels.get("severity") or hook.state or None),
                group_key=hook.groupKey or None,
                starts_at=_real_time(item.startsAt),
                ends_at=_real_time(item.endsAt) if status == "resolved" else None,
            )
        )
    return alerts, hook.truncatedAlerts


class _PromAlert(_Lenient):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    state: str
    activeAt: datetime | None = None
    value: str | float | None = None


class _PromData(_Lenient):
    alerts: list[_PromAlert]


class _PromAnswer(_Lenient):
    status: Literal["success"]
    data: _PromData


def from_prometheus_api(
    body: Any, service_labels: Sequence[str], now: datetime, *, prefix: str = "am", sender: str
) -> dict[str, AlertRaised]:
    """Firing alerts of a Prometheus-shaped `/api/v1/alerts` answer, by fingerprint."""
    try:
        answer = _PromAnswer.model_validate(body)
    except ValidationError as exc:
        raise PayloadError.from_validation(exc) from exc
    firing: dict[str, AlertRaised] = {}
    for item in answer.data.alerts:
        if item.state != "firing":
            continue  # pending alerts have not passed their `for:` yet
        name = item.labels.get("alertname", sender)
        alert = AlertRaised(
            occurred_at=now,
            producer="detector",
            source=AlertSource.PROBE,
            fingerprint=f"{prefix}:{label_fingerprint(item.labels)}",
            service=service_of(item.labels, service_labels, sender),
            check=name[:128],
            summary=(item.annotations.get("summary") or name)[:1024],
            description=_lines(
                item.annotations.get("description", ""),
                f"polled from {sender}" + (f", value {item.value}" if item.value else ""),
            ),
            labels=item.labels,
            external_severity=item.labels.get("severity") or None,
            starts_at=_real_time(item.activeAt),
        )
        firing[alert.fingerprint] = alert
    return firing


class _LegacyGrafanaAlert(_Lenient):
    id: int
    name: str = ""
    state: str
    dashboardUid: str = ""
    panelId: int | None = None
    newStateDate: datetime | None = None
    url: str = ""


def from_grafana_api(
    body: Any, service_labels: Sequence[str], now: datetime
) -> dict[str, AlertRaised]:
    """Firing alerts of Grafana's `/api/alerts` (legacy list) or of its Prometheus-shaped
    unified-alerting API, by fingerprint."""
    if isinstance(body, dict):
        return from_prometheus_api(body, service_labels, now, prefix="grafana", sender="grafana")
    if not isinstance(body, list):
        raise PayloadError([{"loc": ["body"], "msg": "expected a list of alerts", "type": "type"}])
    firing: dict[str, AlertRaised] = {}
    for index, raw in enumerate(body):
        try:
            item = _LegacyGrafanaAlert.model_validate(raw)
        except ValidationError as exc:
            raise PayloadError(
                [
                    {"loc": ["body", index, *e["loc"]], "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors()
                ]
            ) from exc
        if item.state != "alerting":
            continue
        alert = AlertRaised(
            occurred_at=now,
            producer="detector",
            source=AlertSource.PROBE,
            fingerprint=f"grafana:rule:{item.id}",
            service="grafana",
            check=(item.name or f"rule {item.id}")[:128],
            summary=(item.name or f"Grafana alert rule {item.id}")[:1024],
            description=_lines("polled from grafana", item.url and f"dashboard: {item.url}"),
            labels={"rule_id": str(item.id), "dashboard_uid": item.dashboardUid},
            external_severity="alerting",
            starts_at=_real_time(item.newStateDate),
        )
        firing[alert.fingerprint] = alert
    return firing
