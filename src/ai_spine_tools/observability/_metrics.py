"""Built-in execution metrics, recorded in O(1) per request.

Recording touches a few counters, one slot of a per-second ring (for the rate over the last
minute) and one bucket of a fixed latency histogram (for percentiles and Prometheus buckets).
Nothing per request is kept, so memory stays flat however long the server runs. ``state()`` and
``absorb()`` turn the figures into plain data and back, so the workers of one instance can be
reported as one (see ``_instance``).
"""

from __future__ import annotations

import math
import os
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec

from ai_spine_tools.observability._custom_metrics import CustomMetrics, CustomState
from ai_spine_tools.observability._histogram import EDGES, HistogramState, LatencyHistogram
from ai_spine_tools.outbound._pools import pool_stats

__all__ = [
    "CPUMeter",
    "LatencyHistogram",
    "MetricsSnapshot",
    "MetricsState",
    "ToolMetrics",
    "usable_cores",
]

_WINDOW = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSnapshot:
    """A point-in-time view of a tool's metrics, shaped like the TypeScript SDK's.

    ``requests``: total, rate_per_second (over the last minute), avg_response_time_ms,
    p50_ms/p95_ms/p99_ms, max_ms. ``errors``: total, rate (errors per request), by_code.
    ``resources``: memory_usage_bytes (RSS), cpu_usage_percent (of one core, at most 100 times
    cpu_cores), cpu_seconds_total, cpu_cores, threads.
    ``cache``: hit_rate and per-level figures. ``custom``: what the tool recorded through
    ``context.metrics``. ``workers``: how many worker processes the figures add up.
    """

    requests: dict[str, Any]
    errors: dict[str, Any]
    resources: dict[str, Any]
    cache: dict[str, Any] | None = None
    custom: dict[str, Any] = field(default_factory=dict)
    uptime_seconds: float = 0.0
    concurrency: dict[str, Any] | None = None
    breakers: dict[str, Any] = field(default_factory=dict)
    pools: dict[str, Any] = field(default_factory=dict)
    workers: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as JSON-ready data."""
        return asdict(self)


class MetricsState(msgspec.Struct):
    """The counters of one process as plain data (its figures, such as memory, apart)."""

    started: float
    errors: int
    by_code: dict[str, int]
    latency: HistogramState
    ring: list[int]
    stamps: list[int]
    custom: CustomState


class ToolMetrics:
    """Counters, per-second marks and a latency histogram for one tool in one process.

    ``custom`` is the tool's ``context.metrics``. The server sets ``concurrency``, the tool
    ``breakers`` and ``cache_stats``, so a snapshot reports them too. The clock is
    ``time.perf_counter``, which the server has already read when a request ends; it is the
    system's monotonic clock (one for every process, so workers' rings line up when merged).
    """

    def __init__(self, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self.started = clock()
        self.errors = 0
        self.by_code: dict[str, int] = {}
        self.latency = LatencyHistogram()
        # The request count when each of the last 60 seconds saw its first request: a request
        # compares one float, and the count of each second is the difference to the next mark.
        self._marks = [0] * _WINDOW
        self._mark_stamps = [-1] * _WINDOW
        self._next_second = -math.inf
        # Requests per second absorbed from other workers (merged metrics only).
        self._ring = [0] * _WINDOW
        self._stamps = [-1] * _WINDOW
        self.custom = CustomMetrics()
        self._process: Any = None
        self._cpu: CPUMeter = CPUMeter(cores=1)  # sized on first reading (psutil is lazy)
        self.breakers: Any = None  # the tool's BreakerRegistry
        self.concurrency: Callable[[], dict[str, Any]] | None = None  # set by the server
        self.cache_stats: Callable[[], dict[str, Any]] | None = None  # set by the tool
        # Event-loop lag and stalls (see _diagnostics), set by the server; join ``resources``.
        self.diagnostics: Callable[[], dict[str, Any]] | None = None

    @property
    def total(self) -> int:
        """Requests recorded."""
        return self.latency.count

    def record(
        self, duration_ms: float, error_code: str | None = None, now: float | None = None
    ) -> None:
        """Count one finished request (``now``: a reading of the clock, if the caller has one)."""
        if now is None:
            now = self._clock()
        if now >= self._next_second:
            self._mark(now)
        # LatencyHistogram.observe, inlined: the call alone was a fifth of the cost.
        latency = self.latency
        latency.counts[bisect_left(EDGES, duration_ms)] += 1
        latency.count += 1
        latency.sum += duration_ms
        if duration_ms > latency.max:
            latency.max = duration_ms
        if duration_ms < latency.min:
            latency.min = duration_ms
        if error_code is not None:
            self.errors += 1
            self.by_code[error_code] = self.by_code.get(error_code, 0) + 1

    def _mark(self, now: float) -> None:
        second = int(now)
        self._next_second = second + 1
        slot = second % _WINDOW
        self._marks[slot] = self.latency.count
        self._mark_stamps[slot] = second

    def per_second(self) -> tuple[list[int], list[int]]:
        """Return requests per second over the last 60 seconds that saw any: counts and the
        seconds they belong to, each second in slot ``second % 60``."""
        ring, stamps = list(self._ring), list(self._stamps)
        marked = sorted(
            (stamp, mark)
            for stamp, mark in zip(self._mark_stamps, self._marks, strict=True)
            if stamp >= 0
        )
        ends = [mark for _, mark in marked[1:]] + [self.latency.count] * bool(marked)
        for (second, mark), end in zip(marked, ends, strict=True):
            slot = second % _WINDOW
            if stamps[slot] == second:
                ring[slot] += end - mark
            elif second > stamps[slot]:
                stamps[slot], ring[slot] = second, end - mark
        return ring, stamps

    def rate_per_second(self) -> float:
        """Requests per second over the last minute (or since start, if shorter)."""
        now = int(self._clock())
        ring, stamps = self.per_second()
        recent = sum(
            n for n, stamp in zip(ring, stamps, strict=True) if now - _WINDOW < stamp <= now
        )
        span = min(float(_WINDOW), max(1.0, self._clock() - self.started))
        return recent / span

    def uptime_seconds(self) -> float:
        """Seconds since these metrics started (the earliest worker's start, once merged)."""
        return max(0.0, self._clock() - self.started)

    def figures(self) -> dict[str, Any]:
        """Return what this process measures now rather than counts: resources, concurrency,
        breakers, pools and cache statistics."""
        return {
            "resources": self.resources(),
            "concurrency": None if self.concurrency is None else self.concurrency(),
            "breakers": {} if self.breakers is None else self.breakers.stats(),
            "pools": pool_stats(),
            "cache": None if self.cache_stats is None else self.cache_stats(),
        }

    def snapshot(
        self, figures: dict[str, Any] | None = None, *, workers: int = 1
    ) -> MetricsSnapshot:
        """Return the current metrics (with this process's ``figures`` unless given)."""
        live = self.figures() if figures is None else figures
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
                "by_code": dict(sorted(self.by_code.items())),
            },
            resources=live.get("resources") or {},
            cache=live.get("cache"),
            custom=self.custom.snapshot(),
            uptime_seconds=round(self.uptime_seconds(), 3),
            concurrency=live.get("concurrency"),
            breakers=live.get("breakers") or {},
            pools=live.get("pools") or {},
            workers=workers,
        )

    def state(self) -> MetricsState:
        """Return the counters as plain data."""
        ring, stamps = self.per_second()
        return MetricsState(
            started=self.started,
            errors=self.errors,
            by_code=dict(self.by_code),
            latency=self.latency.state(),
            ring=ring,
            stamps=stamps,
            custom=self.custom.state(),
        )

    def absorb(self, state: MetricsState, *, gauges: bool = True) -> None:
        """Add another process's counters to these: totals and histograms add up, the
        per-second rings merge slot by slot (the newer second wins), the earlier start wins.
        Its custom gauges are added only when ``gauges`` (a live process)."""
        self.started = min(self.started, state.started)
        self.errors += state.errors
        for code, n in state.by_code.items():
            self.by_code[code] = self.by_code.get(code, 0) + n
        self.latency.absorb(state.latency)
        for slot, (n, stamp) in enumerate(zip(state.ring, state.stamps, strict=True)):
            if stamp == self._stamps[slot]:
                self._ring[slot] += n
            elif stamp > self._stamps[slot]:
                self._stamps[slot], self._ring[slot] = stamp, n
        self.custom.absorb(state.custom, gauges=gauges)

    @classmethod
    def merged(
        cls, states: Iterable[tuple[MetricsState, bool]], *, clock: Callable[[], float]
    ) -> ToolMetrics:
        """Return metrics adding up ``(state, live)`` pairs (gauges of live ones only)."""
        out = cls(clock=clock)
        out.started = clock()
        for state, live in states:
            out.absorb(state, gauges=live)
        return out

    def resources(self) -> dict[str, Any]:
        """Memory (RSS), CPU use over the last half second or more (% of one core, at most
        100 times ``cpu_cores``), CPU time and threads of this process."""
        import psutil

        if self._process is None:
            self._process = psutil.Process()
            self._cpu = CPUMeter(cores=usable_cores())
        process = self._process
        with process.oneshot():
            times = process.cpu_times()
            used = times.user + times.system
            return {
                "memory_usage_bytes": process.memory_info().rss,
                "cpu_usage_percent": round(self._cpu.percent(used), 1),
                "cpu_seconds_total": round(used, 3),
                "cpu_cores": self._cpu.cores,
                "threads": process.num_threads(),
                **({} if self.diagnostics is None else self.diagnostics()),
            }


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


class CPUMeter:
    """A process's CPU use as a percentage of one core, over a window of at least ``window``
    seconds.

    psutil's ``cpu_percent(None)`` measures since its previous call, whoever made it; the kernel
    counts CPU time in 10 ms ticks, so two readings a millisecond apart (``/metrics`` read right
    after ``get_metrics()``) turned one tick into 1000%: the doctor reported 722% of one core
    on a 2-core machine. A reading sooner than ``window`` after the last one repeats it, and a
    reading never exceeds what ``cores`` can do.
    """

    def __init__(
        self,
        *,
        cores: int,
        window: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cores = max(1, cores)
        self.window = window
        self._clock = clock
        self._since: float | None = None
        self._used = 0.0
        self._last = 0.0

    def percent(self, cpu_seconds: float) -> float:
        """The CPU use since the previous window, given this process's CPU seconds so far."""
        now = self._clock()
        if self._since is None:  # the first reading sets the baseline
            self._since, self._used = now, cpu_seconds
            return 0.0
        elapsed = now - self._since
        if elapsed < self.window:
            return self._last
        busy = max(0.0, cpu_seconds - self._used) / elapsed * 100.0
        self._last = min(busy, 100.0 * self.cores)
        self._since, self._used = now, cpu_seconds
        return self._last
