"""A drill's incident: the first incident of the drill's service opened within its window.

Marked with the drill's id (SeverityAssigned.drill_id) and a "[DRILL]" title that every
reader shows — the page, the postmortem, the escalator's notifications.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from services.triage.grouping import Change

__all__ = ["mark_drill"]


def mark_drill(change: Change, drill_json: str, now: datetime) -> Change:
    """`change` (an incident opening) as the drill's, unless the drill's window is over."""
    drill = json.loads(drill_json)
    injected = datetime.fromisoformat(drill["injected_at"])
    if (now - injected).total_seconds() > float(drill["window_s"]):
        return change  # too late: this incident is not the drill's
    inc = change.incident
    marked = replace(inc, drill_id=drill["drill_id"], title=f"[DRILL] {inc.title}")
    return replace(change, incident=marked)
