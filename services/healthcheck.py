"""`python -m services.healthcheck`: exit 0 when the service in this container answers
/health with 200 — over HTTPS when it serves TLS, with the token when reads need one.

For Docker's HEALTHCHECK, every few seconds, on a busy host too: it reads the settings it
needs from the environment (as containers get them) and loads the whole configuration only
when a file is named (JARVIS_CONFIG) — importing pydantic alone can outlast the check's
timeout under load. It talks to itself on loopback; the certificate may name a host other
than 127.0.0.1, so it is not verified here (what answers on this container's loopback port
is the service).
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request

__all__ = ["main"]


def _target() -> tuple[int, bool, str | None]:
    """(port, TLS on, token) of the service in this container."""
    if os.environ.get("JARVIS_CONFIG"):
        from shared.settings import load_settings

        s = load_settings()
        port = s.http_port
        if s.http_port_span > 1:
            port = int((s.data_dir / "http.port").read_text())
        return port, s.http_tls_certfile is not None, s.api_token
    env = os.environ
    port = int(env.get("JARVIS_HTTP_PORT") or 10300)
    if int(env.get("JARVIS_HTTP_PORT_SPAN") or 1) > 1:  # the port this replica got
        port_file = os.path.join(env.get("JARVIS_DATA_DIR") or "var", "http.port")
        with open(port_file) as f:
            port = int(f.read())
    return port, bool(env.get("JARVIS_HTTP_TLS_CERTFILE")), env.get("JARVIS_API_TOKEN") or None


def main() -> int:
    try:
        port, tls, token = _target()
    except Exception as exc:  # a bad setting: the service itself refuses to start with it
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/health"
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, timeout=4, context=context if tls else None) as answer:
            return 0 if answer.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
