"""``context.metrics``: a tool's own counters, gauges and timers (the seed's PerformanceTracker).

One ``CustomMetrics`` registry belongs to each tool; every execution's context holds a reference
to it, so an execution that records nothing pays nothing. Recording is a dict lookup and an
addition (a timer: one more bisect into a fixed histogram), and what is recorded shows in
``tool.get_metrics().custom``, in ``GET /metrics`` and in its Prometheus form::

    with context.metrics.timer("database_query"):
        rows = await db.fetch(...)
    context.metrics.increment("cache_misses")
    context.metrics.gauge("database_connections", pool.size)
    context.metrics.observe("upstream_ms", elapsed_ms)

    @weather.metrics.custom.timer("parse")     # a timer is also a decorator (sync or async)
    def parse(payload): ...
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

import msgspec

from ai_spine_tools.observability._histogram import HistogramState, LatencyHistogram

__all__ = ["CustomMetrics", "CustomState", "Timer"]

logger = logging.getLogger("ai_spine_tools.metrics")

F = TypeVar("F", bound=Callable[..., Any])
Kind = Literal["counter", "gauge", "timer"]
MAX_NAMES = 1000
"""Distinct names a tool may record; past it new names are dropped (with one warning), so a
name built from request data cannot grow memory without bound."""
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\-]{0,99}")


class Timer:
    """Times a block (``with``/``async with``) or each call of a function it decorates.

    The duration is recorded in milliseconds even when the block raises. One ``timer()`` call
    times one block at a time; as a decorator it times every call independently.
    """

    __slots__ = ("_histogram", "_lookup", "_started", "elapsed_ms")

    def __init__(self, histogram: LatencyHistogram, lookup: Callable[[], LatencyHistogram]) -> None:
        self._histogram = histogram
        self._lookup = lookup
        self._started = 0.0
        self.elapsed_ms = 0.0
        """The duration of the last timed block, in milliseconds."""

    def __enter__(self) -> Timer:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.elapsed_ms = (time.perf_counter() - self._started) * 1000.0
        self._histogram.observe(self.elapsed_ms)

    async def __aenter__(self) -> Timer:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()

    def __call__(self, fn: F) -> F:
        # Each call looks its timer up by name: a decorator outlives the registry's clear()
        # (tool.reset(), entering a test client), and must not record into a dropped timer.
        lookup = self._lookup
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    lookup().observe((time.perf_counter() - started) * 1000.0)

            return cast(F, timed_async)

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                lookup().observe((time.perf_counter() - started) * 1000.0)

        return cast(F, timed)


class CustomState(msgspec.Struct):
    """A registry's figures as plain data, for merging the workers of one instance."""

    counters: dict[str, float]
    gauges: dict[str, float]
    timers: dict[str, HistogramState]


class CustomMetrics:
    """A tool's custom counters, gauges and timers, by name.

    A name is letters, digits, ``_ . : -`` (up to 100 characters) and keeps one kind: recording a
    counter's name as a gauge raises ``ValueError``.
    """

    __slots__ = ("_dropped", "_kinds", "counters", "gauges", "timers")

    def __init__(self) -> None:
        self.counters: dict[str, float] = {}
        self.gauges: dict[str, float] = {}
        self.timers: dict[str, LatencyHistogram] = {}
        self._kinds: dict[str, Kind] = {}
        self._dropped = False

    def clear(self) -> None:
        """Forget every counter, gauge and timer."""
        self.counters.clear()
        self.gauges.clear()
        self.timers.clear()
        self._kinds.clear()
        self._dropped = False

    def increment(self, name: str, n: float = 1) -> None:
        """Add ``n`` to the counter ``name`` (created at 0)."""
        counters = self.counters
        if name in counters:
            counters[name] += n
        elif self._admit(name, "counter"):
            counters[name] = n

    def gauge(self, name: str, value: float) -> None:
        """Set the gauge ``name`` to ``value``."""
        if name in self.gauges or self._admit(name, "gauge"):
            self.gauges[name] = value

    def observe(self, name: str, ms: float) -> None:
        """Record one duration of ``ms`` milliseconds under the timer ``name``."""
        self._timer(name).observe(ms)

    def timer(self, name: str) -> Timer:
        """Return a timer recording under ``name``: ``with metrics.timer("db"): ...``, or as a
        decorator, ``@metrics.timer("db")``."""
        return Timer(self._timer(name), functools.partial(self._timer, name))

    def start_timer(self, name: str) -> Callable[[], float]:
        """Start timing now; the returned function stops, records and returns the milliseconds
        (the seed's ``startTimer``)."""
        histogram = self._timer(name)
        started = time.perf_counter()

        def stop() -> float:
            elapsed = (time.perf_counter() - started) * 1000.0
            histogram.observe(elapsed)
            return elapsed

        return stop

    def snapshot(self) -> dict[str, Any]:
        """Return every metric by name: counters and gauges as numbers, timers as
        ``{count, sum_ms, min_ms, max_ms, avg_ms, p50_ms, p95_ms, p99_ms}``."""
        out: dict[str, Any] = {**self.counters, **self.gauges}
        for name, histogram in self.timers.items():
            out[name] = histogram.summary()
        return dict(sorted(out.items()))

    def state(self) -> CustomState:
        """Return the figures as plain data."""
        return CustomState(
            dict(self.counters),
            dict(self.gauges),
            {name: histogram.state() for name, histogram in self.timers.items()},
        )

    def absorb(self, state: CustomState, *, gauges: bool = True) -> None:
        """Add another worker's figures to these (its gauges too, when ``gauges``)."""
        for name, value in state.counters.items():
            self.increment(name, value)
        if gauges:
            for name, value in state.gauges.items():
                self.gauge(name, self.gauges.get(name, 0) + value)
        for name, histogram in state.timers.items():
            self._timer(name).absorb(histogram)

    def _timer(self, name: str) -> LatencyHistogram:
        histogram = self.timers.get(name)
        if histogram is None:
            histogram = LatencyHistogram()
            if self._admit(name, "timer"):
                self.timers[name] = histogram
        return histogram

    def _admit(self, name: str, kind: Kind) -> bool:
        """Check a new name; False (and the value dropped) once ``MAX_NAMES`` are in use."""
        known = self._kinds.get(name)
        if known is not None:
            raise ValueError(f"custom metric {name!r} is a {known}; it cannot be used as a {kind}")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(
                f"custom metric name {name!r} must start with a letter or '_' and hold only "
                "letters, digits and '_.:-' (at most 100 characters)"
            )
        if len(self._kinds) >= MAX_NAMES:
            if not self._dropped:
                self._dropped = True
                logger.warning(
                    "more than %d custom metric names: %r and later new names are not recorded",
                    MAX_NAMES,
                    name,
                )
            return False
        self._kinds[name] = kind
        return True
