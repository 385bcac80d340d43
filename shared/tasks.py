"""Stopping asyncio tasks for good.

On Python 3.11 asyncio.wait_for (redis-py's socket timeout) can swallow a cancellation
that lands as a command completes, so a task is cancelled again until it has really
stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

__all__ = ["cancel_all"]

log = logging.getLogger(__name__)


async def cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait until every one has stopped (up to about 10 s)."""
    pending = set(tasks)
    for _ in range(100):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    log.error("tasks did not stop: %s", ", ".join(t.get_name() for t in pending))
