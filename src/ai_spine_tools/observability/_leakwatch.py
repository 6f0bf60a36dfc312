"""Leak watch: resident memory (RSS) sampled over time, and a verdict on steady growth.

A leak shows as memory that grows with the work done and never comes back: RSS rising in step
with the request count. ``leak_verdict`` fits RSS against requests over a window of samples and
calls it a leak only when all of these hold, so warm-up, caches filling once and noise do not:

- enough samples and requests to judge (``min_samples``, ``min_requests``);
- RSS grew by at least ``min_growth_mb`` over the window, and by at least a quarter of that in
  its second half (a one-off step at start-up is not a leak);
- it grew in at least two thirds of the steps that saw requests (steadily, not in one jump);
- the least-squares slope is at least ``slope_mb`` MB per 1000 requests.

``LeakWatch`` samples the server's RSS every few seconds into a small ring (an asyncio task, one
``psutil`` call each time) and feeds ``/health``: ``degraded``, with the reason, while the window
shows a leak. ``ai-spine load --leak-check`` applies the same verdict to RSS after each round.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ai_spine_tools.observability._periodic import Periodic

__all__ = ["LeakVerdict", "LeakWatch", "leak_verdict", "process_rss"]

logger = logging.getLogger("ai_spine_tools.diagnostics")

_MB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class LeakVerdict:
    """Whether RSS grew steadily with requests, with the figures behind the call."""

    leaking: bool
    samples: int
    requests: int
    rss_mb: float
    growth_mb: float
    slope_mb_per_1k_requests: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Return the verdict as JSON-ready data."""
        return asdict(self)


def leak_verdict(
    points: Sequence[tuple[int, int]],
    *,
    slope_mb: float = 1.0,
    min_growth_mb: float = 8.0,
    min_samples: int = 6,
    min_requests: int = 100,
) -> LeakVerdict:
    """Judge ``(requests so far, RSS bytes)`` samples, oldest first (see the module doc)."""
    n = len(points)
    rss_mb = points[-1][1] / _MB if points else 0.0
    if n < 2:
        return LeakVerdict(
            leaking=False,
            samples=n,
            requests=0,
            rss_mb=round(rss_mb, 1),
            growth_mb=0.0,
            slope_mb_per_1k_requests=0.0,
            reason="not enough samples yet",
        )
    requests = points[-1][0] - points[0][0]
    growth = (points[-1][1] - points[0][1]) / _MB
    slope = _slope(points) * 1000.0 / _MB  # MB per 1000 requests
    # Only steps with requests in them tell: memory does not grow while nothing is asked.
    steps = [b[1] - a[1] for a, b in itertools.pairwise(points) if b[0] > a[0]]
    rising = sum(1 for step in steps if step > 0) / len(steps) if steps else 0.0
    half = n // 2
    late_growth = (points[-1][1] - points[half][1]) / _MB

    def verdict(leaking: bool, reason: str) -> LeakVerdict:
        return LeakVerdict(
            leaking=leaking,
            samples=n,
            requests=requests,
            rss_mb=round(rss_mb, 1),
            growth_mb=round(growth, 2),
            slope_mb_per_1k_requests=round(slope, 3),
            reason=reason,
        )

    if n < min_samples or requests < min_requests:
        return verdict(False, f"not enough data yet ({n} samples, {requests} requests)")
    leaking = (
        growth >= min_growth_mb
        and late_growth >= growth / 4
        and rising >= 2 / 3
        and slope >= slope_mb
    )
    if leaking:
        return verdict(
            True,
            f"RSS grew steadily by {growth:.1f} MB over {requests:,} requests "
            f"({slope:.2f} MB per 1000 requests, above {slope_mb:g}): memory is kept per "
            "request (a growing global list or dict, an unbounded cache, unclosed "
            "connections or listeners)",
        )
    if growth >= min_growth_mb and slope >= slope_mb:
        return verdict(
            False,
            f"RSS grew by {growth:.1f} MB over {requests:,} requests, but not steadily with "
            "them (a one-off step: warm-up, a cache or pool filling once)",
        )
    return verdict(False, f"RSS flat: {growth:+.1f} MB over {requests:,} requests")


def _slope(points: Sequence[tuple[int, int]]) -> float:
    """Least-squares slope of RSS (bytes) against requests."""
    xs = [float(x) for x, _ in points]
    ys = [float(y) for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def process_rss() -> int:
    """This process's resident memory in bytes."""
    import psutil

    return int(psutil.Process().memory_info().rss)


class LeakWatch:
    """Samples RSS and the request count every ``interval`` seconds into a ring of ``size``."""

    def __init__(
        self,
        requests: Callable[[], int],
        *,
        interval: float = 5.0,
        size: int = 24,
        slope_mb: float = 1.0,
        min_growth_mb: float = 8.0,
        rss: Callable[[], int] = process_rss,
    ) -> None:
        self._requests = requests
        self.interval = interval
        self.slope_mb = slope_mb
        self.min_growth_mb = min_growth_mb
        self._rss = rss
        self.samples: deque[tuple[int, int]] = deque(maxlen=size)
        self._sampler = Periodic(
            self.sample, interval, logger=logger, failure="cannot sample memory; will keep trying"
        )

    def sample(self) -> None:
        """Take one sample now."""
        self.samples.append((self._requests(), self._rss()))

    def verdict(self) -> LeakVerdict:
        """The verdict over the samples in the ring."""
        return leak_verdict(
            list(self.samples), slope_mb=self.slope_mb, min_growth_mb=self.min_growth_mb
        )

    def check(self) -> dict[str, Any]:
        """The ``memory`` entry of ``/health``'s checks."""
        verdict = self.verdict()
        check: dict[str, Any] = {
            "status": "degraded" if verdict.leaking else "ok",
            "rss_mb": verdict.rss_mb,
            "growth_mb_per_1k_requests": verdict.slope_mb_per_1k_requests,
            "samples": verdict.samples,
        }
        if verdict.leaking:
            check["reason"] = verdict.reason
        return check

    def start(self) -> None:
        """Start sampling every ``interval`` seconds on the running loop."""
        self._sampler.start()

    async def stop(self) -> None:
        """Stop sampling."""
        await self._sampler.stop()
