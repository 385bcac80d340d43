"""The consumer reads `__data__` with one JSON parse (issue 16), and still exactly as
FastStream's own parser followed by a JSON parse did: its binary format, its JSON envelope,
plain JSON, and the same refusals."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from faststream.redis import BinaryMessageFormatV1
from faststream.redis.parser import binary as faststream_binary
from redis.asyncio import Redis

from shared import consumer
from shared.consumer import InvalidEntry, _entry_data, decode_entry
from shared.events import AlertRaised
from shared.settings import ConsumerSettings
from shared.stream_consumer import StreamConsumer
from shared.streams import ALERTS, StreamSpec

EVENT = AlertRaised(service="backend", summary="down").to_json()


def _as_before(raw: bytes) -> Any:
    """What the consumer made of `__data__` before: FastStream's parse, then json.loads."""
    body, _headers = BinaryMessageFormatV1.parse(raw)
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return InvalidEntry
    return dict(data) if isinstance(data, dict) else InvalidEntry


def _now(raw: bytes) -> Any:
    try:
        return _entry_data({b"__data__": raw})
    except InvalidEntry:
        return InvalidEntry


BINARY = asyncio.run(
    BinaryMessageFormatV1.encode(  # a coroutine in FastStream 0.7
        message=EVENT.encode(), reply_to=None, headers={"h": "v"}, correlation_id="c"
    )
)

CASES = [
    EVENT.encode(),
    BINARY,
    BINARY[:12],  # the magic, then nothing sensible
    json.dumps({"data": EVENT, "headers": {"h": "v"}}).encode(),  # FastStream's JSON envelope
    json.dumps({"data": EVENT}).encode(),  # its legacy form, no headers
    json.dumps({"data": "not json"}).encode(),
    json.dumps({"data": 5, "service": "x"}).encode(),  # "data" not text: the object itself
    json.dumps({"service": "backend", "data": {"k": 1}}).encode(),
    b"[1, 2]",
    b'"text"',
    b"{not json",
    b"\xff\xfe",
    b"",
]


@pytest.mark.parametrize("raw", CASES)
def test_data_field_decodes_as_faststream_then_json_did(raw: bytes) -> None:
    assert _now(raw) == _as_before(raw)


def test_a_plain_entry_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = json.loads

    def counting(body: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(body)
        return real(body, *args, **kwargs)

    monkeypatch.setattr(json, "loads", counting)
    # FastStream's parser keeps its own reference to a JSON parser: counted too.
    monkeypatch.setattr(faststream_binary, "json_loads", counting)
    event = decode_entry({b"__data__": EVENT.encode()}, ALERTS, "1-0")
    assert isinstance(event, AlertRaised)
    assert len(calls) == 1


def test_invalid_json_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidEntry, match="__data__: not valid JSON"):
        decode_entry({b"__data__": b"{oops"}, ALERTS, "1-0")


def test_groups_of_one_process_share_one_decoding_of_an_entry() -> None:
    fields = {b"__data__": EVENT.encode()}
    first = decode_entry(fields, ALERTS, "1700000000000-7")
    assert decode_entry(dict(fields), ALERTS, "1700000000000-7") is first
    # Other bytes under the same id (a Redis that lost its data reused it): decoded anew.
    other = AlertRaised(service="other").to_json().encode()
    again = decode_entry({b"__data__": other}, ALERTS, "1700000000000-7")
    assert isinstance(again, AlertRaised)
    assert again.service == "other"
    # An invalid entry is refused every time, by every group.
    for _ in range(2):
        with pytest.raises(InvalidEntry):
            decode_entry({b"__data__": b"{oops"}, ALERTS, "1700000000000-8")


def test_the_shared_decodings_are_bounded_oldest_first_out() -> None:
    fields = {b"__data__": EVENT.encode()}
    ids = [f"1700000000001-{n}" for n in range(consumer._DECODED_MAX + 5)]
    first = decode_entry(fields, ALERTS, ids[0])
    for entry_id in ids[1:]:
        decode_entry(fields, ALERTS, entry_id)
    assert len(consumer._DECODED) == consumer._DECODED_MAX
    last = consumer._DECODED[(ALERTS.key, ALERTS.events, ids[-1])][1]
    assert decode_entry(fields, ALERTS, ids[-1]) is last  # still kept
    assert decode_entry(fields, ALERTS, ids[0]) is not first  # gone first: decoded anew


def test_an_entry_no_other_group_will_read_is_decoded_but_not_kept() -> None:
    fields = {b"__data__": EVENT.encode()}
    entry_id = "1700000000002-0"
    first = decode_entry(fields, ALERTS, entry_id, keep=False)
    assert (ALERTS.key, ALERTS.events, entry_id) not in consumer._DECODED
    again = decode_entry(fields, ALERTS, entry_id, keep=False)
    assert again is not first
    assert again == first
    with pytest.raises(InvalidEntry, match="__data__: not valid JSON"):
        decode_entry({b"__data__": b"{oops"}, ALERTS, "1700000000002-1", keep=False)


def test_decodings_are_kept_only_for_a_stream_several_groups_of_the_process_read() -> None:
    stream = "test:decode-readers"

    def made(group: str) -> StreamConsumer:
        spec = StreamSpec(stream, ALERTS.events)
        return StreamConsumer(
            redis=Redis(),
            settings=ConsumerSettings(),
            spec=spec,
            group=group,
            consumer="c1",
            handler=_ignore,
        )

    assert not consumer.shared_stream(stream)
    made("recorder")
    made("recorder")  # a second consumer of the same group: still one reader
    assert not consumer.shared_stream(stream)
    made("triage")
    assert consumer.shared_stream(stream)


async def _ignore(_event: Any) -> None:
    return None
