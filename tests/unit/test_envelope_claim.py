"""`own_claim` reads a sender's `event_id` and `occurred_at` only when it sent them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.envelope import _SERVER_OWNED, _Claim, own, own_claim, owned_event_id
from shared.events import AlertRaised, AlertSource

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_the_claim_shortcut_knows_every_claimed_field() -> None:
    # own_claim skips validating the claim when neither of these is in the body
    assert set(_Claim.model_fields) == {"event_id", "occurred_at"}


def test_claims_are_read_when_sent_and_only_then() -> None:
    plain = own_claim({"service": "backend"}, integration="i", source=AlertSource.API, now=NOW)
    assert plain.starts_at is None
    assert plain.occurred_at == NOW
    claimed = own_claim(
        {"service": "backend", "event_id": "mine", "occurred_at": "2026-03-01T11:00:00Z"},
        integration="i",
        source=AlertSource.API,
        now=NOW,
    )
    assert claimed.event_id == owned_event_id("i", "mine")
    assert claimed.starts_at == datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    with pytest.raises(ValidationError) as bad:
        own_claim(
            {"service": "backend", "event_id": ""},
            integration="i",
            source=AlertSource.API,
            now=NOW,
        )
    assert bad.value.errors()[0]["loc"] == ("event_id",)


@pytest.mark.parametrize(
    "claim",
    [
        {"service": "backend"},
        {"service": "backend", "fingerprint": "f" * 256, "labels": {"a": "1"}},
        {"service": "db", "incident_id": "x", "integration": "forged", "status": "resolved"},
        {"service": "db", "event_id": "e-1", "occurred_at": "2026-03-01T11:00:00Z"},
    ],
)
def test_own_claim_is_own_of_the_validated_claim(claim: dict[str, object]) -> None:
    """own_claim sets the owned fields in place; the alert is the one `own` would copy."""
    alert = own_claim(claim, integration="team-a", source=AlertSource.API, now=NOW)
    event_id = alert.event_id
    data = {k: v for k, v in claim.items() if k not in _SERVER_OWNED}
    if "occurred_at" in claim:
        data["starts_at"] = claim["occurred_at"]
    copied = own(
        AlertRaised.model_validate(
            {
                **data,
                "source": "api",
                "producer": "detector",
                "occurred_at": NOW,
                "event_id": event_id,
            }
        ),
        integration="team-a",
        event_id=event_id,
    )
    assert alert == copied
    assert alert.to_json() == copied.to_json()
    assert alert.model_fields_set <= copied.model_fields_set
    assert alert.fingerprint.startswith("ext:team-a:")
