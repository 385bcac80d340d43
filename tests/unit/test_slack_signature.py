"""Slack's request signature: the example of Slack's "Verifying requests from Slack", and
what `verify` refuses (stale, future, forged, malformed)."""

from __future__ import annotations

import pytest

from services.recorder.slack import sign, verify

pytestmark = pytest.mark.unit

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TIMESTAMP = "1531420618"
BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
    b"G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
    b"collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F3977008"
    b"85554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c4"
    b"47fce8b6703c"
)
EXPECTED = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_the_signature_of_slacks_documented_example() -> None:
    assert sign(SECRET, TIMESTAMP, BODY) == EXPECTED
    assert verify(SECRET, TIMESTAMP, EXPECTED, BODY, now=1531420618 + 299, max_age_s=300) is None


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "now", "problem"),
    [
        (TIMESTAMP, EXPECTED, BODY, 1531420618 + 301, "older than 300 s"),
        (TIMESTAMP, EXPECTED, BODY, 1531420618 - 301, "in the future"),
        (TIMESTAMP, EXPECTED, BODY + b"&x=1", 1531420618, "does not match"),
        (TIMESTAMP, EXPECTED.replace("a2", "b2"), BODY, 1531420618, "does not match"),
        ("1531420619", EXPECTED, BODY, 1531420618, "does not match"),
        ("", EXPECTED, BODY, 1531420618, "missing or not a number"),
        ("1e9", EXPECTED, BODY, 1531420618, "missing or not a number"),
    ],
)
def test_what_is_refused(
    timestamp: str, signature: str, body: bytes, now: float, problem: str
) -> None:
    assert problem in (verify(SECRET, timestamp, signature, body, now, 300) or "")
