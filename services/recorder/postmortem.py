"""The runbook's blameless postmortem (Post-Incident Review Template) as Markdown,
filled in from the incident and its timeline. Pure: the same inputs give the same text.
Everything taken from events is escaped (`markdown.py`): a sender's text never becomes a
heading, a link or HTML, whether the Markdown is read as it is or rendered.

What the timeline knows is written out; what only people know (users impacted, the
five whys, lessons) is left as a scaffold to complete in the review meeting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.recorder.markdown import code, text
from services.recorder.narrate import ROLE_TITLES, narrate
from services.recorder.schemas import IncidentDetail, TimelineEntry

__all__ = ["ActionItem", "action_items", "format_duration", "render"]

FIVE_WHYS = (
    ("Why did the incident occur?", "Document the immediate trigger."),
    ("Why did that trigger cause a problem?", "Identify the underlying weakness."),
    ("Why wasn't it prevented?", "Examine prevention mechanisms."),
    ("Why didn't monitoring catch it sooner?", "Review detection capabilities."),
    ("Why wasn't the system resilient?", "Analyze recovery mechanisms."),
)
_DUE_DAYS = {"P0": 7, "P1": 14, "P2": 21, "P3": 30}
_FAILED = {"failed", "timed_out", "rejected"}
TODO = "_to be completed in the review_"


@dataclass(frozen=True)
class ActionItem:
    description: str
    owner: str
    due: datetime
    priority: str


def format_duration(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} hours {minutes} minutes"


def _ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _cell(markdown: str, limit: int = 240) -> str:
    """A table cell or list item of Markdown already escaped (`markdown.text`), shortened."""
    if len(markdown) > limit:
        markdown = markdown[: limit - 1] + "…"
    return markdown or "—"


def _holder_name(name: str | None) -> str:
    return text(name) if name else TODO


def _holder(incident: IncidentDetail, role: str) -> str:
    name = getattr(incident.roles, role)
    return f"{text(name)} ({ROLE_TITLES[role]})" if name else ROLE_TITLES[role]


def _response_due(timeline: list[TimelineEntry]) -> datetime | None:
    for entry in timeline:
        if entry.event_type == "SeverityAssigned" and entry.event.get("response_due_at"):
            return datetime.fromisoformat(str(entry.event["response_due_at"]))
    return None


def action_items(incident: IncidentDetail, timeline: list[TimelineEntry]) -> list[ActionItem]:
    """Proposed action items, each from a fact on the timeline."""
    due = (incident.resolved_at or incident.opened_at) + timedelta(
        days=_DUE_DAYS.get(incident.severity, 30)
    )
    sev = incident.severity
    tl, ol, ic = (
        _holder(incident, "technical_lead"),
        _holder(incident, "operations_lead"),
        _holder(incident, "incident_commander"),
    )
    items: list[ActionItem] = []
    for entry in timeline:
        e = entry.event
        if entry.event_type == "ActionCompleted" and e.get("outcome") in _FAILED:
            target = f" on {text(e['target'])}" if e.get("target") else ""
            items.append(
                ActionItem(
                    f"Find out why action {code(e.get('action'))}{target} {text(e.get('outcome'))}",
                    tl,
                    due,
                    sev,
                )
            )
    if incident.data_loss:
        items.append(ActionItem("Verify backups and restore what was lost", ol, due, sev))
    if incident.security:
        items.append(ActionItem("Complete the security review of the breach", ic, due, sev))
    services = text(", ".join(incident.services) or incident.service)
    items.append(ActionItem(f"Review monitoring and alert thresholds for {services}", ol, due, sev))
    items.append(ActionItem("Update the runbook with what this incident taught", ic, due, sev))
    return items


def _went_well_and_not(
    incident: IncidentDetail, timeline: list[TimelineEntry]
) -> tuple[list[str], list[str]]:
    good: list[str] = []
    bad: list[str] = []
    sources = sorted(
        {text(e.event.get("source")) for e in timeline if e.event_type == "AlertRaised"}
    )
    if sources:
        good.append(f"Detected automatically ({', '.join(sources)})")
    due = _response_due(timeline)
    if incident.acknowledged_at:
        took = format_duration(incident.acknowledged_at - incident.opened_at)
        if due is None or incident.acknowledged_at <= due:
            good.append(f"Acknowledged after {took}, within the runbook's response time")
        else:
            bad.append(f"Acknowledged after {took}, later than the runbook's response time")
    else:
        bad.append("Never acknowledged by an operator")
    for entry in timeline:
        e = entry.event
        if entry.event_type == "ActionCompleted":
            line = f"Action {code(e.get('action'))} {text(e.get('outcome'))}"
            (bad if e.get("outcome") in _FAILED else good).append(line)
        elif entry.event_type == "EscalationDue":
            bad.append(f"Escalated to level {text(e.get('level'))}: {text(e.get('reason', ''))}")
    storms = [a for a in incident.alerts if a.count > 1]
    for run in storms:
        bad.append(f"{run.count} repeats of one {text(run.service)} alert — consider inhibition")
    return good or [TODO], bad or [TODO]


def render(incident: IncidentDetail, timeline: list[TimelineEntry]) -> str:
    """The postmortem of `incident` as Markdown."""
    end = incident.resolved_at
    duration = format_duration(end - incident.opened_at) if end else "ongoing"
    services = text(", ".join(incident.services) or incident.service)
    root_cause = text(incident.root_cause) if incident.root_cause else None
    alerts = incident.alert_count
    # SeverityAssigned also announces a service joining at the same severity: show changes.
    levels = [h.severity for h in incident.severity_history]
    changes = [s for i, s in enumerate(levels) if i == 0 or s != levels[i - 1]]
    history = " → ".join(changes) or incident.severity
    attendees = [
        f"{text(getattr(incident.roles, r))} ({t})"
        for r, t in ROLE_TITLES.items()
        if getattr(incident.roles, r)
    ]
    drill = next(
        (
            str(e.event["drill_id"])
            for e in timeline
            if e.event_type == "SeverityAssigned" and e.event.get("drill_id")
        ),
        None,
    )
    out: list[str] = [
        f"# Post-Incident Review: {text(incident.id)}",
        "",
        *(
            [
                f"> **This was a drill** (`jarvis-ir drill`, drill {drill}): the failure was "
                f"injected on purpose; its report is at `/api/v1/drills/{drill}`.",
                "",
            ]
            if drill
            else []
        ),
        f"**Date:** {incident.opened_at:%Y-%m-%d}",
        f"**Incident Commander:** {_holder_name(incident.roles.incident_commander)}",
        f"**Attendees:** {', '.join(attendees) or TODO}",
        "",
        "## Executive Summary",
        "",
        f"{text(incident.title)} ({incident.severity}) affected {services}. "
        + (f"It was resolved after {duration}." if end else "It is not resolved yet.")
        + f" {alerts} alert{'s' if alerts != 1 else ''} were received."
        + (f" Root cause: {root_cause}." if root_cause else "")
        + (
            f" Resolution: {_cell(text(incident.resolution_note), 500)}"
            if incident.resolution_note
            else ""
        ),
        "",
        "## Incident Details",
        "",
        f"- **Start Time:** {_ts(incident.opened_at)}",
        f"- **Resolution Time:** {_ts(end) if end else 'unresolved'}",
        f"- **Duration:** {duration}",
        f"- **Severity:** {incident.severity}",
        f"- **Severity History:** {history}",
        f"- **Status:** {incident.status}",
        "",
        "## Incident Timeline",
        "",
        "| Time | Event | Action Taken | Decision Maker |",
        "|------|-------|-------------|----------------|",
    ]
    for entry in timeline:
        line = narrate(entry.event, entry.occurrences.count if entry.occurrences else 1)
        out.append(
            f"| {entry.occurred_at:%Y-%m-%d %H:%M:%S} | {_cell(line.event)} | "
            f"{_cell(line.action)} | {_cell(line.decision_maker)} |"
        )
    good, bad = _went_well_and_not(incident, timeline)
    out += [
        "",
        "## Impact Summary",
        "",
        f"**Duration:** {duration}",
        f"**Services Affected:** {services}",
        f"**Alerts:** {alerts}",
        f"**Data Loss:** {'reported' if incident.data_loss else 'none reported'}",
        f"**Security:** {'breach suspected' if incident.security else 'no breach suspected'}",
        f"**Users Impacted:** {TODO}",
        f"**SLA Impact:** {TODO}",
        "",
        "## What Went Well",
        "",
        *(f"- {_cell(g)}" for g in good),
        "",
        "## What Could Be Improved",
        "",
        *(f"- {_cell(b)}" for b in bad),
        "",
        "## Root Cause",
        "",
        "### Immediate Cause",
        "",
        root_cause or TODO,
        "",
        "### Underlying Cause",
        "",
        TODO,
        "",
        "### Root Cause",
        "",
        TODO,
        "",
        "### The 5 Whys",
        "",
    ]
    for n, (question, hint) in enumerate(FIVE_WHYS, 1):
        out.append(f"{n}. **{question}** {hint}")
        out.append(f"   - {TODO}")
    out += [
        "",
        "## Action Items",
        "",
        "| ID | Description | Owner | Due Date | Priority |",
        "|----|-------------|-------|----------|----------|",
    ]
    for n, item in enumerate(action_items(incident, timeline), 1):
        out.append(
            f"| AI-{n:03d} | {_cell(item.description)} | {_cell(item.owner)} | "
            f"{item.due:%Y-%m-%d} | {item.priority} |"
        )
    out += ["", "## Lessons Learned", "", TODO, ""]
    return "\n".join(out)
