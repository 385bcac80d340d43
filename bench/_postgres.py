"""Helpers of the benchmarks: a throw-away PostgreSQL cluster (fsync on), the bytes
processes wrote to storage, and stopping what a benchmark started.

`ThrowawayPostgres` starts a cluster the way scripts/with-test-servers.sh does (initdb,
trust on 127.0.0.1 only, as the `postgres` account when run as root), except that fsync
stays on: a benchmark measures a durable database. `written_bytes` sums `write_bytes` of
/proc/<pid>/io (what the kernel sent, or will send, to storage for the process) over a
process and, optionally, all of its descendants (a PostgreSQL cluster's backends, WAL
writer, checkpointer and background writer).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from glob import glob
from pathlib import Path

from shared.embedded_redis import free_port

__all__ = ["ThrowawayPostgres", "descendants", "stop", "written_bytes"]


def stop(proc: subprocess.Popen[bytes] | None, timeout_s: float = 30) -> None:
    """SIGTERM a process the benchmark started and wait; SIGKILL it when it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (Linux /proc children lists)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for children in glob(f"/proc/{current}/task/*/children"):
            try:
                todo += [int(c) for c in Path(children).read_text().split()]
            except OSError:
                continue
    return out


def written_bytes(pid: int, *, tree: bool = False) -> int:
    """Bytes `pid` (and its descendants when `tree`) wrote to storage so far."""
    total = 0
    for each in descendants(pid) if tree else [pid]:
        try:
            for line in Path(f"/proc/{each}/io").read_text().splitlines():
                if line.startswith("write_bytes:"):
                    total += int(line.split()[1])
        except OSError:  # exited meanwhile: what it wrote is no longer counted anywhere
            continue
    return total


def _pg_bin() -> Path | None:
    found = sorted(glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temp dir on a free loopback port; fsync on."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (/usr/lib/postgresql/*/bin)")
        self.dir = Path(tempfile.mkdtemp(prefix="jarvis-bench-pg-"))
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://jarvis@127.0.0.1:{self.port}/jarvis_bench"

    @property
    def pid(self) -> int:
        """The postmaster's pid."""
        return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def _run(self, *args: str) -> None:
        command = [str(a) for a in args]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def __enter__(self) -> ThrowawayPostgres:
        assert self.bin is not None
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        data = self.dir / "data"
        self._run(f"{self.bin}/initdb", "-D", str(data), "-U", "jarvis", "--auth=trust",
                  "-E", "UTF8")  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c max_connections=100"
        )
        self._run(
            f"{self.bin}/pg_ctl", "-D", str(data), "-l", str(self.dir / "server.log"),
            "-w", "-t", "60", "-o", options, "start",
        )  # fmt: skip
        self._run(f"{self.bin}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "jarvis",
                  "jarvis_bench")  # fmt: skip
        return self

    def __exit__(self, *_: object) -> None:
        assert self.bin is not None
        try:
            self._run(f"{self.bin}/pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
