"""An incident's JSON form: what triage writes it reads back as the same value; documents
read again (or written by triage itself) are not parsed again."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from services.triage.incident import AlertSlot, Incident, Status
from services.triage.memo import Memo
from services.triage.playbooks import Run, RunStatus
from shared.events import Level, Severity

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _incident(**kw: object) -> Incident:
    slot = AlertSlot("postgres", False, Severity.P1, Level.HIGH, Level.LOW, "dépendance", T0)
    base: dict[str, object] = {
        "id": "inc-1",
        "opened_at": T0,
        "status": Status.QUIET,
        "severity": Severity.P0,
        "impact": Level.HIGH,
        "urgency": Level.HIGH,
        "reason": "3 systems failing at once (backend, postgres, redis) — «quoted»",
        "title": 'backend: "health" \u2028 ✓',
        "root_cause": "postgres",
        "services": ("backend", "postgres", "redis"),
        "worst": slot,
        "firing": {"backend": 0, "postgres": 2, "redis": 1},
        "alert_count": 4,
        "quiet_since": T0 + timedelta(seconds=5),
        "data_loss": True,
        "security": True,
        "playbook": "database_connection_failures",
        "drill_id": "drill-1",
        "resolved_by": "alice",
    }
    base.update(kw)
    return Incident(**base)  # type: ignore[arg-type]


def test_the_json_reads_back_as_the_same_incident() -> None:
    for inc in (_incident(), _incident(quiet_since=None, playbook=None, drill_id=None)):
        raw = inc.to_json()
        assert Incident._parse(raw.encode()) == inc  # parsed, not taken from the cache
        assert json.loads(raw)["worst"]["reason"] == "dépendance"  # non-ASCII kept as text
        assert AlertSlot.from_json(json.dumps(inc.worst.as_dict())) == inc.worst


def test_an_incident_written_is_read_back_without_parsing() -> None:
    inc = _incident(id="inc-written")
    raw = inc.to_json()
    assert Incident.from_json(raw) is inc
    assert Incident.from_json(raw.encode()) is inc


def test_slots_and_runs_read_again_are_the_values_parsed_before() -> None:
    slot = _incident().worst
    raw = slot.to_json().encode()
    assert AlertSlot.from_json(raw) == slot
    assert AlertSlot.from_json(bytes(raw)) is AlertSlot.from_json(raw.decode())
    run = Run("inc-1", "diagnostics_only", "backend", 2, RunStatus.PAUSED, "waiting")
    assert Run.from_json(run.to_json()) == run
    assert Run.from_json(run.to_json().encode()) is Run.from_json(run.to_json())


def test_the_memo_is_bounded_least_recently_used_first() -> None:
    parsed: list[bytes] = []

    def parse(raw: bytes) -> str:
        parsed.append(raw)
        return raw.decode().upper()

    memo = Memo(parse, size=2)
    assert (memo(b"a"), memo("b"), memo(b"a")) == ("A", "B", "A")  # a: used again
    memo.remember(b"c", "C")  # b is now the least recently used: it goes
    assert (memo(b"c"), memo(b"a"), memo(b"b")) == ("C", "A", "B")
    assert parsed == [b"a", b"b", b"b"]
