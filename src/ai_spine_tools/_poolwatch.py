"""Pool pressure: a warning when getting a pooled connection takes longer than a threshold.

Pools call ``note_wait(name, waited_ms, stats)`` after each wait for a connection
(``PostgresPool`` when a caller had to queue, the shared HTTP client after each acquisition,
both through ``AcquireWaits``); a wait past ``AI_SPINE_POOL_WAIT_WARNING_MS`` (100 ms, set by the
server at start-up) logs a warning naming the pool, the wait and its figures, at most once a
minute per pool, so a pool that is too small for the load says so without flooding the log.
The figures themselves (wait avg and max, waiting callers) are in ``/metrics`` under ``pools``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["AcquireWaits", "configure_pool_watch", "note_wait"]

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

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        """Time the wait in the block (whether it gets a connection or not); count it as an
        acquisition when the block ends without an error."""
        started = self.begin()
        try:
            yield
        finally:
            self.end(started)
        self.acquired += 1

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
