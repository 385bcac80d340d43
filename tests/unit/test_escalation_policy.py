"""The runbook's escalation matrix as a schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.escalator.policy import schedule
from shared.events import Severity

OPENED = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (Severity.P0, [(15, 2), (60, 3), (240, 4), (1440, 5)]),
        (Severity.P1, [(15, 1), (60, 2), (240, 3), (1440, 4)]),
        (Severity.P2, [(60, 1), (240, 2), (1440, 3)]),
        (Severity.P3, []),
    ],
)
def test_matrix(severity: Severity, expected: list[tuple[int, int]]) -> None:
    steps = schedule(severity, OPENED)
    assert [((s.due_at - OPENED) // timedelta(minutes=1), s.level) for s in steps] == expected
    assert len({s.step_id for s in steps}) == len(steps)
