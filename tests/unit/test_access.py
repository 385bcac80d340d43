"""Which addresses count as loopback, and the refusal to expose writes without a token."""

from __future__ import annotations

import pytest
from fastapi.security import HTTPBearer
from starlette.datastructures import Headers
from starlette.requests import Request

from shared.access import bearer_credentials, check_exposure, is_loopback
from shared.settings import ConfigError, Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("jarvis.example", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_public_address_needs_a_token() -> None:
    with pytest.raises(ConfigError, match=r"JARVIS_API_TOKEN.*0\.0\.0\.0"):
        check_exposure(Settings(http_host="0.0.0.0"))
    with pytest.raises(ConfigError):
        check_exposure(Settings(http_host="0.0.0.0", api_token=""))
    check_exposure(Settings(http_host="0.0.0.0", api_token="t"))
    check_exposure(Settings(http_host="127.0.0.1"))


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer   ",
        "Bearer t0ken",
        "bearer t0ken",
        "BEARER  t0ken  ",
        "Bearer a b",
        "Basic dXNlcjpwYXNz",
        "Token t0ken",
        " Bearer t0ken",
    ],
)
async def test_bearer_credentials_read_as_fastapis_http_bearer(authorization: str | None) -> None:
    """The routes `Direct` serves read the token as the FastAPI routes' dependency does."""
    raw = [] if authorization is None else [(b"authorization", authorization.encode())]
    request = Request({"type": "http", "headers": raw})
    found = await HTTPBearer(auto_error=False)(request)
    expected = found.credentials if found else None
    assert bearer_credentials(Headers(raw=raw)) == expected
