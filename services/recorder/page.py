"""The operator page served at `/`: open incidents, and the selected one's live timeline.

Plain HTML and JavaScript, no build step: it reads the JSON API and listens to
`/api/v1/stream` (server-sent events). Text from events is inserted as text, never HTML.
Who is on call (`/api/v1/oncall`) is shown under the incidents, refreshed every minute.
"""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Jarvis Responder — incidents</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; display: flex; height: 100vh; }
  aside { width: 34%; border-right: 1px solid #ccc; overflow: auto; }
  main { flex: 1; overflow: auto; padding: 0 1em; }
  h1 { font-size: 1.1em; margin: .6em; }
  #live { font-size: .8em; color: #a00; margin-left: .5em; }
  #live.on { color: #080; }
  ul { list-style: none; margin: 0; padding: 0; }
  li { padding: .5em .8em; border-bottom: 1px solid #eee; cursor: pointer; }
  li.selected { background: #eef4ff; }
  .sev { font-weight: bold; margin-right: .4em; }
  .P0 { color: #b00; } .P1 { color: #d60; } .P2 { color: #a80; } .P3 { color: #666; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; border-bottom: 1px solid #eee; padding: .3em; vertical-align: top; }
  .muted { color: #777; }
  #oncall li { cursor: default; }
</style>
</head>
<body>
<aside>
  <h1>Open incidents <span id="live">offline</span></h1>
  <ul id="incidents"></ul>
  <p id="none" class="muted" style="margin: .8em">No open incident.</p>
  <h1>On call</h1>
  <ul id="oncall"></ul>
</aside>
<main>
  <h2 id="title" class="muted">Select an incident</h2>
  <p id="meta" class="muted"></p>
  <table>
    <thead><tr><th>Time (UTC)</th><th>Event</th><th>Detail</th><th>By</th></tr></thead>
    <tbody id="timeline"></tbody>
  </table>
</main>
<script>
"use strict";
const incidents = new Map();
let selected = null;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function describe(e) {
  const ev = e.event || {};
  switch (e.event_type) {
    case "AlertRaised": {
      const n = e.occurrences && e.occurrences.count > 1 ? " (x" + e.occurrences.count + ")" : "";
      return [ev.service + "/" + ev.check + " " + ev.status + n, ev.summary || "", ev.source];
    }
    case "SeverityAssigned": return [ev.severity + " declared", ev.reason, "triage"];
    case "NoteAdded": return ["Note", ev.text, ev.author];
    case "IncidentAcknowledged": return ["Acknowledged", "", ev.by];
    case "IncidentResolved": return ["Resolved", ev.note, ev.by];
    case "RoleAssigned": return ["Role " + ev.role, ev.person, ev.producer];
    case "ActionRequested": return ["Action " + ev.action, ev.target, ev.requested_by];
    case "ActionCompleted":
      return ["Action " + ev.action + " " + ev.outcome, ev.detail, "remediator"];
    case "EscalationDue": return ["Escalated to level " + ev.level, ev.reason, "escalator"];
    default: return [e.event_type, ev.reason || ev.status || "", ev.producer || ""];
  }
}

function renderList() {
  const list = document.getElementById("incidents");
  list.replaceChildren();
  const open = [...incidents.values()].filter(i => i.status !== "resolved")
    .sort((a, b) => b.opened_at.localeCompare(a.opened_at));
  document.getElementById("none").hidden = open.length > 0;
  for (const inc of open) {
    const li = el("li");
    li.dataset.id = inc.id;
    li.dataset.status = inc.status;
    if (inc.id === selected) li.classList.add("selected");
    li.append(el("span", inc.severity, "sev " + inc.severity), el("span", inc.title, "title"),
              el("div", inc.status + " · " + inc.services.join(", "), "muted"));
    li.addEventListener("click", () => select(inc.id));
    list.append(li);
  }
  if (!selected && open.length) select(open[0].id);
}

function addRow(entry) {
  const body = document.getElementById("timeline");
  if (body.querySelector('[data-event-id="' + entry.event_id + '"]')) return;
  const [what, detail, by] = describe(entry);
  const tr = el("tr");
  tr.dataset.eventId = entry.event_id;
  tr.dataset.type = entry.event_type;
  tr.append(el("td", entry.occurred_at.replace("T", " ").slice(0, 19)), el("td", what),
            el("td", detail || ""), el("td", by || ""));
  const rows = [...body.children];
  const after = rows.find(r => r.firstChild.textContent > tr.firstChild.textContent);
  body.insertBefore(tr, after || null);
}

async function select(id) {
  selected = id;
  renderList();
  const inc = incidents.get(id);
  document.getElementById("title").textContent = inc ? inc.severity + " — " + inc.title : id;
  document.getElementById("title").className = "";
  document.getElementById("meta").textContent = inc
    ? "status " + inc.status + " · opened " + inc.opened_at + " · " + id : "";
  const res = await fetch("/api/v1/incidents/" + encodeURIComponent(id) + "/timeline");
  if (!res.ok || selected !== id) return;
  document.getElementById("timeline").replaceChildren();
  for (const entry of await res.json()) addRow(entry);
}

async function load() {
  for (const status of ["open", "acknowledged", "mitigated"]) {
    const res = await fetch("/api/v1/incidents?limit=200&status=" + status);
    if (res.ok) for (const inc of await res.json()) incidents.set(inc.id, inc);
  }
  renderList();
}

function listen() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/v1/stream");
  source.onopen = () => { live.textContent = "live"; live.className = "on"; };
  source.onerror = () => { live.textContent = "reconnecting"; live.className = ""; };
  source.addEventListener("incident", msg => {
    const inc = JSON.parse(msg.data);
    incidents.set(inc.id, inc);
    if (inc.id === selected) {
      document.getElementById("meta").textContent =
        "status " + inc.status + " · opened " + inc.opened_at + " · " + inc.id;
    }
    renderList();
  });
  source.addEventListener("timeline", msg => {
    const entry = JSON.parse(msg.data);
    if (entry.incident_id === selected) addRow(entry);
    else if (entry.incident_id && !incidents.has(entry.incident_id)) load();
  });
}

async function loadOnCall() {
  const list = document.getElementById("oncall");
  const res = await fetch("/api/v1/oncall").catch(() => null);
  if (!res || !res.ok) { list.replaceChildren(el("li", "unavailable", "muted")); return; }
  const data = await res.json();
  list.replaceChildren();
  for (const [name, s] of Object.entries(data.schedules)) {
    const li = el("li", name + ": " + (s.person || "nobody"));
    li.dataset.schedule = name;
    if (s.until) li.append(el("div", "until " + s.until.replace("T", " ").slice(0, 16) + " UTC",
                                "muted"));
    list.append(li);
  }
  if (!list.children.length) list.append(el("li", "no schedule configured", "muted"));
}

listen();
load();
loadOnCall();
setInterval(loadOnCall, 60000);
</script>
</body>
</html>
"""
