"""Which addresses count as loopback, and the refusal to expose writes without a token."""

from __future__ import annotations

import pytest

from shared.access import check_exposure, is_loopback
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
