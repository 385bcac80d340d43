"""The postmortem follows the runbook's template, section by section (no I/O)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from services.recorder import postmortem
from services.recorder.schemas import (
    IncidentDetail,
    Occurrences,
    Roles,
    SeverityChange,
    TimelineEntry,
)
from shared.events import ActionCompleted, ActionOutcome, Event, NoteAdded, RoleAssigned
from tests.recorder_events import T0, acked, alert, assigned, at, resolved

pytestmark = pytest.mark.unit

INCIDENT = "7c1d0c5e-0000-4000-8000-000000000001"


def _entry(event: Event, count: int = 1) -> TimelineEntry:
    occurrences = None
    if count > 1:
        occurrences = Occurrences(
            fingerprint="fp",
            service="backend",
            status="firing",
            count=count,
            first_at=event.occurred_at,
            last_at=at(9),
            first_event_id=event.event_id,
            last_event_id=event.event_id,
        )
    return TimelineEntry(
        event_id=event.event_id,
        event_type=event.event_type,
        occurred_at=event.occurred_at,
        recorded_at=event.occurred_at,
        incident_id=INCIDENT,
        causation_id=event.causation_id,
        effects=[],
        occurrences=occurrences,
        event=event.model_dump(mode="json"),
    )


def _incident(**changes: Any) -> IncidentDetail:
    base: dict[str, Any] = {
        "id": INCIDENT,
        "fingerprint": "fp",
        "title": "backend unresponsive",
        "service": "backend",
        "services": ["backend", "sutazai-postgres"],
        "status": "resolved",
        "severity": "P1",
        "root_cause": "PostgreSQL ran out of connections",
        "resolution_note": "restarted postgres | backend",
        "data_loss": False,
        "security": False,
        "roles": Roles(
            incident_commander="alice",
            technical_lead="bob",
            operations_lead=None,
            communications_lead=None,
        ),
        "opened_at": T0,
        "acknowledged_at": at(5),
        "mitigated_at": None,
        "resolved_at": at(72),
        "updated_at": at(72),
        "severity_history": [
            SeverityChange(at=T0, severity="P2", previous_severity=None, reason="r", event_id="a"),
            SeverityChange(
                at=at(2), severity="P1", previous_severity="P2", reason="r", event_id="b"
            ),
        ],
        "alerts": [],
        "alert_count": 1200,
    }
    base.update(changes)
    return IncidentDetail(**base)


def _timeline() -> list[TimelineEntry]:
    first = alert()
    return [
        _entry(first, count=1200),
        _entry(assigned(first, INCIDENT, "P2", minute=0.5)),
        _entry(acked(INCIDENT, minute=5, by="alice")),
        _entry(
            RoleAssigned(
                incident_id=INCIDENT, role="technical_lead", person="bob", occurred_at=at(6)
            )
        ),
        _entry(
            ActionCompleted(
                incident_id=INCIDENT,
                action_id="a1",
                action="container.restart",
                target="backend",
                outcome=ActionOutcome.FAILED,
                detail="exit 1",
                occurred_at=at(7),
            )
        ),
        _entry(
            NoteAdded(
                incident_id=INCIDENT, author="bob", text="db | pool\nfull", occurred_at=at(30)
            )
        ),
        _entry(resolved(INCIDENT, minute=72, note="restarted postgres")),
    ]


def _sections(markdown: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", markdown, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _table(section: str) -> list[list[str]]:
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows[2:]]


def test_sections_come_in_the_runbook_template_order() -> None:
    text = postmortem.render(_incident(), _timeline())
    assert text.startswith(f"# Post-Incident Review: {INCIDENT}\n")
    assert list(_sections(text)) == [
        "Executive Summary",
        "Incident Details",
        "Incident Timeline",
        "Impact Summary",
        "What Went Well",
        "What Could Be Improved",
        "Root Cause",
        "Action Items",
        "Lessons Learned",
    ]
    head = text.split("## ", 1)[0]
    assert "**Date:** 2025-08-08" in head
    assert "**Incident Commander:** alice" in head
    assert "alice (Incident Commander), bob (Technical Lead)" in head


def test_executive_summary_and_details_state_start_resolution_duration_severity() -> None:
    sections = _sections(postmortem.render(_incident(), _timeline()))
    summary = sections["Executive Summary"]
    assert "backend unresponsive (P1) affected backend, sutazai-postgres" in summary
    assert "resolved after 1 hours 12 minutes" in summary
    assert "1200 alerts" in summary
    assert "PostgreSQL ran out of connections" in summary
    details = sections["Incident Details"]
    assert "- **Start Time:** 2025-08-08 14:23 UTC" in details
    assert "- **Resolution Time:** 2025-08-08 15:35 UTC" in details
    assert "- **Duration:** 1 hours 12 minutes" in details
    assert "- **Severity:** P1" in details
    assert "- **Severity History:** P2 → P1" in details


def test_severity_history_shows_changes_not_every_announcement() -> None:
    # A service joining is announced at the same severity: P2, P2, P1, P1, P0 reads P2 → P1 → P0.
    levels = ["P2", "P2", "P1", "P1", "P0"]
    history = [
        SeverityChange(at=at(i), severity=s, previous_severity=None, reason="r", event_id=str(i))
        for i, s in enumerate(levels)
    ]
    details = _sections(postmortem.render(_incident(severity_history=history), _timeline()))
    assert "- **Severity History:** P2 → P1 → P0\n" in details["Incident Details"]


def test_timeline_table_has_one_row_per_entry_with_action_and_decision_maker() -> None:
    sections = _sections(postmortem.render(_incident(), _timeline()))
    table = sections["Incident Timeline"]
    assert "| Time | Event | Action Taken | Decision Maker |" in table
    rows = _table(table)
    assert len(rows) == 7
    assert rows[0][0] == "2025-08-08 14:23:00"
    assert "(×1200)" in rows[0][1]
    assert rows[0][2] == "Alert received"
    assert rows[1][2] == "P2 declared"
    assert rows[1][3] == "triage (automatic)"
    assert rows[2][1:] == ["Incident acknowledged", "Acknowledged", "alice"]
    assert rows[3][2] == "bob is Technical Lead"
    assert rows[4][2] == "failed: exit 1"
    # Pipes and newlines from people's notes cannot break the table.
    assert rows[5][1] == "Note: db \\| pool full"
    assert rows[6][1:] == ["Incident resolved", "restarted postgres", "alice"]


def test_impact_went_well_and_improvements_come_from_the_facts() -> None:
    sections = _sections(postmortem.render(_incident(), _timeline()))
    impact = sections["Impact Summary"]
    assert "**Duration:** 1 hours 12 minutes" in impact
    assert "**Services Affected:** backend, sutazai-postgres" in impact
    assert "**Data Loss:** none reported" in impact
    assert "**Users Impacted:** _to be completed" in impact
    assert "Acknowledged after 0 hours 5 minutes, within" in sections["What Went Well"]
    assert "Detected automatically (probe)" in sections["What Went Well"]
    assert "Action `container.restart` failed" in sections["What Could Be Improved"]


def test_root_cause_sections_and_the_five_whys_scaffold() -> None:
    section = _sections(postmortem.render(_incident(), _timeline()))["Root Cause"]
    assert re.findall(r"^### (.+)$", section, flags=re.MULTILINE) == [
        "Immediate Cause",
        "Underlying Cause",
        "Root Cause",
        "The 5 Whys",
    ]
    assert "PostgreSQL ran out of connections" in section.split("### Underlying Cause")[0]
    whys = re.findall(r"^(\d)\. \*\*(.+?)\*\*", section, flags=re.MULTILINE)
    assert [n for n, _ in whys] == ["1", "2", "3", "4", "5"]
    assert whys[3][1] == "Why didn't monitoring catch it sooner?"


def test_action_items_table_derives_items_with_owner_due_date_and_priority() -> None:
    section = _sections(postmortem.render(_incident(data_loss=True), _timeline()))["Action Items"]
    assert "| ID | Description | Owner | Due Date | Priority |" in section
    rows = _table(section)
    assert [r[0] for r in rows] == [f"AI-00{n}" for n in range(1, len(rows) + 1)]
    first = rows[0]
    assert first[1] == "Find out why action `container.restart` on backend failed"
    assert first[2] == "bob (Technical Lead)"
    assert first[3] == "2025-08-22"  # resolution + 14 days for a P1
    assert first[4] == "P1"
    assert any("Verify backups" in r[1] and r[2] == "Operations Lead" for r in rows)


def test_an_unresolved_incident_says_so() -> None:
    incident = _incident(status="acknowledged", resolved_at=None, resolution_note=None)
    text = postmortem.render(incident, _timeline()[:3])
    details = _sections(text)["Incident Details"]
    assert "- **Resolution Time:** unresolved" in details
    assert "- **Duration:** ongoing" in details
    assert "It is not resolved yet." in _sections(text)["Executive Summary"]


def test_duration_format() -> None:
    assert postmortem.format_duration(at(125) - T0) == "2 hours 5 minutes"
    assert postmortem.format_duration(T0 - at(1)) == "0 hours 0 minutes"


def test_text_from_events_cannot_forge_sections_or_html() -> None:
    """Issue 18, finding 6: a summary with "\\n## Root Cause\\n<script>" forged a section, and
    the postmortem is rendered as HTML too. Rendered with a real Markdown renderer, every
    heading is one of the template's and nothing from an event becomes a tag or a link."""
    from markdown_it import MarkdownIt

    forged = "\n## Root Cause\n<script>alert(1)</script>\n- [click](javascript:alert(1))"
    first = alert().model_copy(update={"summary": f"backend down{forged}"})
    timeline = [
        _entry(first),
        _entry(assigned(first, INCIDENT, "P2", minute=0.5)),
        _entry(NoteAdded(incident_id=INCIDENT, author=f"eve{forged}", text=f"1. note{forged}")),
        _entry(
            ActionCompleted(
                incident_id=INCIDENT,
                action_id="a1",
                action="docker.restart",
                target="backend",
                outcome=ActionOutcome.FAILED,
                detail=f"exit 1 | ` <img src=x onerror=alert(1)>{forged}",
            )
        ),
    ]
    incident = _incident(
        title=f"backend down{forged}",
        root_cause=f"postgres{forged}",
        resolution_note=f"fixed{forged}",
        roles=Roles(
            incident_commander=f"alice{forged}",
            technical_lead=None,
            operations_lead=None,
            communications_lead=None,
        ),
    )
    markdown = postmortem.render(incident, timeline)
    clean = postmortem.render(_incident(), _timeline())
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    assert "<script" not in html
    assert "<img" not in html
    assert "<a " not in html
    assert "&lt;script&gt;" in html  # the sender's text is still there, as text
    headings = re.findall(r"<h[1-6]>(.*?)</h[1-6]>", html)
    expected = re.findall(r"^#+ (.+)$", clean, flags=re.MULTILINE)
    assert [h.split(":")[0] for h in headings] == [h.split(":")[0] for h in expected]
    assert re.findall(r"^## Root Cause$", markdown, flags=re.MULTILINE) == ["## Root Cause"]
    # One timeline row per event: the forged text did not open rows or cells of its own.
    rows = _table(_sections(markdown)["Incident Timeline"])
    assert len(rows) == len(timeline)
    assert all(len(row) == 4 for row in rows)


def test_a_drills_postmortem_says_it_was_a_drill() -> None:
    cause = alert()
    drill = "4b1c2d3e-0000-4000-8000-00000000d811"
    timeline = [_entry(cause), _entry(assigned(cause, INCIDENT, drill_id=drill))]
    text = postmortem.render(_incident(title="[DRILL] backend unresponsive"), timeline)
    assert f"**This was a drill** (`jarvis-ir drill`, drill {drill})" in text
    plain = postmortem.render(_incident(), [_entry(cause), _entry(assigned(cause, INCIDENT))])
    assert "drill" not in plain.lower()
