"""The triage's parse memo: same bytes, same value, bounded in count and in bytes."""

from __future__ import annotations

import json

import pytest

from services.triage.memo import Memo

pytestmark = pytest.mark.unit


def counting() -> tuple[Memo[dict[str, int]], list[bytes]]:
    parsed: list[bytes] = []

    def parse(raw: bytes) -> dict[str, int]:
        parsed.append(raw)
        value: dict[str, int] = json.loads(raw)
        return value

    return Memo(parse, size=3, max_bytes=40), parsed


def test_a_document_seen_recently_is_not_parsed_again() -> None:
    memo, parsed = counting()
    first = memo(b'{"a":1}')
    assert memo('{"a":1}') is first  # text and bytes of one document are one key
    assert parsed == [b'{"a":1}']


def test_the_least_recently_used_goes_first_when_the_count_is_full() -> None:
    memo, parsed = counting()
    for doc in (b'{"a":1}', b'{"b":2}', b'{"c":3}'):
        memo(doc)
    memo(b'{"a":1}')  # used again: now the newest
    memo(b'{"d":4}')  # pushes out b, the least recently used
    memo(b'{"a":1}')
    memo(b'{"b":2}')
    assert parsed.count(b'{"a":1}') == 1
    assert parsed.count(b'{"b":2}') == 2


def test_bytes_are_bounded_and_an_oversized_document_is_never_kept() -> None:
    memo, parsed = counting()
    big = json.dumps({"x": "y" * 50}).encode()  # over max_bytes on its own
    memo(big)
    memo(big)
    assert parsed.count(big) == 2
    small = [json.dumps({"k": str(i) * 10}).encode() for i in range(3)]  # 19 bytes each
    for doc in small:
        memo(doc)
    memo(small[0])  # 3 x 19 > 40: the first was pushed out by bytes, not by count
    assert parsed.count(small[0]) == 2
    assert memo._bytes <= 40
