"""Waiting out failures: capped, jittered exponential backoff, and a log that speaks once
per outage instead of once per retry.

Used by the consumer layer (a dependency that is down) and by the escalator (a
notification receiver that is down). Jitter keeps replicas that failed together from
retrying together.
"""

from __future__ import annotations

import logging
import random
import time

__all__ = ["OutageLog", "backoff_delay"]

_RNG = random.Random()


def backoff_delay(
    attempt: int, initial_s: float, max_s: float, rng: random.Random | None = None
) -> float:
    """The wait before retry number `attempt` (1 for the first retry): doubling from
    `initial_s`, capped at `max_s`, then "equal jitter" — half fixed, half random — so
    a wait is never shorter than half its step and replicas drift apart."""
    step = min(max_s, initial_s * 2.0 ** min(max(attempt - 1, 0), 60))
    jitter = (rng or _RNG).uniform(0, step / 2)
    return step / 2 + jitter


class OutageLog:
    """Logs the start of an outage, a reminder every `remind_s` while it lasts, and its end.

    `failed` is called on every failed retry, `recovered` on every success; only
    transitions (and the reminders) reach the log.
    """

    def __init__(self, logger: logging.Logger, what: str, remind_s: float = 60.0) -> None:
        self._log = logger
        self._what = what
        self._remind_s = remind_s
        self._since: float | None = None
        self._last_said = 0.0
        self.failures = 0

    @property
    def in_outage(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException | str) -> None:
        now = time.monotonic()
        self.failures += 1
        if self._since is None:
            self._since = self._last_said = now
            self._log.warning("%s: waiting, retrying with backoff: %s", self._what, error)
        elif now - self._last_said >= self._remind_s:
            self._last_said = now
            self._log.warning(
                "%s: still waiting after %.0f s (%d retries): %s",
                self._what,
                now - self._since,
                self.failures,
                error,
            )

    def recovered(self) -> None:
        if self._since is None:
            return
        self._log.warning(
            "%s: recovered after %.1f s (%d retries)",
            self._what,
            time.monotonic() - self._since,
            self.failures,
        )
        self._since = None
        self.failures = 0
