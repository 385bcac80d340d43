"""Stand-ins for the Jarvis stack's HTTP services, small enough to start in a second, with
the behaviour the playbooks care about (Python standard library only).

    standin.py backend --port 10010 --ollama http://127.0.0.1:10104 --startup-delay 3
    standin.py ollama  --port 10104 --load-delay 2 --state /var/lib/ollama-standin
    standin.py alerts  --port 10200 --path /api/v1/alerts        (Prometheus, Grafana)

- backend: listens only after its startup delay (like a FastAPI app loading); `GET /health`
  → `{"status": "healthy"}`, `POST /simple-chat` asks Ollama's `/api/generate` (so a chat
  fails while Ollama is down or has no model), `GET /public/metrics` → `{"system": …}`.
- ollama: `/api/tags`, `/api/pull` (a second per model), `/api/generate` (404 "model not
  found, try pulling it first" without the model), `DELETE /api/delete`, models kept in a
  state file across restarts (pre-provisioned with tinyllama); listens only after its
  load delay. `POST /sandbox/memory {"percent": 90}` holds that share of the container's
  memory limit (the memory-pressure drill); a restart frees it, as with a leaking model.
- alerts: answers the configured path with no firing alert.
Binds 127.0.0.1 only; nothing here is meant to face a network.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

HELD: list[bytes] = []  # memory held for the memory-pressure drill
DEFAULT_MODELS = ["tinyllama:latest"]


def memory_limit() -> int:
    """The container's memory limit (cgroup v2, then v1)."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 50:
            return int(raw)
    raise RuntimeError("no memory limit set on this container")


def memory_usage() -> int:
    for path in ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"):
        try:
            return int(Path(path).read_text().strip())
        except (OSError, ValueError):
            continue
    return 0


class Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, Any]] = {}
    protocol_version = "HTTP/1.1"

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        try:
            data = json.loads(self.rfile.read(length))
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _answer(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> None:
        route = self.routes.get(f"{self.command} {self.path.split('?')[0]}")
        if route is None:
            self._answer(404, {"detail": "Not Found"})
            return
        status, payload = route(self._body() if self.command in ("POST", "DELETE") else {})
        self._answer(status, payload)

    do_GET = do_POST = do_DELETE = _route

    def log_message(self, *args: Any) -> None:
        pass  # quiet: the detector counts error lines in container logs


def _hold(size: int, chunk: int = 8 << 20) -> None:
    """Fill `size` bytes a chunk at a time (written, so resident), yielding the interpreter
    between chunks: one huge allocation would hold it long enough for probes to time out,
    and the drill is about memory, not a hung API."""
    while size > 0:
        HELD.append(b"\x01" * min(chunk, size))
        size -= chunk
        time.sleep(0.002)


def backend_routes(ollama: str) -> dict[str, Any]:
    started = time.time()
    served = [0]

    def health(_: dict[str, Any]) -> tuple[int, Any]:
        served[0] += 1
        return 200, {"status": "healthy", "uptime_s": round(time.time() - started, 1)}

    def chat(body: dict[str, Any]) -> tuple[int, Any]:
        served[0] += 1
        request = urllib.request.Request(
            f"{ollama}/api/generate",
            data=json.dumps(
                {"model": "tinyllama", "prompt": str(body.get("message", "")), "stream": False}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                reply = json.loads(answer.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return 503, {"detail": f"model inference failed: {exc}"}
        return 200, {"response": reply.get("response", ""), "model": reply.get("model")}

    def metrics(_: dict[str, Any]) -> tuple[int, Any]:
        return 200, {
            "system": {"uptime_s": round(time.time() - started, 1), "requests": served[0]},
        }

    return {"GET /health": health, "POST /simple-chat": chat, "GET /public/metrics": metrics}


def ollama_routes(state: Path) -> dict[str, Any]:
    lock = threading.Lock()

    def load() -> list[str]:
        try:
            return list(json.loads(state.read_text()))
        except (OSError, ValueError):
            return list(DEFAULT_MODELS)

    def save(models: list[str]) -> None:
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps(models))

    def full(name: str) -> str:
        return name if ":" in name else f"{name}:latest"

    def tags(_: dict[str, Any]) -> tuple[int, Any]:
        return 200, {"models": [{"name": m, "model": m, "size": 637_700_138} for m in load()]}

    def pull(body: dict[str, Any]) -> tuple[int, Any]:
        name = full(str(body.get("model") or body.get("name") or ""))
        if name == ":latest":
            return 400, {"error": "model is required"}
        time.sleep(1)  # the download
        with lock:
            models = load()
            if name not in models:
                save([*models, name])
        return 200, {"status": "success"}

    def delete(body: dict[str, Any]) -> tuple[int, Any]:
        name = full(str(body.get("model") or body.get("name") or ""))
        with lock:
            models = load()
            if name not in models:
                return 404, {"error": f"model '{name}' not found"}
            save([m for m in models if m != name])
        return 200, {}

    def generate(body: dict[str, Any]) -> tuple[int, Any]:
        name = full(str(body.get("model") or ""))
        if name not in load():
            return 404, {"error": f"model '{name}' not found, try pulling it first"}
        return 200, {"model": name, "response": "Hello from the sandbox's Ollama.", "done": True}

    def hold(body: dict[str, Any]) -> tuple[int, Any]:
        percent = float(body.get("percent", 90))
        if not 0 < percent < 100:
            return 400, {"error": "percent: between 0 and 100"}
        limit = memory_limit()
        wanted = int(limit * percent / 100) - memory_usage()
        if wanted > 0:
            threading.Thread(target=_hold, args=(wanted,), daemon=True).start()
        return 202, {"limit": limit, "usage": memory_usage(), "holding": max(wanted, 0)}

    return {
        "GET /api/tags": tags,
        "POST /api/pull": pull,
        "DELETE /api/delete": delete,
        "POST /api/generate": generate,
        "GET /api/version": lambda _: (200, {"version": "0.0.0-sandbox"}),
        "POST /sandbox/memory": hold,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["backend", "ollama", "alerts"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--startup-delay", type=float, default=0.0)
    parser.add_argument("--ollama", default="http://127.0.0.1:10104")
    parser.add_argument("--state", default="/var/lib/ollama-standin/models.json")
    parser.add_argument("--path", default="/api/v1/alerts")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.kind == "backend":
        routes = backend_routes(args.ollama.rstrip("/"))
    elif args.kind == "ollama":
        routes = ollama_routes(Path(args.state))
    else:
        empty: Any = {"status": "success", "data": {"alerts": []}}
        routes = {f"GET {args.path}": lambda _: (200, empty if "v1" in args.path else [])}
    print(f"{args.kind}: starting, listening in {args.startup_delay:g} s", flush=True)
    time.sleep(args.startup_delay)
    Handler.routes = routes
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"{args.kind}: listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
