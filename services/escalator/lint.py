"""Policy lint at start: what in the escalation policy can never work as meant.

Names that do not exist (a level naming an undefined schedule, a member missing from the
people directory, a role naming an undefined schedule) stop the program: the settings
model raises them as a ConfigError. What is legal but probably a mistake is a warning,
logged at start: a level that can never be reached, a schedule with gaps, a level with
no reachable contact (compare grafana/oncall#934).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from shared.rotation import shifts
from shared.settings import EscalatorSettings

__all__ = ["policy_warnings", "reachable_levels"]

_NAMES = {1: "level_1", 2: "level_2", 3: "level_3", 4: "level_4", 5: "executive"}


def reachable_levels(settings: EscalatorSettings) -> set[int]:
    """Levels some escalation can reach: a trigger's level, or a matrix cell not preceded
    in its row by a cell at or above it (a step at or below the level reached never fires)."""
    found = {
        settings.multiple_systems_level,
        settings.data_loss_level,
        settings.security_level,
        settings.remediation_failed_level,
    }
    rows = settings.matrix
    for row in (rows.p0, rows.p1, rows.p2, rows.p3):
        highest = 0
        for cell in row:
            if cell.level is not None and cell.level > highest:
                found.add(cell.level)
                highest = cell.level
    return found


def _gaps(settings: EscalatorSettings, now: datetime) -> Iterable[str]:
    horizon = now + timedelta(days=max(settings.ics_days, 28))
    for name, schedule in settings.schedules.items():
        holes = [s for s in shifts(schedule, [], now, horizon) if s.person is None]
        if holes:
            start, end = (f"{t:%Y-%m-%d %H:%M} UTC" for t in (holes[0].start, holes[0].end))
            yield (
                f"escalator.schedules.{name}: nobody is on call from {start} to {end} "
                "(before its start)"
            )
        for member in dict.fromkeys(schedule.members):
            person = settings.people.get(member)
            if person is not None and not (person.email or person.slack_user_id):
                yield (
                    f"escalator.schedules.{name}: {member}'s shifts reach nobody "
                    f"(escalator.people.{member} has no email and no slack_user_id)"
                )


def policy_warnings(
    settings: EscalatorSettings, channels: Iterable[str], now: datetime | None = None
) -> list[str]:
    """Every warning about `settings`, given the notifier channels configured."""
    now = now or datetime.now(UTC)
    configured = set(channels)
    warnings: list[str] = []
    if not configured:
        warnings.append(
            "escalator.notifier: no channel is configured (Slack, webhook, e-mail, PagerDuty, "
            "routes): escalations reach nobody (recorded as channel 'none')"
        )
    reachable = reachable_levels(settings)
    for number, level in settings.levels.by_number().items():
        setting = f"escalator.levels.{_NAMES[number]}"
        if number not in reachable:
            warnings.append(
                f"{setting}: can never be reached (no matrix cell or trigger escalates to it)"
            )
            continue
        contacts = level.contacts or []
        usable = [c for c in level.channels or [] if c in configured]
        if configured and not usable:
            warnings.append(
                f"{setting}: no configured channel among {level.channels}: its escalations "
                "reach nobody (recorded as channel 'none')"
            )
        elif usable == ["email"] and not contacts:
            warnings.append(f"{setting}: e-mail is its only channel and it has no contact")
    warnings.extend(_gaps(settings, now))
    return warnings
