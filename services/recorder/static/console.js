// The operator console. Reads the JSON API, listens to /api/v1/stream, and sends operator
// commands as JSON with `Authorization: Bearer <token>` (typed once, kept in sessionStorage,
// never a cookie). Text from events is always set as textContent, never as HTML.
"use strict";

const SEVERITIES = ["P0", "P1", "P2", "P3"];
const PHASES = ["detected", "triaged", "contained", "fixed", "verified", "resolved"];
const incidents = new Map();
let selected = null;
let showing = "open";  // or "resolved"
let resolved = [];

const $ = id => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function button(text, cls, onClick) {
  const node = el("button", text, cls);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

// -- time ---------------------------------------------------------------------------------
function span(ms) {
  const s = Math.max(0, Math.round(Math.abs(ms) / 1000));
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m " + (s % 60) + "s";
  const h = Math.floor(m / 60);
  return h < 48 ? h + "h " + (m % 60) + "m" : Math.floor(h / 24) + "d " + (h % 24) + "h";
}
const utc = iso => (iso || "").replace("T", " ").slice(0, 19);
const ms = iso => Date.parse(iso);

// -- identity and writes ---------------------------------------------------------------------
const who = () => sessionStorage.getItem("jarvis-operator") || "operator";
const token = () => sessionStorage.getItem("jarvis-token") || "";

function showIdentity() {
  $("operator").value = sessionStorage.getItem("jarvis-operator") || "";
  $("token").value = "";
  $("token-state").textContent = token() ? "token set for this session" : "no token";
}

function say(text, error) {
  const box = $("message");
  box.textContent = text;
  box.className = error ? "error" : "";
  box.hidden = !text;
}

async function send(method, path, body) {
  const headers = {"Content-Type": "application/json"};
  if (token()) headers.Authorization = "Bearer " + token();
  const res = await fetch(path, {method, headers, body: body ? JSON.stringify(body) : undefined,
                                 credentials: "omit"});
  if (res.ok) { say(""); return res.status === 204 ? null : res.json(); }
  let detail = res.statusText;
  try {
    const data = await res.json();
    detail = typeof data.detail === "string" ? data.detail
      : (data.detail || []).map(d => (d.loc || []).join(".") + ": " + d.msg).join("; ");
  } catch (e) { /* not JSON */ }
  say(res.status === 401 ? "A valid API token is needed: enter it above." : detail, true);
  throw new Error(detail);
}

// -- incidents ---------------------------------------------------------------------------------
const rank = sev => SEVERITIES.indexOf(sev);

function openSorted() {
  return [...incidents.values()].filter(i => i.status !== "resolved")
    .sort((a, b) => rank(a.severity) - rank(b.severity) || a.opened_at.localeCompare(b.opened_at));
}

function dueText(inc, now) {
  if (inc.status === "resolved") return ["resolved " + utc(inc.resolved_at), "met"];
  if (!inc.response_due_at) return ["", ""];
  if (inc.acknowledged_at) {
    const late = ms(inc.acknowledged_at) > ms(inc.response_due_at);
    return ["responded in " + span(ms(inc.acknowledged_at) - ms(inc.opened_at)),
            late ? "overdue" : "met"];
  }
  const left = ms(inc.response_due_at) - now;
  return left >= 0 ? ["respond within " + span(left), ""] : ["overdue by " + span(left), "overdue"];
}

function escalationText(inc, now) {
  const level = inc.escalation_level ? "level " + inc.escalation_level : "not escalated";
  const next = inc.next_escalation;
  if (!next || inc.status === "resolved") return level;
  const left = ms(next.due_at) - now;
  return level + " · level " + next.level + (left > 0 ? " in " + span(left) : " now");
}

function renderCounts(open) {
  for (const li of $("counts").children) {
    const n = open.filter(i => i.severity === li.dataset.severity).length;
    li.querySelector(".n").textContent = n;
    li.classList.toggle("some", n > 0);
  }
}

function renderList() {
  const list = $("incidents");
  const open = openSorted();
  renderCounts(open);
  const shown = showing === "open" ? open : resolved;
  list.replaceChildren();
  $("none").textContent = showing === "open" ? "No open incident." : "No resolved incident.";
  $("none").hidden = shown.length > 0;
  const now = Date.now();
  for (const inc of shown) {
    const li = el("li");
    li.dataset.id = inc.id;
    li.dataset.status = inc.status;
    li.dataset.severity = inc.severity;
    if (inc.id === selected) li.classList.add("selected");
    li.append(el("span", inc.severity, "sev " + inc.severity), el("span", inc.title, "title"));
    const row = el("div", null, "row");
    const [due, cls] = dueText(inc, now);
    row.append(el("span", inc.status, "status"), el("span", inc.services.join(", ")),
               el("span", due, "due " + cls), el("span", escalationText(inc, now), "escalation"));
    li.append(row);
    li.addEventListener("click", () => select(inc.id));
    list.append(li);
  }
  if (!selected && shown.length) select(shown[0].id);
}

function tick() {  // countdowns move every second without re-reading anything
  const now = Date.now();
  for (const li of $("incidents").children) {
    const inc = incidents.get(li.dataset.id) || resolved.find(i => i.id === li.dataset.id);
    if (!inc) continue;
    const [due, cls] = dueText(inc, now);
    const node = li.querySelector(".due");
    node.textContent = due;
    node.className = "due " + cls;
    li.querySelector(".escalation").textContent = escalationText(inc, now);
  }
  for (const li of $("approvals").children) {
    const node = li.querySelector(".expires");
    if (node) node.textContent = "expires in " + span(ms(li.dataset.expires) - now);
  }
}

async function loadIncidents() {
  for (const status of ["open", "acknowledged", "mitigated"]) {
    const res = await fetch("/api/v1/incidents?limit=500&status=" + status);
    if (res.ok) for (const inc of await res.json()) incidents.set(inc.id, inc);
  }
  renderList();
}

async function loadResolved() {
  const res = await fetch("/api/v1/incidents?limit=100&status=resolved");
  resolved = res.ok ? (await res.json())
    .sort((a, b) => (b.resolved_at || "").localeCompare(a.resolved_at || "")) : [];
  renderList();
}

function filter(which) {
  showing = which;
  $("filter-open").classList.toggle("on", which === "open");
  $("filter-resolved").classList.toggle("on", which === "resolved");
  selected = null;
  if (which === "resolved") loadResolved(); else renderList();
}

// -- the selected incident ------------------------------------------------------------------------
function describe(e) {
  const ev = e.event || {};
  switch (e.event_type) {
    case "AlertRaised": {
      const n = e.occurrences && e.occurrences.count > 1 ? " (x" + e.occurrences.count + ")" : "";
      return [ev.service + "/" + ev.check + " " + ev.status + n, ev.summary || "", ev.source];
    }
    case "SeverityAssigned": return [ev.severity + " declared", ev.reason, "triage"];
    case "AlertCorrelated": return ["Alert joined", ev.service + ": " + ev.reason, "triage"];
    case "NoteAdded": return ["Note", ev.text, ev.author];
    case "IncidentAcknowledged": return ["Acknowledged", "", ev.by];
    case "IncidentResolved": return ["Resolved", ev.note, ev.by];
    case "RoleAssigned": return ["Role " + ev.role, ev.person, ev.producer];
    case "ActionRequested":
      return ["Action " + ev.action + (ev.dangerous ? " (needs approval)" : ""), ev.target,
              ev.requested_by];
    case "ActionCompleted":
      return ["Action " + ev.action + " " + ev.outcome, ev.detail, "remediator"];
    case "ActionApproved": return ["Approved", ev.action_id, ev.approver];
    case "ActionRefused": return ["Refused", ev.reason || ev.action_id, ev.by];
    case "EscalationDue": return ["Escalated to level " + ev.level, ev.reason, "escalator"];
    case "AlertSilenced":
      return ["Alert silenced", ev.service + "/" + ev.check + " silenced by " + ev.silence_id,
              "triage"];
    case "SilenceCreated": return ["Silence created", ev.comment, ev.by];
    case "SilenceExpired": return ["Silence expired", ev.silence_id, ev.by];
    default: return [e.event_type, ev.reason || ev.status || "", ev.producer || ""];
  }
}

function addRow(entry) {
  const body = $("timeline");
  if ([...body.children].some(r => r.dataset.eventId === entry.event_id)) return;
  const [what, detail, by] = describe(entry);
  const tr = el("tr");
  tr.dataset.eventId = entry.event_id;
  tr.dataset.type = entry.event_type;
  tr.dataset.at = entry.occurred_at;
  const when = el("td", utc(entry.occurred_at).slice(11), "when");
  when.title = utc(entry.occurred_at) + " UTC";
  tr.append(when, el("td", what), el("td", detail || ""), el("td", by || ""));
  const after = [...body.children].find(r => r.dataset.at > tr.dataset.at);
  body.insertBefore(tr, after || null);
}

function renderPhases(phases) {
  const bar = $("phases");
  bar.replaceChildren();
  for (const name of PHASES) {
    const found = (phases || []).find(p => p.phase === name);
    const li = el("li", name);
    li.dataset.phase = name;
    if (found && found.at) {
      li.classList.add("reached");
      li.append(el("span", utc(found.at).slice(11), "at"));
    }
    bar.append(li);
  }
}

function renderMeta(inc) {
  $("title").textContent = inc.severity + " — " + inc.title;
  $("title").className = inc.severity;
  $("meta").textContent = inc.status + " · opened " + utc(inc.opened_at) + " UTC · " +
    inc.services.join(", ") + " · " + inc.id;
  $("ack").disabled = Boolean(inc.acknowledged_at) || inc.status === "resolved";
  $("resolve").disabled = inc.status === "resolved";
}

async function refreshDetail(id) {
  const res = await fetch("/api/v1/incidents/" + encodeURIComponent(id));
  if (res.ok && selected === id) {
    const detail = await res.json();
    renderMeta(detail);
    renderPhases(detail.phases);
  }
}

async function select(id) {
  selected = id;
  renderList();
  const inc = incidents.get(id) || resolved.find(i => i.id === id);
  if (inc) renderMeta(inc);
  $("actions").hidden = false;
  $("postmortem").href = "/api/v1/incidents/" + encodeURIComponent(id) + "/postmortem";
  $("timeline").replaceChildren();
  refreshDetail(id);
  const res = await fetch("/api/v1/incidents/" + encodeURIComponent(id) + "/timeline");
  if (!res.ok || selected !== id) return;
  for (const entry of await res.json()) addRow(entry);
}

// -- pending approvals ------------------------------------------------------------------------------
async function loadApprovals() {
  const res = await fetch("/api/v1/approvals");
  if (!res.ok) return;
  const pending = await res.json();
  const list = $("approvals");
  list.replaceChildren();
  $("approvals-count").textContent = pending.length;
  $("approvals-count").classList.toggle("some", pending.length > 0);
  $("no-approvals").hidden = pending.length > 0;
  for (const p of pending) {
    const li = el("li");
    li.dataset.actionId = p.action_id;
    li.dataset.expires = p.expires_at;
    li.append(el("span", p.severity, "sev " + p.severity), el("b", p.action),
              el("span", " on " + (p.target || "the stack")));
    li.append(el("code", p.command));
    const row = el("div", null, "row");
    row.append(el("span", p.incident_title), el("span", "by " + p.requested_by),
               el("span", "", "expires"));
    li.append(row);
    if (p.approved_by || p.refused_by) {
      li.append(el("div", p.approved_by ? "approved by " + p.approved_by + ", running"
                                        : "refused by " + p.refused_by, "muted"));
    } else {
      const reason = el("input");
      reason.placeholder = "reason (refuse)";
      reason.className = "refuse-reason";
      reason.maxLength = 2000;
      const buttons = el("div", null, "buttons");
      buttons.append(
        button("Approve", "approve", () => answer(p, "approve", {by: who(), action: p.action})),
        reason,
        button("Refuse", "refuse",
               () => answer(p, "refuse", {by: who(), action: p.action, reason: reason.value})));
      li.append(buttons);
    }
    list.append(li);
  }
  tick();
}

async function answer(p, verb, body) {
  try {
    await send("POST", "/api/v1/actions/" + encodeURIComponent(p.action_id) + "/" + verb, body);
    say((verb === "approve" ? "Approved " : "Refused ") + p.action + ".");
  } catch (e) { return; }
  loadApprovals();
}

// -- silences -------------------------------------------------------------------------------------------
function matcherText(m) {
  return m.name + (m.isEqual ? "" : "!") + (m.isRegex ? "=~" : "=") + m.value;
}

async function loadSilences() {
  const res = await fetch("/api/v1/silences");
  if (!res.ok) return;
  const found = (await res.json()).filter(s => s.state !== "expired");
  const list = $("silences");
  list.replaceChildren();
  $("no-silences").hidden = found.length > 0;
  for (const s of found) {
    const li = el("li");
    li.dataset.silenceId = s.id;
    li.dataset.state = s.state;
    li.addEventListener("click", event => {
      if (event.target.tagName !== "BUTTON") selectSilence(s.id);
    });
    li.append(el("b", s.state + " "), el("code", s.matchers.map(matcherText).join(", ")));
    const row = el("div", null, "row");
    if (s.window) row.append(el("span", utc(s.window.starts_at) + " → " + utc(s.window.ends_at)));
    if (s.recurrence) row.append(el("span", s.recurrence.rrule + " " + s.recurrence.timezone));
    row.append(el("span", s.comment), el("span", "by " + s.created_by));
    const buttons = el("div", null, "buttons");
    buttons.append(button("Expire", "expire", async () => {
      try {
        await send("DELETE", "/api/v1/silences/" + encodeURIComponent(s.id) + "?by=" +
                   encodeURIComponent(who()));
      } catch (e) { return; }
      loadSilences();
    }));
    li.append(row, buttons);
    list.append(li);
  }
}

async function selectSilence(id) {  // its audit trail: made, alerts it kept quiet, ended
  selected = "silence:" + id;
  renderList();
  const res = await fetch("/api/v1/silences/" + encodeURIComponent(id));
  if (!res.ok || selected !== "silence:" + id) return;
  const s = await res.json();
  $("title").textContent = "Silence — " + s.matchers.map(matcherText).join(", ");
  $("title").className = "";
  $("meta").textContent = s.state + " · " + (s.comment || "no comment") + " · by " +
    s.created_by + " · " + s.id;
  $("actions").hidden = true;
  $("phases").replaceChildren();
  $("timeline").replaceChildren();
  for (const entry of s.history) addRow(entry);
}

function localInput(date) {  // a Date as <input type="datetime-local"> wants it (local time)
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

async function createSilence(event) {
  event.preventDefault();
  const service = $("silence-service").value.trim();
  const check = $("silence-check").value.trim();
  const starts = $("silence-starts").value ? new Date($("silence-starts").value) : new Date();
  const hours = Number($("silence-hours").value);
  const matchers = [{name: "service", value: service, isRegex: false, isEqual: true}];
  if (check) matchers.push({name: "check", value: check, isRegex: false, isEqual: true});
  const body = {matchers, starts_at: starts.toISOString(), comment: $("silence-comment").value,
                created_by: who(),
                ends_at: new Date(starts.getTime() + hours * 3600000).toISOString()};
  if ($("silence-weekly").checked) {
    const until = $("silence-until").value ? new Date($("silence-until").value + "T23:59:59Z")
      : new Date(starts.getTime() + 365 * 86400000);
    body.ends_at = until.toISOString();
    body.recurrence = {rrule: "FREQ=WEEKLY", duration: hours * 3600,
                       timezone: $("silence-tz").value.trim() ||
                         Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"};
  }
  try {
    const made = await send("POST", "/api/v1/silences", body);
    say("Silence " + made.id + " created.");
  } catch (e) { return; }
  $("silence-form").reset();
  $("silence-starts").value = localInput(new Date());
  loadSilences();
}

// -- charts --------------------------------------------------------------------------------------------------
async function loadStats() {
  const since = new Date(Date.now() - 30 * 86400000).toISOString();
  const res = await fetch("/api/v1/stats?since=" + encodeURIComponent(since));
  if (!res.ok || !window.charts) return;
  const stats = await res.json();
  const minutes = s => (s === null || s === undefined ? null : s / 60);
  window.charts.groupedBars($("stats-chart"), SEVERITIES.map(sev => {
    const f = stats.by_severity[sev] || {};
    return {label: sev, bars: [
      {value: minutes(f.mtta_s), color: "#3e7cb1", title: sev + " MTTA"},
      {value: minutes(f.mttr_s), color: "#c17d11", title: sev + " MTTR"}]};
  }), "min");
  const services = Object.entries(stats.by_service).map(([label, value]) => ({label, value}))
    .sort((a, b) => b.value - a.value).slice(0, 12);
  window.charts.horizontalBars($("services-chart"), services);
}

// -- live updates ----------------------------------------------------------------------------------------------
const later = {};
function soon(name, fn) {  // many events, one reload
  clearTimeout(later[name]);
  later[name] = setTimeout(fn, 150);
}

function listen() {
  const live = $("live");
  const source = new EventSource("/api/v1/stream");
  source.onopen = () => { live.textContent = "live"; live.className = "on"; };
  source.onerror = () => { live.textContent = "reconnecting"; live.className = ""; };
  source.addEventListener("incident", msg => {
    const inc = JSON.parse(msg.data);
    const was = incidents.get(inc.id);
    incidents.set(inc.id, inc);
    if (inc.acknowledged_at && (!was || !was.acknowledged_at)) soon("stats", loadStats);
    if (inc.status === "resolved" && (!was || was.status !== "resolved")) {
      soon("stats", loadStats);
      if (showing === "resolved") soon("resolved", loadResolved);
    }
    if (inc.id === selected) soon("detail", () => refreshDetail(inc.id));
    renderList();
  });
  source.addEventListener("timeline", msg => {
    const entry = JSON.parse(msg.data);
    if (entry.incident_id && entry.incident_id === selected) addRow(entry);
    const silence = entry.event && entry.event.silence_id;
    if (silence && selected === "silence:" + silence) addRow(entry);
    if (entry.incident_id && !incidents.has(entry.incident_id)) soon("incidents", loadIncidents);
    if (/^Action/.test(entry.event_type)) soon("approvals", loadApprovals);
    if (/^(Silence|AlertSilenced)/.test(entry.event_type)) soon("silences", loadSilences);
    // What moves a drill's figures on: its incident opening, a step's answer, the end.
    if (/^(SeverityAssigned|ActionCompleted|IncidentResolved)$/.test(entry.event_type)) {
      soon("drills", loadDrills);
    }
  });
}

async function loadOnCall() {  // who is on call now, per schedule (GET /api/v1/oncall)
  const list = $("oncall");
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

async function loadDrills() {  // the latest drills' figures (GET /api/v1/drills)
  const res = await fetch("/api/v1/drills?limit=10").catch(() => null);
  if (!res || !res.ok) return;
  const drills = await res.json();
  const secs = v => v === null ? "—" : v.toFixed(1) + " s";
  const body = $("drills").tBodies[0];
  body.replaceChildren();
  $("no-drills").hidden = drills.length > 0;
  for (const d of drills) {
    const tr = el("tr");
    tr.dataset.drillId = d.id;
    tr.append(el("td", d.scenario), el("td", d.status), el("td", secs(d.detected_s)),
              el("td", secs(d.verified_s)), el("td", secs(d.resolved_s)));
    body.append(tr);
  }
}

function incidentCommand(verb, body, done) {
  return async event => {
    if (event) event.preventDefault();
    if (!selected) return;
    try {
      await send("POST", "/api/v1/incidents/" + encodeURIComponent(selected) + "/" + verb, body());
    } catch (e) { return; }
    if (done) done();
  };
}

function start() {
  $("identity").addEventListener("submit", event => {
    event.preventDefault();
    const name = $("operator").value.trim();
    if (name) sessionStorage.setItem("jarvis-operator", name);
    if ($("token").value) sessionStorage.setItem("jarvis-token", $("token").value);
    showIdentity();
  });
  $("filter-open").addEventListener("click", () => filter("open"));
  $("filter-resolved").addEventListener("click", () => filter("resolved"));
  $("ack").addEventListener("click", incidentCommand("ack", () => ({by: who()})));
  $("note-form").addEventListener("submit", incidentCommand(
    "notes", () => ({by: who(), text: $("note-text").value}), () => { $("note-text").value = ""; }));
  $("resolve-form").addEventListener("submit", incidentCommand(
    "resolve", () => ({by: who(), note: $("resolve-note").value}),
    () => { $("resolve-note").value = ""; }));
  $("silence-form").addEventListener("submit", createSilence);
  $("silence-starts").value = localInput(new Date());
  showIdentity();
  renderPhases([]);
  listen();
  loadIncidents();
  loadApprovals();
  loadSilences();
  loadStats();
  loadOnCall();
  loadDrills();
  setInterval(tick, 1000);
  setInterval(loadOnCall, 60000);
  setInterval(loadStats, 60000);
  setInterval(loadSilences, 30000);  // windows open and close with time
}

start();
