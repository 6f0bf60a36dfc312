"""Pool places and pool pressure: who holds a pooled connection, who waits for one, and a
warning when getting one takes longer than a threshold.

``Places`` admits at most a pool's size of callers and queues the rest (``PostgresPool`` and the
shared HTTP client both hold their connections through one).

Pools call ``note_wait(name, waited_ms, stats)`` after each wait for a connection
(``PostgresPool`` when a caller had to queue, the shared HTTP client after each acquisition,
both through ``AcquireWaits``); a wait past ``AI_SPINE_POOL_WAIT_WARNING_MS`` (100 ms, set by the
server at start-up) logs a warning naming the pool, the wait and its figures, at most once a
minute per pool, so a pool that is too small for the load says so without flooding the log.
The figures themselves (wait avg and max, waiting callers) are in ``/metrics`` under ``pools``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["AcquireWaits", "Places", "configure_pool_watch", "note_wait"]

logger = logging.getLogger("ai_spine_tools.diagnostics")

_REPEAT_S = 60.0
_threshold_ms = 100.0
_last_warned: dict[str, float] = {}


def configure_pool_watch(threshold_ms: float) -> None:
    """Warn about acquisitions slower than ``threshold_ms`` from now on."""
    global _threshold_ms
    _threshold_ms = threshold_ms


def note_wait(
    name: str,
    waited_ms: float,
    stats: Callable[[], dict[str, Any] | None] | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Record that a connection of pool ``name`` took ``waited_ms`` to get; warn if too long."""
    if waited_ms < _threshold_ms:
        return
    now = clock()
    if now - _last_warned.get(name, -_REPEAT_S) < _REPEAT_S:
        return
    _last_warned[name] = now
    figures = (stats() if stats is not None else None) or {}
    logger.warning(
        "waited %.0f ms for a connection from pool %r (max_size %s, %s in use, %s waiting): "
        "the pool is too small for the load, or connections are held too long. Raise its "
        "size (DB_POOL_MAX, AI_SPINE_MAX_CONNECTIONS), keep transactions short, or lower "
        "AI_SPINE_MAX_CONCURRENT_EXECUTIONS. At most once a minute per pool.",
        waited_ms,
        name,
        figures.get("max_size", figures.get("max_connections", "?")),
        figures.get("in_use", "?"),
        figures.get("waiting", "?"),
    )


class AcquireWaits:
    """A pool's callers waiting for a connection, the connections handed out, and how long each
    wait took (every wait goes to ``note_wait`` under the pool's ``name``)."""

    __slots__ = ("_max_ms", "_stats", "_total_ms", "acquired", "name", "waiting")

    def __init__(self, name: str, stats: Callable[[], dict[str, Any] | None] | None = None) -> None:
        self.name = name
        self._stats = stats
        self.waiting = 0
        self.acquired = 0
        self._total_ms = 0.0
        self._max_ms = 0.0

    def begin(self) -> float:
        """Count a caller as waiting from now; return the time to give ``end``."""
        self.waiting += 1
        return time.perf_counter()

    def end(self, started: float) -> None:
        """Count the wait begun at ``started`` as over (its acquisition is counted apart)."""
        self.waiting -= 1
        waited = (time.perf_counter() - started) * 1000.0
        self._total_ms += waited
        self._max_ms = max(self._max_ms, waited)
        note_wait(self.name, waited, self._stats)  # warns when the pool is too small

    def figures(self) -> dict[str, Any]:
        """``waiting``, ``acquired`` and ``acquire_wait_ms`` (``avg`` and ``max``)."""
        acquired = self.acquired
        return {
            "waiting": self.waiting,
            "acquired": acquired,
            "acquire_wait_ms": {
                "avg": round(self._total_ms / acquired, 3) if acquired else 0.0,
                "max": round(self._max_ms, 3),
            },
        }


class Places:
    """At most ``size`` callers hold a place at once (a pooled connection, or one being opened
    for them); the others queue, first come first served, each for at most a timeout, and a
    caller done with its place hands it to the first one queued. ``waits`` counts it all.

    Written here rather than taken from ``asyncio.Semaphore``: a free place is taken with an
    integer test, no coroutine, and a queued caller's timeout is one timer where
    ``asyncio.timeout`` cost 5-7 µs a call under uvloop (measured); it keeps ``PostgresPool``'s
    ``fetchrow`` at 0.96-0.98 of asyncpg's own (``python -m bench.pools``).
    """

    __slots__ = ("_queue", "size", "taken", "waits")

    def __init__(self, size: int, waits: AcquireWaits) -> None:
        self.size = size
        self.taken = 0
        self.waits = waits
        self._queue: deque[asyncio.Future[bool]] = deque()

    def take(self) -> bool:
        """Take a free place, if there is one (places are handed over: nobody queues for it)."""
        if self.taken < self.size:
            self.taken += 1
            self.waits.acquired += 1
            return True
        return False

    async def wait(self, within: float | None) -> bool:
        """Queue for a place; true once one is handed over, false after ``within`` seconds
        without (``None``: no limit)."""
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[bool] = loop.create_future()
        self._queue.append(turn)
        expiry = None if within is None else loop.call_later(within, _expire, turn)
        started = self.waits.begin()
        placed = False
        try:
            placed = await turn
        except BaseException:
            placed = turn.done() and not turn.cancelled() and turn.result()
            if placed:
                self.give_back()  # handed a place just as it was cancelled: pass it on
            raise
        finally:
            if expiry is not None:
                expiry.cancel()
            self.waits.end(started)
            if not placed:  # timed out or cancelled while queued
                with contextlib.suppress(ValueError):
                    self._queue.remove(turn)
        if placed:
            self.waits.acquired += 1
        return placed

    def give_back(self) -> None:
        """Hand the caller's place to the first caller queued for one, or free it."""
        queue = self._queue
        while queue:
            turn = queue.popleft()
            if not turn.done():
                turn.set_result(True)
                return
        self.taken -= 1


def _expire(turn: asyncio.Future[bool]) -> None:
    if not turn.done():
        turn.set_result(False)
