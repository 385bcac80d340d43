"""The reliable consumer that every service reads its streams through (`Runtime.consume`);
what it guarantees is listed in shared/consumer.py and docs/delivery.md.

It runs three loops per (stream, group): reading new entries, reclaiming entries of dead
consumers, and the heartbeat that keeps its own entries claimed. The Redis commands are
in shared/stream_group.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.consumer import (
    BACKLOG,
    CONSUMED,
    HANDLE_SECONDS,
    LAG,
    OLDEST_AGE,
    PENDING,
    Admission,
    BatchHandler,
    Handler,
    InvalidEntry,
    Retryable,
    decode_entry,
    note_reader,
    shared_stream,
)
from shared.events import Event
from shared.redis_client import is_unavailable
from shared.retry import OutageLog, backoff_delay
from shared.settings import ConsumerSettings
from shared.stream_group import Entry, StreamGroup
from shared.streams import StreamSpec
from shared.tasks import cancel_all

__all__ = ["StreamConsumer"]

log = logging.getLogger("shared.consumer")  # the consumer's log lines keep their old name

_CRASH_FACTOR = 10  # deliveries per allowed failure before an entry is taken for a crasher


class StreamConsumer:
    """One stream read by one group, with the guarantees listed in shared/consumer.py.

    Give `handler` for one event at a time, or `batch_handler` for up to `max_records`
    events at once (one transaction): the batch is acknowledged only when the whole batch
    succeeded. Either way entries are read and acknowledged in batches (one XACK); with
    `handler`, an entry it fails on stays pending alone. Reclaimed entries come one at a
    time, so one that keeps failing cannot take a batch down with it.
    """

    def __init__(
        self,
        *,
        redis: Redis,
        settings: ConsumerSettings,
        spec: StreamSpec,
        group: str,
        consumer: str,
        handler: Handler | None = None,
        batch_handler: BatchHandler | None = None,
        admit: Admission | None = None,
    ) -> None:
        if (handler is None) == (batch_handler is None):
            raise ValueError("give exactly one of handler and batch_handler")
        self._admit = admit
        self.spec = spec
        self.group = group
        self._settings = settings
        self._handler = handler
        self._handle_batch = batch_handler
        self._io = StreamGroup(redis, spec.key, group, consumer)
        note_reader(spec.key, group)
        self._held: set[str] = set()  # ids this consumer works on or waits to retry
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting = OutageLog(log, f"{group} on {spec.key}")
        self._redis_down = OutageLog(log, f"{group} reading {spec.key}")

    async def prepare(self) -> None:
        """Create the group before anything reads."""
        await self._io.ensure()

    def start(self) -> None:
        self._stopping.clear()
        name = f"{self.group}:{self.spec.key}"
        loops: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = [
            ("read", self._read_once),
            ("reclaim", self._reclaim_once),
            ("heartbeat", self._heartbeat_once),
        ]
        self._tasks = [
            asyncio.create_task(self._loop(step), name=f"{name}:{kind}") for kind, step in loops
        ]

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop reading, let the handlers in flight finish (up to `grace_s`), then cancel.
        Entries left unacknowledged stay pending and are reclaimed by another consumer."""
        self._stopping.set()
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        await cancel_all(pending)

    async def _loop(self, step: Callable[[], Coroutine[Any, Any, None]]) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                await step()
            except (RedisError, OSError) as exc:
                if is_unavailable(exc):  # unreachable, restarting, failing over, demoted
                    failures += 1
                    self._redis_down.failed(exc)
                    await self._pause(backoff_delay(failures, 0.1, 5.0))
                    continue
                if "NOGROUP" not in str(exc):
                    failures += 1
                    log.exception("%s on %s: unexpected Redis error", self.group, self.spec.key)
                    await self._pause(backoff_delay(failures, 0.5, 10.0))
                    continue
                # The group is gone: Redis lost its data, or a promoted replica had not yet
                # received it (asynchronous replication). Recreate it and read on.
                if await self._io.ensure():
                    log.warning("%s: group on %s was lost; recreated", self.group, self.spec.key)
            except Exception:
                failures += 1
                log.exception("%s on %s: consumer loop failed", self.group, self.spec.key)
                await self._pause(backoff_delay(failures, 0.5, 10.0))
                continue
            if failures:
                failures = 0
                self._redis_down.recovered()

    async def _pause(self, seconds: float) -> bool:
        """Sleep unless stopping; False when the consumer is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        return not self._stopping.is_set()

    async def _read_once(self) -> None:
        entries = await self._io.read_new(self._settings.max_records, self._settings.block_ms)
        if entries:
            await self._process(entries, deliveries=None)

    async def _reclaim_once(self) -> None:
        cursor = "0-0"
        while not self._stopping.is_set():
            step = await self._io.reclaim(
                self._settings.reclaim_idle_ms, cursor, self._settings.max_records
            )
            if step.deleted:
                CONSUMED.labels(self.group, self.spec.key, "deleted").inc(len(step.deleted))
                log.warning(
                    "%s: %d pending entries of %s were deleted before being handled: %s",
                    self.group,
                    len(step.deleted),
                    self.spec.key,
                    ", ".join(step.deleted[:10]),
                )
            # Our own entries come back only if this process stalled past the idle time.
            entries = [e for e in step.entries if e[0] not in self._held]
            counts = await self._io.deliveries([entry_id for entry_id, _ in entries])
            for entry in entries:
                await self._process([entry], deliveries=counts[entry[0]])
            cursor = step.cursor
            if cursor == "0-0":
                break
        await self._pause(min(self._settings.reclaim_idle_ms, 1000) / 1000)

    async def _heartbeat_once(self) -> None:
        await self._pause(self._settings.reclaim_idle_ms / 3000)
        if not self._held:
            return
        lost = [i for i in await self._io.keep(sorted(self._held)) if i in self._held]
        if lost:
            # Only when this process stalled longer than reclaim_idle_ms: another consumer
            # took them and runs them too (handlers are idempotent).
            self._held.difference_update(lost)
            log.warning(
                "%s: %d entries of %s were taken over by another consumer",
                self.group,
                len(lost),
                self.spec.key,
            )

    async def _process(self, entries: Sequence[Entry], *, deliveries: int | None) -> None:
        """Decode, dead-letter what cannot be handled, run the handler on the rest."""
        good: list[tuple[str, Event]] = []
        keep = shared_stream(self.spec.key)
        for entry_id, fields in entries:
            try:
                event = decode_entry(fields, self.spec, entry_id, keep=keep)
            except Exception as exc:  # whatever decoding raised: retrying cannot help
                reason = str(exc) if isinstance(exc, InvalidEntry) else f"cannot decode: {exc!r}"
                await self._dead_letter(entry_id, fields, reason, deliveries or 1, invalid=True)
                # %r: the reason quotes the entry, which anyone who can XADD wrote.
                log.warning(
                    "%s: entry %s on %s is invalid: %r", self.group, entry_id, self.spec.key, reason
                )
                continue
            if deliveries is not None and await self._give_up(entry_id, fields, deliveries):
                continue
            if self._admit is not None:
                event = self._admit(event, fields, entry_id)
            good.append((entry_id, event))
        if not good:
            return
        ids = [entry_id for entry_id, _ in good]
        self._held.update(ids)
        try:
            await self._run(good)
        finally:
            self._held.difference_update(ids)

    async def _run(self, batch: list[tuple[str, Event]]) -> None:
        """Handle until nothing is left but entries failing on their own; Retryable
        failures wait (capped, jittered backoff) and go again, however long it takes."""
        stream = self.spec.key
        retries = 0
        while batch:
            started = time.perf_counter()
            failures = await self._handle([e for _, e in batch], [i for i, _ in batch])
            HANDLE_SECONDS.labels(self.group, stream).observe(time.perf_counter() - started)
            failed = {entry_id for entry_id, _ in failures}
            done = [entry_id for entry_id, _ in batch if entry_id not in failed]
            # No longer held before the XACK goes out, so a heartbeat racing it does not
            # take acknowledged entries for entries another consumer took.
            self._held.difference_update(done)
            await self._io.ack(done)
            CONSUMED.labels(self.group, stream, "ok").inc(len(done))
            # Redis itself unavailable under the handler counts as a dependency outage too.
            waiting = {i for i, exc in failures if _is_outage(exc)}
            broken = [(i, exc) for i, exc in failures if i not in waiting]
            if broken:
                # Left pending, no longer held: whoever reclaims it after reclaim_idle_ms
                # retries it, and its history decides when it is dead-lettered.
                self._held.difference_update(i for i, _ in broken)
                for error, entry_ids in _by_error(broken):
                    await self._record_failure(entry_ids, error)
            if not waiting:
                self._waiting.recovered()
                return
            CONSUMED.labels(self.group, stream, "retry").inc(len(waiting))
            self._waiting.failed(next(exc for i, exc in failures if i in waiting))
            retries += 1
            delay = backoff_delay(
                retries, self._settings.retry_initial_s, self._settings.retry_max_s
            )
            if not await self._pause(delay):
                return  # stopping: the entries stay pending for another consumer
            batch = [(i, e) for i, e in batch if i in waiting]

    async def _handle(
        self, events: list[Event], entry_ids: list[str]
    ) -> list[tuple[str, Exception]]:
        """Run the handler; the entries it failed on, with the error."""
        if self._handle_batch is not None:
            try:
                await self._handle_batch(events)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                return [(entry_id, exc) for entry_id in entry_ids]
            return []
        assert self._handler is not None
        failures: list[tuple[str, Exception]] = []
        for event, entry_id in zip(events, entry_ids, strict=True):
            try:
                await self._handler(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures.append((entry_id, exc))
        return failures

    async def _give_up(self, entry_id: str, fields: dict[bytes, bytes], deliveries: int) -> bool:
        """Dead-letter a reclaimed entry that keeps failing; True if it was."""
        history = await self._io.history(entry_id)
        limit = self._settings.max_deliveries
        # Retryable failures never reach the history. A consumer that dies on an entry
        # leaves none either: an entry that took down limit × 10 consumers is a crasher.
        if len(history) < limit and deliveries <= limit * _CRASH_FACTOR:
            return False
        reason = f"delivered {deliveries} times without success"
        await self._dead_letter(entry_id, fields, reason, deliveries, history)
        return True

    async def _dead_letter(
        self,
        entry_id: str,
        fields: dict[bytes, bytes],
        reason: str,
        deliveries: int,
        history: Sequence[str] = (),
        *,
        invalid: bool = False,
    ) -> None:
        await self._io.dead_letter(
            entry_id,
            fields,
            reason,
            maxlen=self._settings.dead_letter_maxlen,
            deliveries=deliveries,
            history=history,
            every_group=invalid,
        )
        CONSUMED.labels(self.group, self.spec.key, "dead_letter").inc()

    async def _record_failure(self, entry_ids: list[str], exc: Exception) -> None:
        CONSUMED.labels(self.group, self.spec.key, "error").inc(len(entry_ids))
        log.error(
            "%s: handler failed for %d entries on %s",
            self.group,
            len(entry_ids),
            self.spec.key,
            exc_info=exc,
        )
        await self._io.add_history(entry_ids, f"{time.time():.3f} {type(exc).__name__}: {exc}")

    async def heal(self) -> bool:
        """Recreate a lost group and report the group's gauges (lag, pending, backlog,
        oldest unacknowledged age). Returns True when the group had to be recreated."""
        stats = await self._io.stats()
        if stats is None:
            if await self._io.ensure():
                log.warning("%s: group on %s was lost; recreated", self.group, self.spec.key)
                return True
            return False
        labels = (self.group, self.spec.key)
        PENDING.labels(*labels).set(stats.pending)
        LAG.labels(*labels).set(stats.lag)
        BACKLOG.labels(*labels).set(stats.backlog)
        OLDEST_AGE.labels(*labels).set(stats.oldest_age_s)
        return False


def _is_outage(exc: Exception) -> bool:
    """A dependency is down (the handler said so, or our Redis cannot serve right now):
    retry in place, never count it against the entry. Other errors of the handler's own,
    an OSError from a file or a socket included, count."""
    return isinstance(exc, Retryable) or (isinstance(exc, RedisError) and is_unavailable(exc))


def _by_error(failures: list[tuple[str, Exception]]) -> list[tuple[Exception, list[str]]]:
    """Failures grouped by the exception object (a batch handler's one error for all)."""
    groups: dict[int, tuple[Exception, list[str]]] = {}
    for entry_id, exc in failures:
        groups.setdefault(id(exc), (exc, []))[1].append(entry_id)
    return list(groups.values())
