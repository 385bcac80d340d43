"""A Redis master, its replica and three sentinels on loopback ports, for the failover test.

Every server wants a password (the data's, and the sentinels' own, which differ) and binds
127.0.0.1 only. Timings are compressed: a master is taken for down after
`down_after_ms` and a failover may restart after `failover_timeout_ms`.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis as redis_sync

from shared.cluster import wait_until
from shared.embedded_redis import find_redis_server, free_port

__all__ = ["SentinelSet"]


def _sentinel_binary() -> str | None:
    # redis-server --sentinel does the same as Debian's redis-sentinel.
    return shutil.which("redis-sentinel") or shutil.which("redis-server")


@dataclass
class SentinelSet:
    workdir: Path
    master_name: str = "jarvis"
    down_after_ms: int = 1000
    failover_timeout_ms: int = 3000
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    sentinel_password: str = field(default_factory=lambda: secrets.token_hex(12))
    data_ports: list[int] = field(default_factory=list)  # [first master, first replica]
    sentinel_ports: list[int] = field(default_factory=list)
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @staticmethod
    def available() -> str | None:
        """Why the set cannot run here, or None."""
        if not shutil.which("redis-server"):
            return "Debian's redis-server is not installed"
        return None if _sentinel_binary() else "redis-sentinel is not installed"

    # -- addresses -------------------------------------------------------------------
    def url(self, db: int = 0) -> str:
        """The services' REDIS_URL: every sentinel, the master's name and password."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://:{self.password}@{hosts}/{self.master_name}/{db}"

    def client(self, port: int) -> redis_sync.Redis:
        return redis_sync.Redis(
            host="127.0.0.1", port=port, password=self.password, socket_timeout=2
        )

    def sentinel_client(self, port: int) -> redis_sync.Redis:
        return redis_sync.Redis(
            host="127.0.0.1", port=port, password=self.sentinel_password, socket_timeout=1
        )

    def master_port(self) -> int | None:
        """The master's port as the sentinels' majority names it."""
        votes: dict[int, int] = {}
        for port in self.sentinel_ports:
            with (
                contextlib.suppress(redis_sync.RedisError, OSError),
                self.sentinel_client(port) as sentinel,
            ):
                addr = sentinel.sentinel_get_master_addr_by_name(self.master_name)
                if addr:
                    votes[int(addr[1])] = votes.get(int(addr[1]), 0) + 1
        best = max(votes.items(), key=lambda kv: kv[1], default=None)
        return best[0] if best and best[1] >= 2 else None

    # -- processes -------------------------------------------------------------------
    def _spawn(self, port: int, args: list[str]) -> None:
        log = (self.workdir / f"redis-{port}.log").open("ab")
        self.procs[port] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def _data_conf(self, port: int, replica_of: int | None) -> Path:
        folder = self.workdir / f"data-{port}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"port {port}",
            "bind 127.0.0.1",
            f"dir {folder}",
            'save ""',
            "appendonly no",
            f"requirepass {self.password}",
            f"masterauth {self.password}",
        ]
        if replica_of:
            lines.append(f"replicaof 127.0.0.1 {replica_of}")
        path = folder / "redis.conf"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path

    def _sentinel_conf(self, port: int, master: int) -> Path:
        folder = self.workdir / f"sentinel-{port}"
        folder.mkdir(parents=True, exist_ok=True)
        name = self.master_name
        lines = [
            f"port {port}",
            "bind 127.0.0.1",
            f"dir {folder}",
            f"requirepass {self.sentinel_password}",
            f"sentinel sentinel-pass {self.sentinel_password}",
            f"sentinel monitor {name} 127.0.0.1 {master} 2",
            f"sentinel auth-pass {name} {self.password}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        path = folder / "sentinel.conf"  # sentinels rewrite their file: theirs alone
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path

    def start(self, timeout_s: float = 20.0) -> None:
        server = find_redis_server()
        sentinel = _sentinel_binary()
        assert sentinel
        master, replica = free_port(), free_port()
        self.data_ports = [master, replica]
        self._spawn(master, [server, str(self._data_conf(master, None))])
        self._spawn(replica, [server, str(self._data_conf(replica, master))])
        self.sentinel_ports = [free_port() for _ in range(3)]
        for port in self.sentinel_ports:
            args = [sentinel, str(self._sentinel_conf(port, master))]
            if not sentinel.endswith("redis-sentinel"):
                args.append("--sentinel")
            self._spawn(port, args)
        wait_until(self._ready, timeout_s, "master, replica in sync and three sentinels")

    def _ready(self) -> bool:
        try:
            info = self.client(self.data_ports[0]).info("replication")
            if int(info.get("connected_slaves", 0)) < 1:
                return False
            replica = self.client(self.data_ports[1]).info("replication")
            if replica.get("master_link_status") != "up":
                return False
            for port in self.sentinel_ports:
                state = self.sentinel_client(port).sentinel_master(self.master_name)
                if int(state["num-other-sentinels"]) < 2 or int(state["num-slaves"]) < 1:
                    return False
        except (redis_sync.RedisError, OSError, KeyError):
            return False
        return True

    def kill(self, port: int) -> None:
        """SIGKILL: no shutdown, nothing flushed, connections reset."""
        proc = self.procs[port]
        proc.kill()
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_tail(self, chars: int = 3000) -> str:
        parts = []
        for path in sorted(self.workdir.glob("redis-*.log")):
            parts.append(f"== {path.name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)
