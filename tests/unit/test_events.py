"""Envelope defaults, fingerprints and parsing of the event contracts."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.events import (
    EVENT_TYPES,
    AlertRaised,
    AlertSource,
    AlertStatus,
    IncidentResolved,
    NoteAdded,
    derive_fingerprint,
    parse_event,
)
from shared.streams import ALERTS, INCIDENTS, stream_for


def test_envelope_defaults_are_filled() -> None:
    alert = AlertRaised(service="backend")
    assert alert.event_type == "AlertRaised"
    assert alert.schema_version == 1
    assert uuid.UUID(alert.event_id)
    assert alert.occurred_at.tzinfo is not None
    assert alert.incident_id is None
    assert alert.status is AlertStatus.FIRING
    assert alert.source is AlertSource.STREAM


def test_naive_timestamps_are_taken_as_utc() -> None:
    alert = AlertRaised(service="backend", occurred_at=datetime(2026, 1, 1, 12, 0))
    assert alert.occurred_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_events_are_frozen() -> None:
    alert = AlertRaised(service="backend")
    with pytest.raises(ValidationError):
        alert.service = "other"  # type: ignore[misc]


def _fingerprint_as_json_dumps(
    source: str, service: str, check: str, labels: dict[str, str]
) -> str:
    """How fingerprints were derived before: stored fingerprints must not change."""
    canonical = json.dumps(
        {"source": source, "service": service, "check": check, "labels": labels},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


_TEXT = st.text(st.characters(codec="utf-8") | st.sampled_from('"\\\x00\n\u2028\ud800é€😀'))


@given(_TEXT, _TEXT, _TEXT, st.dictionaries(_TEXT, _TEXT, max_size=6))
def test_fingerprints_are_those_json_dumps_gave(
    source: str, service: str, check: str, labels: dict[str, str]
) -> None:
    assert derive_fingerprint(source, service, check, labels) == _fingerprint_as_json_dumps(
        source, service, check, labels
    )


def test_known_fingerprints_stay() -> None:
    assert derive_fingerprint("stream", "backend", "health", {"a": "1", "b": "2"}) == (
        _fingerprint_as_json_dumps("stream", "backend", "health", {"b": "2", "a": "1"})
    )
    assert derive_fingerprint("api", "é", "x", {}) == _fingerprint_as_json_dumps(
        "api", "é", "x", {}
    )


def test_fingerprint_is_derived_and_stable() -> None:
    a = AlertRaised(service="backend", check="health", labels={"a": "1", "b": "2"})
    b = AlertRaised(service="backend", check="health", labels={"b": "2", "a": "1"})
    assert (
        a.fingerprint
        == b.fingerprint
        == derive_fingerprint("stream", "backend", "health", {"a": "1", "b": "2"})
    )
    assert a.fingerprint != AlertRaised(service="backend", check="latency").fingerprint
    assert (
        a.fingerprint
        != AlertRaised(service="backend", check="health", labels={"a": "2"}).fingerprint
    )


def test_given_fingerprint_is_kept() -> None:
    assert AlertRaised(service="backend", fingerprint="abc").fingerprint == "abc"


def test_parse_defaults_to_the_streams_first_type() -> None:
    event = parse_event({"service": "ollama"}, ALERTS.events)
    assert isinstance(event, AlertRaised)


def test_parse_rejects_a_type_the_stream_does_not_carry() -> None:
    with pytest.raises(ValueError, match="not accepted here"):
        parse_event({"event_type": "AlertRaised", "service": "x"}, INCIDENTS.events)


def test_parse_names_the_missing_field() -> None:
    with pytest.raises(ValidationError) as info:
        parse_event({"check": "health"}, ALERTS.events)
    assert info.value.errors()[0]["loc"] == ("service",)


def test_wrong_event_type_for_class_is_rejected() -> None:
    with pytest.raises(ValidationError):
        NoteAdded.model_validate({"event_type": "IncidentResolved", "text": "x"})


def test_round_trip_through_json() -> None:
    resolved = IncidentResolved(incident_id=str(uuid.uuid4()), note="fixed")
    again = parse_event(resolved.model_dump(mode="json"), INCIDENTS.events)
    assert again == resolved
    assert stream_for(again) is INCIDENTS


def test_every_event_type_is_registered_under_its_name() -> None:
    for name, cls in EVENT_TYPES.items():
        assert name == cls.EVENT_TYPE
