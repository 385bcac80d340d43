"""`python -m services.healthcheck`: exit 0 when the service in this container answers
/health with 200 — over HTTPS when it serves TLS, with the token when reads need one.

For Docker's HEALTHCHECK: it reads the same settings as the service and imports nothing
else (no broker, no database driver), so it stays cheap every few seconds. It talks to
itself on loopback; the certificate may name a host other than 127.0.0.1, so it is not
verified here (what answers on this container's loopback port is the service).
"""

from __future__ import annotations

import ssl
import sys
import urllib.error
import urllib.request

from shared.settings import ConfigError, load_settings

__all__ = ["main"]


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    tls = settings.http_tls_certfile is not None
    url = f"{'https' if tls else 'http'}://127.0.0.1:{settings.http_port}/health"
    request = urllib.request.Request(url)
    if settings.api_token:
        request.add_header("Authorization", f"Bearer {settings.api_token}")
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
