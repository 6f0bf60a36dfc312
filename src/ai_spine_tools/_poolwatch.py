"""Pool pressure: a warning when getting a pooled connection takes longer than a threshold.

Pools call ``note_wait(name, waited_ms, stats)`` after each acquisition (``PostgresPool`` and
the shared HTTP client do); a wait past ``AI_SPINE_POOL_WAIT_WARNING_MS`` (100 ms, set by the
server at start-up) logs a warning naming the pool, the wait and its figures, at most once a
minute per pool, so a pool that is too small for the load says so without flooding the log.
The figures themselves (wait avg and max, waiting callers) are in ``/metrics`` under ``pools``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["configure_pool_watch", "note_wait"]

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
