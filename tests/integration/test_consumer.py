"""The reliable-consumer layer against a real Redis."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from shared.consumer import Retryable
from shared.events import AlertRaised, Event
from shared.runtime import Runtime, Service
from shared.settings import Settings
from shared.streams import ALERTS, DEAD_LETTER
from tests.helpers import eventually, read_stream, running, stream_id

pytestmark = pytest.mark.integration


def _collector(seen: list[Event], fail_times: int = 0) -> Callable[[Runtime], Service]:
    failures = {"left": fail_times}

    def build(runtime: Runtime) -> Service:
        async def handle(event: Event) -> None:
            if failures["left"] > 0:
                failures["left"] -= 1
                raise RuntimeError("transient failure")
            seen.append(event)

        return Service(name="probe-group", consumers=[runtime.consume(ALERTS, "test", handle)])

    return build


async def _pending(redis: Redis) -> int:
    info = await redis.xpending(ALERTS.key, "test")
    return int(info["pending"])


async def test_entries_written_before_start_are_consumed_and_acked(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    alert = AlertRaised(service="backend", summary="before start")
    await redis.xadd(ALERTS.key, {"__data__": alert.to_json()})
    seen: list[Event] = []
    async with running(make_settings(), [_collector(seen)]):
        await eventually(lambda: _async(len(seen) == 1))
        # Another system's entry: its content as written, the envelope the server's.
        assert seen[0].model_dump(exclude={"event_id", "fingerprint", "occurred_at"}) == (
            alert.model_copy(
                update={
                    "integration": "stream",
                    "producer": "stream",
                    "starts_at": alert.occurred_at,
                }
            ).model_dump(exclude={"event_id", "fingerprint", "occurred_at"})
        )
        assert seen[0].event_id == stream_id(alert.event_id)
        await eventually(lambda: _async_pending_is(redis, 0))


async def test_flat_fields_and_missing_envelope_are_accepted(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    seen: list[Event] = []
    async with running(make_settings(), [_collector(seen)]):
        await redis.xadd(
            ALERTS.key,
            {
                "service": "ollama",
                "check": "models",
                "labels": '{"env": "prod"}',
                "data_loss": "true",
            },
        )
        await eventually(lambda: _async(len(seen) == 1))
    alert = seen[0]
    assert isinstance(alert, AlertRaised)
    assert alert.labels == {"env": "prod"}
    assert alert.data_loss is True
    assert alert.fingerprint


async def test_invalid_entry_goes_to_dead_letter_once_and_is_acked(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    seen: list[Event] = []
    async with running(make_settings(), [_collector(seen)]):
        bad_id = (await redis.xadd(ALERTS.key, {"__data__": json.dumps({"check": "x"})})).decode()
        await redis.xadd(ALERTS.key, {"__data__": "not json"})
        good = AlertRaised(service="backend")
        await redis.xadd(ALERTS.key, {"__data__": good.to_json()})
        await eventually(lambda: _async(len(seen) == 1))  # the stream is not blocked
        dead = await eventually(lambda: _dead_letters(redis, 2))
        await eventually(lambda: _async_pending_is(redis, 0))
    assert dead[0]["entry_id"] == bad_id
    assert dead[0]["stream"] == ALERTS.key
    assert "service" in dead[0]["reason"]
    assert "not valid JSON" in dead[1]["reason"]


async def test_failed_handler_is_retried_by_the_reclaimer(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    seen: list[Event] = []
    async with running(make_settings(), [_collector(seen, fail_times=2)]):
        await redis.xadd(ALERTS.key, {"__data__": AlertRaised(service="backend").to_json()})
        await eventually(lambda: _async(len(seen) == 1), timeout=15)
        await eventually(lambda: _async_pending_is(redis, 0))
    assert await redis.xlen(DEAD_LETTER) == 0


async def test_poison_entry_is_dead_lettered_with_its_history(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    seen: list[Event] = []
    settings = make_settings(consumer={"max_deliveries": 2})
    async with running(settings, [_collector(seen, fail_times=100)]):
        await redis.xadd(ALERTS.key, {"__data__": AlertRaised(service="backend").to_json()})
        dead = await eventually(lambda: _dead_letters(redis, 1), timeout=20)
        await eventually(lambda: _async_pending_is(redis, 0))
    assert "delivered 3 times" in dead[0]["reason"]
    history = json.loads(dead[0]["history"])
    assert len(history) >= 2
    assert all("transient failure" in h for h in history)
    assert seen == []


async def test_lost_group_is_recreated_and_consumption_resumes(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    seen: list[Event] = []
    async with running(make_settings(), [_collector(seen)]):
        await redis.xadd(ALERTS.key, {"__data__": AlertRaised(service="a").to_json()})
        await eventually(lambda: _async(len(seen) == 1))
        # What Redis losing its data looks like to a consumer: the stream and group vanish.
        await redis.delete(ALERTS.key)
        await eventually(lambda: _group_exists(redis))
        await redis.xadd(ALERTS.key, {"__data__": AlertRaised(service="b").to_json()})
        await eventually(lambda: _async(len(seen) == 2), timeout=15)
    assert [e.service for e in seen if isinstance(e, AlertRaised)] == ["a", "b"]


async def _async(value: bool) -> bool:
    return value


async def _async_pending_is(redis: Redis, count: int) -> bool:
    return await _pending(redis) == count


async def _dead_letters(redis: Redis, count: int) -> list[dict[str, str]] | None:
    entries = await read_stream(redis, DEAD_LETTER)
    return entries if len(entries) >= count else None


async def _group_exists(redis: Redis) -> bool:
    try:
        groups = await redis.xinfo_groups(ALERTS.key)
    except Exception:
        return False
    return any(g["name"] in (b"test", "test") for g in groups)


async def test_batch_handler_gets_many_events_and_acks_them_together(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    batches: list[list[Event]] = []

    def build(runtime: Runtime) -> Service:
        async def handle(events: list[Event]) -> None:
            batches.append(events)

        return Service(
            name="batch", consumers=[runtime.consume(ALERTS, "test", batch_handler=handle)]
        )

    pipe = redis.pipeline()
    for i in range(250):
        pipe.xadd(ALERTS.key, {"__data__": AlertRaised(service=f"s{i}").to_json()})
    pipe.xadd(ALERTS.key, {"__data__": "{}"})  # invalid, inside a batch
    await pipe.execute()
    async with running(make_settings(consumer={"max_records": 100}), [build]):
        await eventually(lambda: _async(sum(map(len, batches)) == 250))
        await eventually(lambda: _async_pending_is(redis, 0))
    assert max(map(len, batches)) > 1
    assert all(len(b) <= 100 for b in batches)
    assert [e.service for b in batches for e in b if isinstance(e, AlertRaised)] == [
        f"s{i}" for i in range(250)
    ]
    assert await redis.xlen(DEAD_LETTER) == 1


async def test_a_failing_entry_of_a_batch_read_stays_pending_alone(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    # A per-event handler reads in batches too; the others of the batch are acknowledged.
    seen: list[str] = []
    pending_seen: list[int] = []

    def build(runtime: Runtime) -> Service:
        async def handle(event: Event) -> None:
            assert isinstance(event, AlertRaised)
            if event.service == "s3" and not pending_seen:
                raise RuntimeError("s3 fails once")
            seen.append(event.service)

        return Service(name="each", consumers=[runtime.consume(ALERTS, "test", handle)])

    pipe = redis.pipeline()
    for i in range(6):
        pipe.xadd(ALERTS.key, {"__data__": AlertRaised(service=f"s{i}").to_json()})
    entry_ids = [i.decode() for i in await pipe.execute()]
    settings = make_settings(consumer={"reclaim_idle_ms": 1500})
    async with running(settings, [build]):
        await eventually(lambda: _async(len(seen) == 5))
        pending_seen.append(await _pending(redis))  # before the reclaimer's retry
        await eventually(lambda: _async(len(seen) == 6), timeout=15)
        await eventually(lambda: _async_pending_is(redis, 0))
    assert pending_seen == [1]
    assert seen == ["s0", "s1", "s2", "s4", "s5", "s3"]
    # The failure is in the failing entry's history only.
    histories = [
        await redis.lrange(f"jarvis:history:test:{ALERTS.key}:{i}", 0, -1) for i in entry_ids
    ]
    assert [len(h) for h in histories] == [0, 0, 0, 1, 0, 0]
    assert b"s3 fails once" in histories[3][0]


async def test_retryable_failures_never_dead_letter_a_good_event(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    seen: list[Event] = []
    attempts = {"n": 0}

    def build(runtime: Runtime) -> Service:
        async def handle(event: Event) -> None:
            attempts["n"] += 1
            if attempts["n"] <= 4:  # twice the dead-letter limit: the database is "down"
                raise Retryable("database unavailable")
            seen.append(event)

        return Service(name="retry", consumers=[runtime.consume(ALERTS, "test", handle)])

    settings = make_settings(consumer={"max_deliveries": 2, "reclaim_idle_ms": 200})
    async with running(settings, [build]):
        await redis.xadd(ALERTS.key, {"__data__": AlertRaised(service="backend").to_json()})
        await eventually(lambda: _async(len(seen) == 1), timeout=20)
        await eventually(lambda: _async_pending_is(redis, 0))
    assert attempts["n"] == 5
    assert await redis.xlen(DEAD_LETTER) == 0


async def test_entries_of_a_crashed_consumer_are_reclaimed(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    from shared.consumer import ensure_group

    await ensure_group(redis, ALERTS.key, "test")
    alert = AlertRaised(service="backend")
    await redis.xadd(ALERTS.key, {"__data__": alert.to_json()})
    # A replica read it and died before acknowledging.
    await redis.xreadgroup("test", "dead-replica", {ALERTS.key: ">"}, count=10)
    assert await _pending(redis) == 1
    seen: list[Event] = []
    async with running(make_settings(), [_collector(seen)]):
        await eventually(lambda: _async(len(seen) == 1), timeout=15)
        await eventually(lambda: _async_pending_is(redis, 0))
    assert seen[0].event_id == stream_id(alert.event_id)


async def test_shutdown_waits_for_the_handler_in_flight(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    import asyncio

    started, finished = asyncio.Event(), asyncio.Event()

    def build(runtime: Runtime) -> Service:
        async def slow(event: Event) -> None:
            started.set()
            await asyncio.sleep(1.0)
            finished.set()

        return Service(name="slow", consumers=[runtime.consume(ALERTS, "test", slow)])

    async with running(make_settings(), [build]):
        await redis.xadd(ALERTS.key, {"__data__": AlertRaised(service="backend").to_json()})
        await asyncio.wait_for(started.wait(), timeout=10)
        # leaving the block is the SIGTERM path: stop reading, drain, then close
    assert finished.is_set()
    assert await _pending(redis) == 0


async def test_entry_faststream_cannot_decode_is_dead_lettered_not_stuck(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    # Found by the fuzz test: non-UTF-8 flat fields broke FastStream's own parser.
    seen: list[Event] = []
    async with running(make_settings(), [_collector(seen)]):
        bad_id = (await redis.xadd(ALERTS.key, {"service": b"\x88\xff"})).decode()
        await redis.xadd(ALERTS.key, {"__data__": AlertRaised(service="after").to_json()})
        await eventually(lambda: _async(len(seen) == 1))
        dead = await eventually(lambda: _dead_letters(redis, 1))
        await eventually(lambda: _async_pending_is(redis, 0))
    assert dead[0]["entry_id"] == bad_id
