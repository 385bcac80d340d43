"""Silences in Redis, the one place every replica of triage, the remediator and the
escalator reads them from (the recorder's API writes them).

* `jarvis:silences` — hash: silence id → the silence as JSON (`shared.silences.Silence`);
* `jarvis:silences:version` — bumped by every change, so a reader re-reads the hash only
  when something changed (one GET per check otherwise).

A change and its event (SilenceCreated / SilenceExpired on `jarvis:incidents`, the audit
trail the recorder keeps) are written in one script: neither exists without the other.
Silences over for longer than `RETENTION` are dropped from the hash (their events stay).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from redis.asyncio import Redis

from shared.bus import DATA_FIELD, as_text
from shared.events import Event, SilenceCreated, SilenceExpired
from shared.silences import Silence, SilenceIndex, SilenceSpec
from shared.streams import INCIDENTS

__all__ = ["KEY", "RETENTION", "VERSION_KEY", "SilenceStore", "SilenceWatch"]

KEY = "jarvis:silences"
VERSION_KEY = "jarvis:silences:version"
RETENTION = timedelta(days=7)
_NS = uuid.UUID("3c6a1f0e-8d2b-4b7e-9f41-6e2d5a7c9b13")

# KEYS: hash, version, stream. ARGV: id, expected JSON ("" = absent), new JSON,
# event JSON. Applies the change only if the silence is still as it was read.
_CHANGE = """
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], '*', '__data__', ARGV[4])
return 1
"""


class SilenceStore:
    """Create, expire and list silences (the recorder's API)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._change = redis.register_script(_CHANGE)
        assert DATA_FIELD == "__data__"  # the script writes the field by name

    async def _apply(self, silence_id: str, expected: str, new: Silence, event: Event) -> bool:
        keys = [KEY, VERSION_KEY, INCIDENTS.key]
        args: list[str | int] = [
            silence_id,
            expected,
            new.model_dump_json(),
            event.to_json(),
        ]
        return bool(int(await self._change(keys=keys, args=args)))

    async def create(self, spec: SilenceSpec, now: datetime) -> tuple[Silence, SilenceCreated]:
        """Store a new silence; returns it and the event published with it."""
        silence = Silence(**spec.model_dump(), id=str(uuid.uuid4()), created_at=now)
        event = SilenceCreated(
            event_id=str(uuid.uuid5(_NS, f"created:{silence.id}")),
            occurred_at=now,
            producer="recorder",
            silence_id=silence.id,
            matchers=silence.matchers,
            starts_at=silence.starts_at,
            ends_at=silence.ends_at,
            recurrence=silence.recurrence,
            comment=silence.comment,
            by=silence.created_by,
        )
        created = await self._apply(silence.id, "", silence, event)
        assert created, "a new uuid4 is never taken"
        return silence, event

    async def get(self, silence_id: str) -> Silence | None:
        raw = await self._redis.hget(KEY, silence_id)
        return Silence.model_validate_json(raw) if raw else None

    async def expire(
        self, silence_id: str, by: str, now: datetime
    ) -> tuple[Silence, SilenceExpired | None] | None:
        """End a silence now: the silence and the event published; None when there is no
        such silence. One already over is returned as it is, with no event."""
        while True:
            raw = await self._redis.hget(KEY, silence_id)
            if raw is None:
                return None
            silence = Silence.model_validate_json(raw)
            if silence.end <= now:
                return silence, None
            ended = silence.model_copy(update={"expired_at": now, "expired_by": by})
            event = SilenceExpired(
                event_id=str(uuid.uuid5(_NS, f"expired:{silence_id}")),
                occurred_at=now,
                producer="recorder",
                silence_id=silence_id,
                by=by,
            )
            if await self._apply(silence_id, as_text(raw), ended, event):
                return ended, event

    async def all(self, now: datetime) -> list[Silence]:
        """Every silence kept, oldest first; those over for longer than RETENTION are
        dropped on the way."""
        silences = [Silence.model_validate_json(v) for v in (await self._redis.hvals(KEY))]
        old = [s.id for s in silences if s.end < now - RETENTION]
        if old:
            await self._redis.hdel(KEY, *old)
        kept = [s for s in silences if s.id not in old]
        return sorted(kept, key=lambda s: (s.created_at, s.id))


class _Unread:
    """VERSION_KEY not read yet."""


_UNREAD = _Unread()


class SilenceWatch:
    """The silences as one replica sees them: re-read when their version changes."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._version: bytes | str | None = None
        self._index = SilenceIndex([])

    async def index(self, version: bytes | str | _Unread | None = _UNREAD) -> SilenceIndex:
        """The current silences (one GET when nothing changed); `version`: the value of
        VERSION_KEY when the caller read it already (with its own reads, in one script)."""
        if isinstance(version, _Unread):
            version = await self._redis.get(VERSION_KEY)
        if version is None:
            self._version, self._index = None, SilenceIndex([])
        elif version != self._version:
            values = await self._redis.hvals(KEY)
            self._index = SilenceIndex([Silence.model_validate_json(v) for v in values])
            self._version = version
        return self._index
