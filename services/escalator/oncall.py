"""On-call at the moment it matters: a level's `schedule:<name>` contacts resolved to the
person on call when the step fires (overrides from Redis, schedules and the people
directory from the current configuration), and the runbook's roles filled from schedules
when an incident opens."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from shared.overrides import OverrideStore
from shared.rotation import Resolved, person_at, resolve_contacts
from shared.settings import EscalatorSettings

__all__ = ["OnCallResolver"]


class OnCallResolver:
    def __init__(self, settings: EscalatorSettings, overrides: OverrideStore) -> None:
        self._settings = settings
        self._overrides = overrides

    async def resolve(self, contacts: Iterable[str], at: datetime) -> Resolved:
        """The level's addresses at `at`, and whom each of its schedules named."""
        contacts = list(contacts)
        names = [c.removeprefix("schedule:") for c in contacts if c.startswith("schedule:")]
        overrides = await self._overrides.of_all(names) if names else {}
        s = self._settings
        return resolve_contacts(contacts, s.schedules, overrides, s.people, at)

    def slack_ids(self, people: Iterable[str]) -> tuple[str, ...]:
        """Slack member ids of `people` (those the directory knows one for)."""
        found = (self._settings.people.get(p) for p in people)
        return tuple(dict.fromkeys(p.slack_user_id for p in found if p and p.slack_user_id))

    async def roles(self, at: datetime) -> Mapping[str, str]:
        """Role → person for the roles filled from schedules: the primary schedule's on-call,
        or the backup's when the primary has nobody (runbook: a primary and a backup)."""
        s = self._settings
        wanted = s.roles.filled()
        names = {n for r in wanted.values() for n in (r.primary, r.backup) if n}
        overrides = await self._overrides.of_all(sorted(names))
        out: dict[str, str] = {}
        for role, fill in wanted.items():
            for name in (fill.primary, fill.backup):
                if name and name in s.schedules:
                    person = person_at(s.schedules[name], overrides.get(name, []), at)[0]
                    if person:
                        out[role] = person
                        break
        return out
