"""Parsed values kept by the bytes they were parsed from.

Triage reads the same documents over and over (an incident's JSON with every alert of
it, a fingerprint's slot with every repeat, a playbook's run): the values are immutable,
so the same bytes always stand for the same value, and a document seen recently is not
parsed again. Bounded in count and in bytes (an incident with thousands of firing alerts
is a large document): the least recently used go first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Memo"]

T = TypeVar("T")


class Memo(Generic[T]):
    """`parse(raw)` for the last `size` distinct documents, at most `max_bytes` of them."""

    def __init__(
        self, parse: Callable[[bytes], T], size: int = 4096, max_bytes: int = 32 * 1_048_576
    ) -> None:
        self._parse = parse
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._known: OrderedDict[bytes, T] = OrderedDict()

    def __call__(self, raw: str | bytes) -> T:
        key = raw if isinstance(raw, bytes) else raw.encode()
        found = self._known.get(key)
        if found is None:
            found = self._parse(key)
            self.remember(key, found)
        else:
            self._known.move_to_end(key)
        return found

    def remember(self, raw: bytes, value: T) -> None:
        """`raw` is the document of `value` (one this process wrote: read back next)."""
        if len(raw) > self._max_bytes:
            return  # never kept: it would push out everything else
        if raw not in self._known:
            self._bytes += len(raw)
        self._known[raw] = value
        self._known.move_to_end(raw)
        while len(self._known) > self._size or self._bytes > self._max_bytes:
            old, _ = self._known.popitem(last=False)
            self._bytes -= len(old)
