"""Who may use the HTTP surface of any service: the rules, one middleware, two guards.

Every app built by `shared.runtime.build_app` runs `AccessMiddleware`, which refuses
  * a `Host` header that is not one of the configured names (DNS rebinding: a page of
    another site resolved to this address); IP addresses are always accepted;
  * a write a browser sent from another site (`Origin`, `Sec-Fetch-Site` or `Referer` not
    ours) unless it carries a bearer token, which a browser never adds by itself;
  * a read without the operator's token when reads are protected (a token is set and the
    server listens beyond loopback, or `http_protect_reads`), except `http_open_paths` and
    the public status page.
    Browsers may send the token as the password of HTTP Basic, so the operator page and its
    event stream work in one.

Routes that change something declare a guard; both also accept JSON bodies only (415):
  * `operator_guard`: operator commands, `Authorization: Bearer <JARVIS_API_TOKEN>`;
  * `ingest_guard`: alerts and heartbeats, the operator's token or a named integration
    token (`detector.ingest_tokens`); it returns the integration's name, which the alert
    carries. With no token configured (loopback only) everyone is `anonymous`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.settings import ConfigError, Settings

__all__ = [
    "ANONYMOUS",
    "OPERATOR",
    "AccessMiddleware",
    "AccessPolicy",
    "Refusal",
    "bearer_credentials",
    "check_exposure",
    "check_json",
    "ingest_guard",
    "ingest_sender",
    "is_loopback",
    "operator_guard",
    "require_json",
]

OPERATOR = "default"  # the integration name of JARVIS_API_TOKEN when it sends alerts
ANONYMOUS = "anonymous"  # every sender when no token is configured (loopback only)
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_WILDCARDS = frozenset({"0.0.0.0", "::", "*", ""})
_CHALLENGE = 'Bearer realm="jarvis-ir", Basic realm="jarvis-ir"'


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or a wildcard: reachable from elsewhere


def check_exposure(settings: Settings) -> None:
    """Refuse an HTTP server reachable from other machines whose write endpoints are open.

    Raises ConfigError naming the settings; call it before the server starts listening.
    """
    if not settings.api_token and not is_loopback(settings.http_host):
        raise ConfigError(
            f"JARVIS_API_TOKEN: required when JARVIS_HTTP_HOST ({settings.http_host}) is not "
            "a loopback address — set a token, or listen on 127.0.0.1"
        )


@dataclass(frozen=True)
class Refusal:
    status: int
    detail: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AccessPolicy:
    """The access rules of one process, from its settings."""

    operator_token: str | None = None
    ingest_tokens: Mapping[str, str] = field(default_factory=dict)  # name → token
    allowed_hosts: frozenset[str] | None = None  # None: any
    protect_reads: bool = False
    open_paths: frozenset[str] = frozenset()

    @classmethod
    def of(cls, settings: Settings) -> AccessPolicy:
        names = {h.strip().lower() for h in settings.http_allowed_hosts}
        if not names:
            names = {"localhost"}
            bind = settings.http_host.strip().lower()
            if bind not in _WILDCARDS:
                names.add(bind)
        protect = settings.http_protect_reads
        if protect is None:
            protect = bool(settings.api_token) and not is_loopback(settings.http_host)
        # The status page is public by design (CONTRACT §5), whoever else must show a token.
        status = settings.recorder.status_page.path
        public = {status, f"{status}/feed.atom", "/api/v1/status"}
        return cls(
            operator_token=settings.api_token or None,
            ingest_tokens=dict(settings.detector.ingest_tokens),
            allowed_hosts=None if "*" in names else frozenset(names),
            protect_reads=protect,
            open_paths=frozenset(settings.http_open_paths) | public,
        )

    @property
    def locked(self) -> bool:
        """Writes need a token."""
        return self.operator_token is not None

    def integration_of(self, token: str | None) -> str | None:
        """The integration a bearer token belongs to; None for no or an unknown token.
        Every configured token is compared, in constant time, whichever matches."""
        if not token:
            return None
        found: str | None = None
        candidates = [(OPERATOR, self.operator_token), *self.ingest_tokens.items()]
        for name, expected in candidates:
            if expected and hmac.compare_digest(token.encode(), expected.encode()):
                found = found or name
        return found

    def refusal(self, method: str, path: str, headers: Headers) -> Refusal | None:
        """Why the middleware refuses a request before any route sees it, if it does."""
        host = headers.get("host", "")
        if not self._host_allowed(host):
            return Refusal(
                400,
                f"Host: {host!r} is not a name this server answers to (JARVIS_HTTP_ALLOWED_HOSTS)",
            )
        bearer = _bearer(headers)
        if method not in _SAFE:
            if bearer is None:
                foreign = _foreign_browser(headers, host)
                if foreign:
                    return Refusal(403, f"{foreign}: writes from other sites are refused")
            return None
        if self.protect_reads and path not in self.open_paths:
            given = bearer if bearer is not None else _basic_password(headers)
            if not given or self.integration_of(given) != OPERATOR:
                return Refusal(
                    401,
                    "Authorization: reads need the operator's token (JARVIS_API_TOKEN)",
                    {"WWW-Authenticate": _CHALLENGE},
                )
        return None

    def _host_allowed(self, host: str) -> bool:
        name = _host_name(host)
        if not name:
            return False
        if self.allowed_hosts is None or name in self.allowed_hosts:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True  # an address cannot be another site's name


class AccessMiddleware:
    """Applies `AccessPolicy.refusal` to every HTTP request (plain ASGI: no buffering)."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.policy.refusal(scope["method"], scope["path"], Headers(scope=scope))
            if refusal is not None:
                response = JSONResponse(
                    {"detail": refusal.detail}, refusal.status, headers=dict(refusal.headers)
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def require_json(request: Request) -> None:
    """415 for a body that is not JSON: a browser can send text/plain or a form to any site
    without asking first, but never application/json."""
    check_json(request.headers)


def check_json(headers: Headers) -> None:
    """`require_json` on the headers alone (for routes served without FastAPI's routing)."""
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if not has_body:
        return
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (media.startswith("application/") and media[-5:] == "+json"):
        return
    raise HTTPException(
        415, f"Content-Type: {media or 'none'} is not accepted here; send application/json"
    )


_scheme = HTTPBearer(auto_error=False, description="JARVIS_API_TOKEN or an integration token")


def _unauthorized(what: str) -> HTTPException:
    return HTTPException(
        401,
        f"Authorization: a valid bearer token is required ({what})",
        headers={"WWW-Authenticate": "Bearer"},
    )


def operator_guard(policy: AccessPolicy) -> Callable[..., Awaitable[None]]:
    """A dependency for operator commands: the operator's bearer token (when one is set)
    and a JSON body."""

    async def guard(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_scheme),  # noqa: B008
    ) -> None:
        if policy.locked:
            token = credentials.credentials if credentials else None
            if policy.integration_of(token) != OPERATOR:
                raise _unauthorized("JARVIS_API_TOKEN")
        require_json(request)

    return guard


def ingest_guard(policy: AccessPolicy) -> Callable[..., Awaitable[str]]:
    """A dependency for ingest: the operator's or an integration's bearer token (when a token
    is set) and a JSON body. Returns the integration's name."""

    async def guard(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_scheme),  # noqa: B008
    ) -> str:
        return ingest_sender(
            policy, credentials.credentials if credentials else None, request.headers
        )

    return guard


def ingest_sender(policy: AccessPolicy, token: str | None, headers: Headers) -> str:
    """What `ingest_guard` checks, given the bearer token: the integration's name, or
    HTTPException (401 for a missing or unknown token once one is set, 415 for no JSON)."""
    name = ANONYMOUS
    if policy.locked:
        found = policy.integration_of(token)
        if found is None:
            raise _unauthorized("JARVIS_API_TOKEN or detector.ingest_tokens")
        name = found
    check_json(headers)
    return name


def bearer_credentials(headers: Headers) -> str | None:
    """The token of `Authorization: Bearer <token>` exactly as FastAPI's `HTTPBearer`
    (auto_error off) reads it: None for no header, another scheme or an empty token."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    if not (scheme and token) or scheme.lower() != "bearer":
        return None
    return token


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:10300
        return host[1:].split("]", 1)[0]
    if host.count(":") > 1:  # a bare IPv6 address
        return host
    return host.rsplit(":", 1)[0] if ":" in host else host


def _bearer(headers: Headers) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _basic_password(headers: Headers) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2]


def _foreign_browser(headers: Headers, host: str) -> str | None:
    """The header showing that a browser sent this from another site, if one does."""
    origin = headers.get("origin")
    if origin is not None:
        return None if _same_origin(origin, host) else "Origin"
    if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return "Sec-Fetch-Site"
    referer = headers.get("referer")
    if referer and not _same_origin(referer, host):
        return "Referer"
    return None


def _same_origin(url: str, host: str) -> bool:
    try:
        netloc = urlsplit(url.strip()).netloc.lower()
    except ValueError:
        return False
    return bool(netloc) and netloc == host.strip().lower()
