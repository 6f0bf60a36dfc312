"""Built-in execution metrics, recorded in O(1) per request.

Recording touches a few counters, one slot of a per-second ring (for the rate over the last
minute) and one bucket of a fixed log-scale latency histogram (for percentiles). Nothing per request
is kept, so memory stays flat however long the server runs.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ai_spine_tools._pools import pool_stats

__all__ = ["LatencyHistogram", "MetricsSnapshot", "ToolMetrics"]

_RATIO = 1.1  # each bucket is 10% wider than the one before: percentiles are within 10%
_LOWEST_MS = 0.01
_BUCKETS = 180  # 0.01 ms * 1.1**180 ~ 280 s; slower observations land in the last bucket
_WINDOW = 60


class LatencyHistogram:
    """Counts of observations in fixed log-scale buckets, with sum, min and max."""

    __slots__ = ("count", "counts", "max", "min", "sum")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = 0.0

    def observe(self, ms: float) -> None:
        """Add one observation in milliseconds."""
        self.counts[bisect_left(_UPPER_BOUNDS, ms)] += 1
        self.count += 1
        self.sum += ms
        if ms < self.min:
            self.min = ms
        if ms > self.max:
            self.max = ms

    def percentile(self, q: float) -> float:
        """Return the ``q``-th percentile (0-100) in ms: the upper bound of its bucket."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(self.count * q / 100.0))
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return min(self.max, max(self.min, upper_bound(index)))
        return self.max


def upper_bound(index: int) -> float:
    """Return the upper edge, in ms, of histogram bucket ``index``."""
    return float(_LOWEST_MS * _RATIO**index)


# The last bucket takes everything slower; bisect over the edges costs a third of a log().
_UPPER_BOUNDS = tuple(upper_bound(index) for index in range(_BUCKETS - 1))


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSnapshot:
    """A point-in-time view of a tool's metrics, shaped like the TypeScript SDK's."""

    requests: dict[str, Any]
    errors: dict[str, Any]
    resources: dict[str, Any]
    cache: dict[str, Any] | None = None
    custom: dict[str, Any] = field(default_factory=dict)
    uptime_seconds: float = 0.0
    concurrency: dict[str, Any] | None = None
    breakers: dict[str, Any] = field(default_factory=dict)
    pools: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as JSON-ready data."""
        return asdict(self)


class ToolMetrics:
    """Counters, a per-second ring and a latency histogram for one tool in one process."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self.total = 0
        self.errors = 0
        self.by_code: Counter[str] = Counter()
        self.latency = LatencyHistogram()
        self._ring = [0] * _WINDOW
        self._stamps = [-1] * _WINDOW
        self._process: Any = None
        self.breakers: Any = None  # the tool's BreakerRegistry
        self.concurrency: Callable[[], dict[str, Any]] | None = None  # set by the server

    def record(self, duration_ms: float, error_code: str | None = None) -> None:
        """Count one finished request."""
        self.total += 1
        second = int(self._clock())
        slot = second % _WINDOW
        if self._stamps[slot] != second:
            self._stamps[slot] = second
            self._ring[slot] = 0
        self._ring[slot] += 1
        self.latency.observe(duration_ms)
        if error_code is not None:
            self.errors += 1
            self.by_code[error_code] += 1

    def rate_per_second(self) -> float:
        """Requests per second over the last minute (or since start, if shorter)."""
        now = int(self._clock())
        recent = sum(
            n
            for n, stamp in zip(self._ring, self._stamps, strict=True)
            if now - _WINDOW < stamp <= now
        )
        span = min(float(_WINDOW), max(1.0, self._clock() - self._started))
        return recent / span

    def snapshot(self) -> MetricsSnapshot:
        """Return the current metrics."""
        latency = self.latency
        return MetricsSnapshot(
            requests={
                "total": self.total,
                "rate_per_second": round(self.rate_per_second(), 3),
                "avg_response_time_ms": round(latency.sum / latency.count, 3)
                if latency.count
                else 0.0,
                "p50_ms": round(latency.percentile(50), 3),
                "p95_ms": round(latency.percentile(95), 3),
                "p99_ms": round(latency.percentile(99), 3),
                "max_ms": round(latency.max, 3),
            },
            errors={
                "total": self.errors,
                "rate": round(self.errors / self.total, 6) if self.total else 0.0,
                "by_code": dict(self.by_code),
            },
            resources=self._resources(),
            uptime_seconds=round(self._clock() - self._started, 3),
            concurrency=None if self.concurrency is None else self.concurrency(),
            breakers={} if self.breakers is None else self.breakers.stats(),
            pools=pool_stats(),
        )

    def _resources(self) -> dict[str, Any]:
        import psutil

        if self._process is None:
            self._process = psutil.Process()
            self._process.cpu_percent(None)  # the first reading only sets the baseline
        with self._process.oneshot():
            return {
                "memory_usage_bytes": self._process.memory_info().rss,
                "cpu_usage_percent": self._process.cpu_percent(None),
                "threads": self._process.num_threads(),
            }
