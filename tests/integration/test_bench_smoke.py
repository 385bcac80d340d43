"""The benchmarks of issue 16 run: their helpers measure what they claim, and a short run of
the ingest comparison against a real Alertmanager posts, counts and reports (bounded)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from bench import ingest, triage_cpu, up
from bench._postgres import descendants, written_bytes
from tests.conftest import require

pytestmark = pytest.mark.integration

_HAVE_ALERTMANAGER = os.path.exists(ingest.ALERTMANAGER)


def test_written_bytes_counts_what_this_process_wrote(tmp_path: Path) -> None:
    before = written_bytes(os.getpid())
    with (tmp_path / "x").open("wb") as out:
        out.write(b"x" * 1_000_000)
        out.flush()
        os.fsync(out.fileno())
    assert written_bytes(os.getpid()) - before >= 1_000_000
    assert os.getpid() in descendants(os.getpid())


def test_ingest_report_gives_the_ratio_to_alertmanager() -> None:
    phases = [
        ingest.Phase("alertmanager", 100, requests=50, seconds=1.0, cpu_s=0.1),
        ingest.Phase("jarvis", 100, requests=25, seconds=1.0, cpu_s=0.2),
    ]
    lines = ingest.report(phases)
    assert any("ratio 0.50x" in line and line.startswith("RESULT") for line in lines)
    assert phases[1].cpu_us_per_alert == pytest.approx(80.0)


def test_ingest_report_gives_each_replica_count_its_own_ratio() -> None:
    phases = [
        ingest.Phase("alertmanager", 1, requests=100, seconds=1.0, cpu_s=0.1),
        ingest.Phase("jarvis", 1, requests=50, seconds=1.0, cpu_s=0.1),
        ingest.Phase("jarvis x2", 1, requests=90, seconds=1.0, cpu_s=0.2),
    ]
    results = [line for line in ingest.report(phases) if line.startswith("RESULT")]
    assert [line.split(": ")[1].split(" ")[0:2] for line in results] == [
        ["jarvis", "50"],
        ["jarvis", "x2"],
    ]
    assert "ratio 0.50x" in results[0]
    assert "ratio 0.90x" in results[1]


async def test_drive_spreads_its_workers_over_the_replicas() -> None:
    """Each of the IN_FLIGHT workers keeps to one URL: both replicas get requests."""
    seen: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        await asyncio.sleep(0.001)  # a server takes time: the other workers go meanwhile
        return httpx.Response(202)

    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(transport=transport) as client:
        requests, _elapsed, _next = await ingest.drive(
            client, ["http://one/a", "http://two/a"], lambda first: [{}], 1, 0.1
        )
    assert requests == len(seen) > 0
    assert {"one", "two"} == set(seen)


async def test_alertmanager_baseline_accepts_the_benchmarks_alerts(tmp_path: Path) -> None:
    require(_HAVE_ALERTMANAGER, "prometheus-alertmanager is not installed")
    with ingest.Alertmanager(tmp_path / "am") as am:
        async with httpx.AsyncClient() as client:
            body = [ingest._theirs("t", i, "2026-01-01T00:00:00Z", "2099-01-01T00:00:00Z")
                    for i in range(3)]  # fmt: skip
            requests, _elapsed, following = await ingest.drive(
                client, [f"{am.url}/api/v2/alerts"], lambda first: body, 3, 0.3
            )
            stored = (await client.get(f"{am.url}/api/v2/alerts")).json()
    assert requests > 0
    assert following == 3 * requests
    assert len(stored) == 3  # the same three, merged by their labels


def test_bench_up_drains_a_small_run(capsys: pytest.CaptureFixture[str]) -> None:
    """`jarvis-ir up` as its own process, 200 alerts: drained, and the line to copy printed."""
    assert up.main(["--alerts", "200"]) == 0
    out = capsys.readouterr().out
    assert "RESULT jarvis-ir up:" in out
    assert "200 new fingerprints drained" in out


def test_bench_triage_cpu_measures_a_small_run(capsys: pytest.CaptureFixture[str]) -> None:
    """Triage alone in this process on its own redis-server, both workloads (bounded)."""
    for args in (["--alerts", "300"], ["--alerts", "300", "--storm"]):
        assert triage_cpu.main(args) == 0
        line = capsys.readouterr().out.strip().splitlines()[-1]
        assert line.startswith("RESULT triage CPU, 300 ")
        assert " µs/alert (decoding alone " in line
