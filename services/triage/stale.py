"""Incidents whose senders fell silent: closed once no alert of theirs fired for
`triage.stale_after_s`.

An incident stays open while one of its alerts fires, and a firing alert that is never
resolved (a sender that went away, a rule that was deleted, a service named once) would
keep it open for ever, with its fingerprint index and slots in Redis. Every firing alert
refreshes the incident's last-seen time (Alertmanager repeats firing alerts, the probes
re-notify), so an incident with no firing alert for that long has nobody left to say it
fires: it is resolved automatically, said so on its timeline, and its keys are freed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from services.triage.grouping import Incident, Status
from services.triage.outbox import GROUP, automatic_resolution
from shared.events import IncidentResolved

if TYPE_CHECKING:
    from services.triage.main import Triage

__all__ = ["StaleIncidents", "stale"]


def stale(
    inc: Incident, last_seen: datetime, now: datetime, stale_after: timedelta
) -> Incident | None:
    """The incident resolved as stale, or None when something still fired recently (or it
    is quiet: the quiet period resolves it sooner)."""
    if inc.status in (Status.RESOLVED, Status.QUIET) or now - last_seen < stale_after:
        return None
    return replace(inc, status=Status.RESOLVED, resolved_by=GROUP)


class StaleIncidents:
    def __init__(self, triage: Triage, stale_after: timedelta) -> None:
        self._triage = triage
        self._stale_after = stale_after

    async def close_all(self) -> int:
        """Resolve every stale open incident; returns how many were."""
        now = self._triage.now()
        closed = 0
        for incident_id, seen in (await self._triage.store.last_seen()).items():
            if now - seen < self._stale_after:
                continue

            def decide(inc: Incident, seen: datetime = seen) -> Incident | None:
                return stale(inc, seen, now, self._stale_after)

            async def attempt(iid: str = incident_id) -> bool:
                return await self._triage.close(iid, decide, self._announce)

            await self._triage.until_committed(attempt)
            closed += 1
        return closed

    def _announce(self, inc: Incident) -> IncidentResolved:
        hours = self._stale_after.total_seconds() / 3600
        return automatic_resolution(
            inc,
            "stale",
            f"closed as stale: none of its {inc.alert_count} alerts fired for {hours:g} h "
            "(their senders fell silent)",
        )
