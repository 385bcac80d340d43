"""The five drills, end to end, on the real Docker engine: the sandbox stack
(deploy/sandbox/, the Jarvis container names and ports) beside `jarvis-ir up` with the
shipped playbooks and the default settings — remediation switched on for the sandbox's
containers, drills allowed there (deploy/sandbox/jarvis.toml), and a shortened quiet period.

For each scenario `jarvis-ir drill <scenario> --yes` injects the fault and the recorder's
report gives the time from the fault to detection, to each playbook phase, to verified and
to resolved (by itself, after the quiet period). Every drill must end repaired, verified
and resolved by triage, fault → verified ≤ 60 s (the runbook gives a human 15 min just to
respond to a P0), and the memory-pressure drill's `docker.system_prune` must never run: it
waits for an approval, then expires with its incident.

    python -m bench.drills [--demo] [--quiet-period 10] [--scenario NAME ...]
    make demo      (the same, left running with the page on http://127.0.0.1:10300)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from services.recorder.drills import SCENARIOS
from shared.cluster import jarvis_ir_command, wait_until
from shared.embedded_redis import free_port

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "deploy" / "sandbox" / "jarvis.toml"
TARGET_S = 60.0


def _get(client: httpx.Client, path: str) -> Any:
    try:
        response = client.get(path)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def _calm(client: httpx.Client, service: str) -> bool:
    """No incident of the drill's service is open (the last drill is over). Others may be:
    a busy machine's host CPU, say, is an incident of its own."""
    found = _get(client, f"/api/v1/incidents?status=open&service={service}")
    return found is not None and not found


def _problems(report: dict[str, Any]) -> list[str]:
    problems = []
    if report["status"] != "resolved" or report["resolved_by"] != "triage":
        problems.append(f"not resolved by itself (status {report['status']})")
    verified = report["verified_s"]
    if verified is None or verified > TARGET_S:
        problems.append(f"fault → verified {verified} s (target ≤ {TARGET_S:g} s)")
    for step in report["steps"]:
        if step["action"] in ("docker.system_prune", "docker.volume_prune", "redis.flushdb") and (
            step["outcome"] == "succeeded"
        ):
            problems.append(f"{step['action']} ran without an operator's approval")
    return problems


def _table(reports: list[dict[str, Any]]) -> str:
    def cell(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f}"

    head = (
        "| drill | fault | detected | diagnostics done | protect done | fix done | verified "
        "| resolved | status |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        phases = {p["phase"]: p["finished_s"] for p in r["phases"]}
        lines.append(
            f"| {r['scenario']} | {r['fault']} | {cell(r['detected_s'])} s | "
            f"{cell(phases.get('diagnostics'))} s | "
            f"{cell(phases.get('protect'))} s | {cell(phases.get('fix'))} s | "
            f"{cell(r['verified_s'])} s | {cell(r['resolved_s'])} s | {r['status']} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    subprocess.run(["bash", str(ROOT / "scripts" / "sandbox.sh"), "up"], check=True)
    workdir = ROOT / "var" / "drills"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    port = args.port or free_port()
    env = {
        **os.environ,
        "JARVIS_HTTP_PORT": str(port),
        "JARVIS_EMBEDDED_REDIS_PORT": str(args.redis_port or free_port()),
        "JARVIS_DATA_DIR": str(workdir / "var"),
        "JARVIS_TRIAGE__QUIET_PERIOD_S": str(args.quiet_period),
    }
    base = f"http://127.0.0.1:{port}"
    log = (workdir / "up.log").open("wb")
    proc = subprocess.Popen(
        [*jarvis_ir_command(), "up", "--config", str(CONFIG)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    client = httpx.Client(base_url=base, timeout=10)
    reports: list[dict[str, Any]] = []
    try:
        wait_until(lambda: _get(client, "/health") is not None, 90, "jarvis-ir up answering")
        print(f"jarvis-ir up on {base} (log {workdir / 'up.log'}); the page: {base}/", flush=True)
        time.sleep(12)  # a full round of every probe (Docker's every 10 s) on the healthy stack
        for scenario in args.scenario or list(SCENARIOS):
            service = SCENARIOS[scenario].service
            wait_until(lambda s=service: _calm(client, s), 180, f"no open {service} incident")
            drill = subprocess.run(
                [
                    *jarvis_ir_command(),
                    "drill",
                    scenario,
                    "--yes",
                    "--json",
                    "--url",
                    base,
                    "--config",
                    str(CONFIG),
                    "--by",
                    "bench.drills",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=400,
                cwd=ROOT,
            )
            if not drill.stdout.strip():
                raise RuntimeError(f"drill {scenario} printed nothing: {drill.stderr}")
            report = json.loads(drill.stdout)
            # An approval left waiting expires with its incident: wait for that answer too.
            wait_until(
                lambda r=report: all(
                    s["outcome"] not in ("pending", "awaiting_approval")
                    for s in (_get(client, f"/api/v1/drills/{r['id']}") or r)["steps"]
                ),
                30,
                "every step answered",
            )
            report = _get(client, f"/api/v1/drills/{report['id']}") or report
            reports.append(report)
            print(
                f"{scenario}: verified {report['verified_s']} s, resolved "
                f"{report['resolved_s']} s ({report['status']})",
                flush=True,
            )
        if args.demo:
            print(f"\nthe loop closed {len(reports)} times; see {base}/ — Ctrl-C stops the demo")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        (workdir / "reports.json").write_text(json.dumps(reports, indent=2, default=str))
        client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if not args.keep_sandbox:
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "sandbox.sh"), "down"],
                check=False,
                capture_output=True,
            )
    table = _table(reports)
    (workdir / "report.md").write_text(table + "\n")
    print(f"\nshipped playbooks, default settings, quiet period {args.quiet_period:g} s:\n")
    print(table)
    failed = {r["scenario"]: _problems(r) for r in reports if _problems(r)}
    for scenario, problems in failed.items():
        print(f"FAILED {scenario}: {'; '.join(problems)}")
    print(f"\n{len(reports) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or len(reports) != len(args.scenario or SCENARIOS) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.drills", description=__doc__)
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS))
    parser.add_argument("--quiet-period", type=float, default=10.0)
    parser.add_argument("--port", type=int, help="jarvis-ir up's port (default: a free one)")
    parser.add_argument("--redis-port", type=int, help="embedded Redis (default: a free one)")
    parser.add_argument("--demo", action="store_true", help="stay up until Ctrl-C")
    parser.add_argument("--keep-sandbox", action="store_true", help="leave the sandbox running")
    return run(parser.parse_args(argv or []))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
