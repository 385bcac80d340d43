"""Checks of scripts/compose-proof.sh against a running compose stack (standard library only).

`wait-healthy`: every container of the project runs and its healthcheck passes.
`run`: (0) trust: with tokens, TLS and Redis users on, a write or a read without the token is
refused, plain HTTP gets no answer, Redis refuses a client without a password and a service
user outside its streams;
(1) smoke test: one Alertmanager webhook → an incident with a timeline in the recorder;
(1b) scale-out (issue 16), with the stack up as `--scale detector=2 --scale triage=3
--scale escalator=2`: as many containers run; exactly one detector holds the prober lease
(its /health says `prober`, the lease key names its term); alerts posted to either detector
flow, and one posted to both at once ends in one incident, which was opened once;
(2) restart test: alerts keep flowing while the recorder crashes (its process is SIGKILLed, the
restart policy brings it back) and triage is `docker kill`ed (compose starts it again); then
every alert the detector accepted is in exactly one incident's timeline, once.

The webhook is POST /webhooks/alertmanager; while that route is missing (404) the checks fall
back to POST /api/v1/alerts and say so.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.client import HTTPException as HttpProtocolError
from typing import Any

WEBHOOK = "/webhooks/alertmanager"
API = "/api/v1/alerts"
DEAD_LETTER = "jarvis:dead-letter"


class ProofError(Exception):
    """A check failed; the message says which and why."""


@dataclass
class Access:
    """How the checks reach the stack: its bearer token, the CA of its HTTPS certificate,
    Redis' admin password. Set once from the command line."""

    token: str = ""
    tls: ssl.SSLContext | None = None
    redis_admin_password: str = ""


ACCESS = Access()


# --------------------------------------------------------------------------- HTTP


def http(
    method: str, url: str, body: Any = None, timeout: float = 10.0, *, token: bool = True
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token and ACCESS.token:
        request.add_header("Authorization", f"Bearer {ACCESS.token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=ACCESS.tls) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    try:
        return status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return status, raw.decode("utf-8", "replace")


# --------------------------------------------------------------------------- Docker


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise ProofError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def containers(project: str, service: str | None = None) -> list[str]:
    filters = ["--filter", f"label=com.docker.compose.project={project}"]
    if service:
        filters += ["--filter", f"label=com.docker.compose.service={service}"]
    return docker("ps", "-a", "-q", *filters).split()


def state(container: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(docker("inspect", "-f", "{{json .State}}", container))
    result["RestartCount"] = int(docker("inspect", "-f", "{{.RestartCount}}", container))
    result["Name"] = docker("inspect", "-f", "{{.Name}}", container).lstrip("/")
    return result


def health(st: dict[str, Any]) -> str:
    if st.get("Health"):
        return str(st["Health"]["Status"])
    return "running" if st.get("Running") else str(st.get("Status"))


def wait_healthy(project: str, timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        ids = containers(project)
        seen = {}
        for cid in ids:
            st = state(cid)
            seen[st["Name"]] = health(st)
        if ids and all(s in {"healthy", "running"} for s in seen.values()):
            return seen
        time.sleep(1)
    raise ProofError(f"containers not healthy after {timeout:.0f} s: {seen}")


# --------------------------------------------------------------------------- alerts


@dataclass
class Sender:
    """Posts alerts to the detector, through the Alertmanager webhook when it exists."""

    detector: str
    run: str
    mode: str = WEBHOOK
    notes: list[str] = field(default_factory=list)

    def labels(self, seq: str) -> dict[str, str]:
        return {
            "alertname": "JarvisResponderProof",
            "service": f"proof-{self.run}",
            "severity": "warning",
            "proof_run": self.run,
            "proof_seq": seq,
        }

    def webhook_body(self, seqs: list[str]) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        alerts = [
            {
                "status": "firing",
                "labels": self.labels(seq),
                "annotations": {
                    "summary": summary_of(self.run, seq),
                    "description": "sent by scripts/compose-proof.sh",
                },
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": fingerprint_of(self.run, seq),
            }
            for seq in seqs
        ]
        return {
            "version": "4",
            "groupKey": f'{{}}:{{proof_run="{self.run}"}}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "jarvis-responder",
            "groupLabels": {"proof_run": self.run},
            "commonLabels": {"alertname": "JarvisResponderProof", "proof_run": self.run},
            "commonAnnotations": {},
            "externalURL": "http://127.0.0.1:9093",
            "alerts": alerts,
        }

    def api_body(self, seqs: list[str]) -> list[dict[str, Any]]:
        return [
            {
                "source": "alertmanager",
                "service": f"proof-{self.run}",
                "check": "JarvisResponderProof",
                "summary": summary_of(self.run, seq),
                "fingerprint": fingerprint_of(self.run, seq),
                "labels": self.labels(seq),
            }
            for seq in seqs
        ]

    def send(self, seqs: list[str]) -> int:
        """POST one batch; returns the HTTP status (0 when the detector did not answer)."""
        body = self.webhook_body(seqs) if self.mode == WEBHOOK else self.api_body(seqs)
        try:
            status, answer = http("POST", self.detector + self.mode, body)
        except OSError as exc:
            self.notes.append(f"batch {seqs[0]}..: {exc}")
            return 0
        if status == 404 and self.mode == WEBHOOK:
            self.notes.append(f"{WEBHOOK} answered 404: fell back to {API}")
            self.mode = API
            return self.send(seqs)
        if status >= 300:
            self.notes.append(f"batch {seqs[0]}..: HTTP {status} {answer}")
        return status


def summary_of(run: str, seq: str) -> str:
    return f"compose proof alert {run} {seq}"


def fingerprint_of(run: str, seq: str) -> str:
    return f"proof-{run}-{seq}"


def seq_of_fingerprint(fingerprint: str, run: str) -> str | None:
    """The proof sequence of an event's fingerprint: the detector keeps the sender's as the
    last part of its own (`ext:<integration>:am:proof-<run>-<seq>` for a webhook)."""
    sent = fingerprint.rsplit(":", 1)[-1]
    prefix = fingerprint_of(run, "")
    return sent.removeprefix(prefix) if sent.startswith(prefix) else None


def seq_of(event: dict[str, Any], run: str) -> str | None:
    """The proof sequence an AlertRaised, or the triage event that opened its incident, is for."""
    if event.get("event_type") == "AlertRaised":
        labels = event.get("labels") or {}
        return str(labels["proof_seq"]) if labels.get("proof_run") == run else None
    if event.get("event_type") == "SeverityAssigned" and event.get("previous_severity") is None:
        seq = seq_of_fingerprint(str(event.get("fingerprint") or ""), run)
        if seq is not None:
            return seq
        match = re.search(rf"compose proof alert {run} (\S+)", str(event.get("title") or ""))
        return match.group(1) if match else None
    return None


def timelines(recorder: str, since: str) -> dict[str, list[dict[str, Any]]]:
    """Every incident opened since `since`, with its timeline."""
    result: dict[str, list[dict[str, Any]]] = {}
    offset = 0
    while True:
        query = urllib.parse.urlencode({"since": since, "limit": 1000, "offset": offset})
        status, page = http("GET", f"{recorder}/api/v1/incidents?{query}")
        if status != 200:
            raise ProofError(f"GET /api/v1/incidents: HTTP {status} {page}")
        for incident in page:
            status, entries = http("GET", f"{recorder}/api/v1/incidents/{incident['id']}/timeline")
            if status != 200:
                raise ProofError(f"GET timeline of {incident['id']}: HTTP {status} {entries}")
            result[incident["id"]] = entries
        if len(page) < 1000:
            return result
        offset += len(page)


@dataclass
class Placement:
    """Where one proof alert shows up in the recorder."""

    incidents: set[str] = field(default_factory=set)  # incidents it opened or is listed in
    alert_entries: int = 0  # its own AlertRaised entries across all timelines
    event_types: list[str] = field(default_factory=list)


def where_recorded(recorder: str, since: str, run: str) -> dict[str, Placement]:
    """proof_seq → the incidents whose timeline holds the alert or the event it opened."""
    found: dict[str, Placement] = {}
    for incident_id, entries in timelines(recorder, since).items():
        for entry in entries:
            event = entry.get("event") or {}
            seq = seq_of(event, run)
            if seq is None:
                continue
            placement = found.setdefault(seq, Placement())
            placement.incidents.add(incident_id)
            placement.event_types = [e["event_type"] for e in entries]
            if event.get("event_type") == "AlertRaised":
                placement.alert_entries += 1
    return found


def unlinked(found: dict[str, Placement], seqs: list[str]) -> list[str]:
    """Alerts whose incident exists but whose own AlertRaised entry is not in its timeline."""
    return [s for s in seqs if s in found and found[s].alert_entries == 0]


# --------------------------------------------------------------------------- checks


def smoke(sender: Sender, recorder: str, since: str, timeout: float, strict: bool) -> list[str]:
    status = sender.send(["smoke"])
    if not 200 <= status < 300:
        raise ProofError(f"smoke: the detector answered {status}: {sender.notes}")
    deadline = time.monotonic() + timeout
    placement = None
    while time.monotonic() < deadline:
        placement = where_recorded(recorder, since, sender.run).get("smoke")
        if placement and placement.alert_entries:
            break
        if placement:  # the incident is there: give the alert's own entry a few seconds
            deadline = min(deadline, time.monotonic() + 5)
        time.sleep(0.5)
    if placement is None or not placement.incidents:
        raise ProofError(f"smoke: no incident for the alert after {timeout:.0f} s")
    if len(placement.incidents) != 1:
        raise ProofError(f"smoke: the alert is in several incidents: {placement.incidents}")
    lines = [
        f"smoke: {sender.mode} → incident {next(iter(placement.incidents))}, "
        f"timeline: {', '.join(placement.event_types)}"
    ]
    if not placement.alert_entries:
        problem = (
            "smoke: the incident was opened, but the alert's own AlertRaised entry is not "
            "in its timeline (the recorder did not link it)"
        )
        if strict:
            raise ProofError(problem)
        lines.append(f"WARNING {problem}")
    return lines


def detector_replicas(detector: str, span: int = 10) -> list[str]:
    """The detectors answering on the ports of the first one's span (host networking: each
    replica serves on the first free port of its span)."""
    parts = urllib.parse.urlsplit(detector)
    found = []
    for port in range(parts.port or 443, (parts.port or 443) + span):
        url = f"{parts.scheme}://{parts.hostname}:{port}"
        try:
            status, _ = http("GET", url + "/health", timeout=3)
        except OSError:
            continue
        if status in (200, 503):
            found.append(url)
    return found


def scale_test(
    sender: Sender, project: str, scale: dict[str, int], recorder: str, since: str, timeout: float
) -> list[str]:
    running = {svc: len(containers(project, svc)) for svc in scale}
    if running != scale:
        raise ProofError(f"scale: containers per service {running}, expected {scale}")
    urls = detector_replicas(sender.detector)
    if len(urls) != scale.get("detector", 1):
        raise ProofError(f"scale: detectors answering {urls}, expected {scale.get('detector')}")

    def probers() -> list[str]:
        return [u for u in urls if http("GET", u + "/health")[1]["services"]["detector"]["prober"]]

    deadline = time.monotonic() + 30
    while len(holding := probers()) != 1 and time.monotonic() < deadline:
        time.sleep(1)
    if len(holding) != 1:
        raise ProofError(f"scale: detectors holding the prober lease: {holding}, expected one")
    lease = redis_cli(project, "GET", "jarvis:detector:prober")
    if ":" not in lease:
        raise ProofError(f"scale: no prober lease in Redis: {lease}")
    # One alert to each detector, and one to both at once (one fingerprint, two events).
    senders = [Sender(url, sender.run, sender.mode) for url in urls]
    statuses: list[int] = []
    both = [
        threading.Thread(target=lambda s=s: statuses.append(s.send(["scale-both"])))
        for s in senders
    ]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join(30)
    for n, one in enumerate(senders):
        statuses.append(one.send([f"scale-{n}"]))
    if not all(200 <= st < 300 for st in statuses):
        raise ProofError(f"scale: the detectors answered {statuses}: {[s.notes for s in senders]}")
    wanted = ["scale-both", *(f"scale-{n}" for n in range(len(senders)))]
    deadline = time.monotonic() + timeout
    reached: dict[str, set[str]] = {}
    while time.monotonic() < deadline:
        reached = decided(recorder, since, sender.run, wanted)
        if all(reached.get(s) for s in wanted):
            break
        time.sleep(1)
    missing = [s for s in wanted if not reached.get(s)]
    if missing:
        raise ProofError(f"scale: alerts triage never put in an incident: {missing}")
    incidents = {i for s in wanted for i in reached[s]}
    if len(incidents) != 1:
        raise ProofError(f"scale: the alerts are in several incidents: {incidents}")
    opened = opened_for(recorder, since, sender.run, "scale-both")
    if opened > 1:
        raise ProofError(f"scale: the incident of the alert sent to both was opened {opened} times")
    # Its two copies: the recorder stores one and counts the other, and triage reacts to
    # either (the replica that wins): the stored one must be on the incident's timeline.
    raw = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        raw = where_recorded(recorder, since, sender.run).get("scale-both")
        if raw and raw.alert_entries:
            break
        time.sleep(1)
    if raw is None or raw.incidents != incidents or raw.alert_entries != 1:
        raise ProofError(
            "scale: the alert sent to both detectors is not once on its incident's timeline: "
            f"{raw.alert_entries if raw else 0} time(s), in {raw.incidents if raw else set()}"
        )
    return [
        "scale: containers " + ", ".join(f"{svc} {n}" for svc, n in running.items()),
        f"scale: detectors at {', '.join(urls)}; prober lease held by {holding[0]} ({lease})",
        f"scale: an alert to each detector and one to both at once → incident "
        f"{next(iter(incidents))} (triage's events for each), opened once; the raw alert sent "
        "to both is on that timeline once (the other copy counted)",
    ]


def decided(recorder: str, since: str, run: str, seqs: list[str]) -> dict[str, set[str]]:
    """proof_seq → the incidents whose timeline holds triage's decision on the alert (the
    SeverityAssigned it opened or the AlertCorrelated it joined with) or the alert itself."""
    found: dict[str, set[str]] = {}
    for incident_id, entries in timelines(recorder, since).items():
        for entry in entries:
            event = entry.get("event") or {}
            seq = seq_of_fingerprint(str(event.get("fingerprint") or ""), run) or seq_of(event, run)
            if seq in seqs:
                found.setdefault(seq, set()).add(incident_id)
    return found


def opened_for(recorder: str, since: str, run: str, seq: str) -> int:
    """How many SeverityAssigned opened an incident (previous_severity null) for the alert
    `seq` in the run's incidents."""
    seen = set()
    for entries in timelines(recorder, since).values():
        for entry in entries:
            event = entry.get("event") or {}
            if (
                event.get("event_type") == "SeverityAssigned"
                and event.get("previous_severity") is None
                and seq_of_fingerprint(str(event.get("fingerprint") or ""), run) == seq
            ):
                seen.add(event.get("event_id"))
    return len(seen)


def crash(container: str) -> None:
    """SIGKILL the container's main process from the host, as an OOM kill or crash would."""
    pid = int(docker("inspect", "-f", "{{.State.Pid}}", container))
    if pid <= 0:
        raise ProofError(f"{container} is not running")
    subprocess.run(["kill", "-KILL", str(pid)], check=True)


def restart_test(
    sender: Sender,
    project: str,
    compose: list[str],
    recorder: str,
    since: str,
    *,
    scale: dict[str, int],
    batches: int,
    batch_size: int,
    timeout: float,
    strict: bool,
) -> list[str]:
    accepted: list[str] = []
    sent = 0
    events: list[str] = []
    recorder_c = containers(project, "recorder")[0]
    triage_c = containers(project, "triage")[0]
    before = {c: state(c) for c in (recorder_c, triage_c)}

    triage_n = scale.get("triage", 1)

    def disrupt() -> None:
        time.sleep(batches * 0.1 / 4)
        crash(recorder_c)
        events.append("recorder's process SIGKILLed (crash)")
        time.sleep(batches * 0.1 / 4)
        docker("kill", triage_c)
        events.append("triage container `docker kill`ed")
        time.sleep(1.0)
        subprocess.run(
            [*compose, "up", "-d", "--no-build", "--scale", f"triage={triage_n}", "triage"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        events.append("triage started again by `compose up -d`")

    disruptor = threading.Thread(target=disrupt, daemon=True)
    disruptor.start()
    for batch in range(batches):
        seqs = [f"{batch:04d}-{i:02d}" for i in range(batch_size)]
        sent += len(seqs)
        if 200 <= sender.send(seqs) < 300:
            accepted.extend(seqs)
        time.sleep(0.1)
    disruptor.join(timeout=180)
    if disruptor.is_alive():
        raise ProofError("restart: the disruption did not finish")

    after = {c: state(c) for c in (recorder_c, triage_c)}
    if after[recorder_c]["RestartCount"] <= before[recorder_c]["RestartCount"]:
        # The policy may still be waiting out its back-off: give it a moment.
        wait_healthy(project, 60)
        after[recorder_c] = state(recorder_c)
        if after[recorder_c]["RestartCount"] <= before[recorder_c]["RestartCount"]:
            raise ProofError("restart: the recorder was not restarted by its restart policy")
    if after[triage_c]["StartedAt"] == before[triage_c]["StartedAt"]:
        raise ProofError("restart: triage was not started again")
    wait_healthy(project, 90)
    if not accepted:
        raise ProofError(f"restart: no alert was accepted: {sender.notes}")

    deadline = time.monotonic() + timeout
    missing: list[str] = accepted
    found: dict[str, Placement] = {}
    loose_before: list[str] = []
    settled_at = time.monotonic()
    while time.monotonic() < deadline:
        found = where_recorded(recorder, since, sender.run)
        doubled = {s: sorted(p.incidents) for s, p in found.items() if len(p.incidents) > 1}
        if doubled:
            raise ProofError(f"restart: alerts in more than one incident: {doubled}")
        missing = [s for s in accepted if s not in found]
        loose = unlinked(found, accepted)
        if loose != loose_before:
            loose_before, settled_at = loose, time.monotonic()
        # Done when everything is in place, or when only links are missing and that has
        # not changed for a while (the recorder links an entry once, when it records it).
        if not missing and (not loose or time.monotonic() - settled_at > 10):
            break
        time.sleep(1.0)
    if missing:
        raise ProofError(
            f"restart: {len(missing)} of {len(accepted)} accepted alerts never reached an "
            f"incident, e.g. {missing[:5]}"
        )
    repeated = [s for s in accepted if found[s].alert_entries > 1]
    if repeated:
        raise ProofError(f"restart: alerts recorded more than once: {repeated[:5]}")
    loose = unlinked(found, accepted)
    link_note = []
    if loose:
        problem = (
            f"restart: {len(loose)} of {len(accepted)} alerts opened their incident, but their "
            f"own AlertRaised entry is not in its timeline (the recorder did not link them), "
            f"e.g. {loose[:3]}"
        )
        if strict:
            raise ProofError(problem)
        link_note.append(f"WARNING {problem}")
    dead = redis_cli(project, "XLEN", DEAD_LETTER)
    if dead.strip() not in {"0", "(integer) 0"}:
        raise ProofError(f"restart: {dead.strip()} entries in jarvis:dead-letter")
    return [
        *events,
        f"recorder restarts: {before[recorder_c]['RestartCount']} → "
        f"{after[recorder_c]['RestartCount']}; triage started at "
        f"{before[triage_c]['StartedAt']} then {after[triage_c]['StartedAt']}",
        f"alerts sent {sent}, accepted (2xx) {len(accepted)}, each in exactly one incident "
        f"{len(accepted)}, with its own entry in that timeline {len(accepted) - len(loose)}, "
        f"lost 0, duplicated 0, dead letters 0",
        *link_note,
    ]


def redis_cli(project: str, *args: str, user: str = "admin", password: str | None = None) -> str:
    """redis-cli in the Redis container, as `user` (admin: the operators' user); no user:
    an unauthenticated client. Answers and errors both come back as text."""
    redis_c = containers(project, "redis")[0]
    auth = [] if not user else ["--user", user, "--no-auth-warning"]
    env = [] if not user else ["-e", f"REDISCLI_AUTH={password or ACCESS.redis_admin_password}"]
    argv = ["exec", *env, redis_c, "redis-cli", "-p", redis_port(redis_c), *auth, *args]
    done = subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=60)
    return (done.stdout + done.stderr).strip()


def trust(detector: str, recorder: str, project: str) -> list[str]:
    """The stack refuses who is not an operator or a service (issue 18)."""
    lines = []
    status, _ = http("POST", detector + WEBHOOK, {"alerts": []}, token=False)
    if status != 401:
        raise ProofError(f"trust: an Alertmanager webhook without the token answered {status}")
    status, _ = http("GET", recorder + "/api/v1/incidents", token=False)
    if status != 401:
        raise ProofError(f"trust: a read without the token answered {status}")
    lines.append("trust: a webhook and a read without the bearer token: 401")
    if detector.startswith("https://"):
        plain = "http://" + detector.removeprefix("https://")
        try:
            urllib.request.urlopen(plain + "/health", timeout=5)
        except (urllib.error.URLError, OSError, HttpProtocolError):
            lines.append("trust: plain HTTP to the detector gets no answer (HTTPS only)")
        else:
            raise ProofError("trust: the detector answered plain HTTP")
    anonymous = redis_cli(project, "XADD", "jarvis:incidents", "*", "x", "1", user="")
    if "NOPERM" not in anonymous and "NOAUTH" not in anonymous:
        raise ProofError(f"trust: Redis took an unauthenticated XADD: {anonymous}")
    lines.append("trust: Redis refuses a client without a password (it may only PING)")
    return lines


def redis_port(container: str) -> str:
    """The port redis-server listens on inside its container (from its command line)."""
    args = json.loads(docker("inspect", "-f", "{{json .Args}}", container))
    return str(args[args.index("--port") + 1]) if "--port" in args else "6379"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    wait = sub.add_parser("wait-healthy")
    wait.add_argument("--project", required=True)
    wait.add_argument("--timeout", type=float, default=150)
    run = sub.add_parser("run")
    run.add_argument("--project", required=True)
    run.add_argument("--compose", required=True, help="the compose command line, quoted")
    run.add_argument("--detector", required=True)
    run.add_argument("--recorder", required=True)
    run.add_argument("--summary", required=True)
    run.add_argument(
        "--scale", default="", help="the stack's --scale flags, e.g. '--scale triage=3'"
    )
    run.add_argument("--token", default="", help="JARVIS_API_TOKEN of the stack")
    run.add_argument("--cafile", help="the CA (or self-signed certificate) of its HTTPS")
    run.add_argument("--redis-admin-password", default="", help="Redis user admin's")
    run.add_argument("--batches", type=int, default=80)
    run.add_argument("--batch-size", type=int, default=5)
    run.add_argument(
        "--lenient",
        action="store_true",
        help="only warn when an alert opened its incident but is not itself in its timeline",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "wait-healthy":
            for name, status in sorted(wait_healthy(args.project, args.timeout).items()):
                print(f"{name}: {status}")
            return 0
        ACCESS.token = args.token
        ACCESS.tls = ssl.create_default_context(cafile=args.cafile) if args.cafile else None
        ACCESS.redis_admin_password = args.redis_admin_password
        since = datetime.now(UTC).isoformat()
        sender = Sender(args.detector, uuid.uuid4().hex[:12])
        lines = [f"run {sender.run}"]
        lines += trust(args.detector, args.recorder, args.project)
        started = time.monotonic()
        lines += smoke(sender, args.recorder, since, timeout=60, strict=not args.lenient)
        lines.append(f"smoke test took {time.monotonic() - started:.1f} s")
        scale = {
            svc: int(n)
            for svc, n in (f.split("=") for f in shlex.split(args.scale) if f != "--scale")
        }
        if scale:
            started = time.monotonic()
            lines += scale_test(sender, args.project, scale, args.recorder, since, timeout=90)
            lines.append(f"scale-out test took {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        lines += restart_test(
            sender,
            args.project,
            shlex.split(args.compose),
            args.recorder,
            since,
            scale=scale,
            batches=args.batches,
            batch_size=args.batch_size,
            timeout=180,
            strict=not args.lenient,
        )
        lines.append(f"restart test took {time.monotonic() - started:.1f} s")
        lines += [f"note: {n}" for n in dict.fromkeys(sender.notes)]
    except ProofError as exc:
        print(f"compose-proof check failed: {exc}", file=sys.stderr)
        return 1
    text = "\n".join(f"  {line}" for line in lines) + "\n"
    print(text, end="")
    with open(args.summary, "w") as out:
        out.write("compose-proof summary:\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
