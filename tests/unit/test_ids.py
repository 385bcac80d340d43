"""Event ids (shared.ids): valid, time-ordered UUIDv7 strings that never repeat."""

from __future__ import annotations

import os
import time
import uuid

from shared.envelope import owned_event_id
from shared.events import AlertRaised
from shared.ids import new_event_id, uuid5_text


def test_ids_are_uuid7_in_the_canonical_text_form() -> None:
    for _ in range(2000):
        text = new_event_id()
        parsed = uuid.UUID(text)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text  # what Event's validator keeps, unchanged


def test_ids_carry_the_time_and_sort_by_it() -> None:
    before = time.time_ns() // 1_000_000
    first = new_event_id()
    time.sleep(0.003)
    second = new_event_id()
    after = time.time_ns() // 1_000_000
    millis = uuid.UUID(first).int >> 80
    assert before <= millis <= after
    assert first < second  # written later, sorts later (the recorder's index grows at its end)


def test_ids_do_not_repeat_across_pool_refills() -> None:
    ids = [new_event_id() for _ in range(50_000)]  # hundreds of refills of the pool
    assert len(set(ids)) == len(ids)


def test_a_forked_child_mints_other_ids_than_its_parent() -> None:
    new_event_id()  # the pool holds randomness the child would otherwise reuse
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, ",".join(new_event_id() for _ in range(20)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = set(os.read(read, 65536).decode().split(","))
    os.close(read)
    parent = {new_event_id() for _ in range(20)}
    assert len(child) == 20
    assert not child & parent


def test_events_and_unclaimed_alerts_get_uuid7_claimed_ones_uuid5() -> None:
    assert uuid.UUID(AlertRaised(service="backend").event_id).version == 7
    assert uuid.UUID(owned_event_id("api", None)).version == 7
    assert uuid.UUID(owned_event_id("api", "their-id")).version == 5


def test_uuid5_text_is_what_uuid5_writes() -> None:
    namespace = uuid.UUID("5b0e6a8e-2f8c-4d61-9a43-7c1f0d2e9b57")
    for name in ("", "jarvis:alerts/1-0", "ünïcode\n名前", "x" * 500):
        assert uuid5_text(namespace, name) == str(uuid.uuid5(namespace, name))
