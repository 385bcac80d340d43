"""A lean HTTP/1.1 status check for the many-target case: connect, send one GET, read the
status line, close.

The generic HTTP-target probe needs only the status code. Doing it on bare asyncio streams
costs a fraction of a full client's CPU per request (httpx's pool scans every connection
for every request), which is what lets one process probe 1,000 targets every 5 seconds on
a part of one core (`python -m bench.detector_probes`). Every check opens its own
connection, like a blackbox prober: no stale keep-alive state, and the connect is measured.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["StatusTarget", "check_status"]

_MAX_STATUS_LINE = 8192


@dataclass(frozen=True)
class StatusTarget:
    host: str
    port: int
    tls: bool
    request: bytes

    @classmethod
    def parse(cls, url: str) -> StatusTarget:
        """Raises ValueError for anything but an absolute http(s) URL."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        default = port == (443 if tls else 80)
        host_header = parts.hostname if default else f"{parts.hostname}:{port}"
        if ":" in parts.hostname and not default:  # IPv6 literal
            host_header = f"[{parts.hostname}]:{port}"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: jarvis-detector\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n"
        ).encode()
        return cls(parts.hostname, port, tls, request)


@functools.cache
def _default_tls() -> ssl.SSLContext:
    return ssl.create_default_context()


async def check_status(
    target: StatusTarget, limit_s: float, tls: ssl.SSLContext | None = None
) -> int | str:
    """The status code, or a sentence saying why there is none."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(limit_s):
            reader, writer = await asyncio.open_connection(
                target.host,
                target.port,
                ssl=(tls or _default_tls()) if target.tls else None,
                limit=_MAX_STATUS_LINE,
            )
            writer.write(target.request)
            line = await reader.readline()
    except TimeoutError:
        return f"timeout after {limit_s:g}s"
    except (OSError, ValueError, asyncio.LimitOverrunError) as exc:
        return f"unreachable: {type(exc).__name__}: {exc}"
    finally:
        if writer is not None:
            writer.close()
    fields = line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
        shown = line[:80].decode("latin-1").strip()
        return f"not an HTTP answer: {shown!r}" if shown else "closed without an answer"
    return int(fields[1])
