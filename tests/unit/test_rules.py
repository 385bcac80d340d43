"""The runbook's severity matrix and response times (CONTRACT §3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.triage.rules import response_due, severity_for
from shared.events import Level, Severity

H, M, L = Level.HIGH, Level.MEDIUM, Level.LOW


@pytest.mark.parametrize(
    ("impact", "urgency", "expected"),
    [
        (H, L, Severity.P1),
        (H, M, Severity.P0),
        (H, H, Severity.P0),
        (M, L, Severity.P2),
        (M, M, Severity.P1),
        (M, H, Severity.P0),
        (L, L, Severity.P3),
        (L, M, Severity.P2),
        (L, H, Severity.P1),
    ],
)
def test_every_matrix_cell(impact: Level, urgency: Level, expected: Severity) -> None:
    assert severity_for(impact, urgency) is expected


@pytest.mark.parametrize(
    ("severity", "minutes"),
    [(Severity.P0, 15), (Severity.P1, 60), (Severity.P2, 240), (Severity.P3, 1440)],
)
def test_response_time(severity: Severity, minutes: int) -> None:
    opened = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert response_due(severity, opened) - opened == timedelta(minutes=minutes)


def test_rank_orders_p0_first() -> None:
    assert sorted(Severity, key=lambda s: s.rank) == [
        Severity.P0,
        Severity.P1,
        Severity.P2,
        Severity.P3,
    ]
