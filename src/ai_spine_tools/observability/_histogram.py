"""A fixed-bucket latency histogram: O(1) recording, percentiles within 10%, exact buckets.

The bucket edges are a log scale (each 10% wider than the one before, 0.01 ms to about 280 s)
merged with Prometheus's conventional bounds (5 ms ... 10 s). Recording is one bisect over the
edges and an increment; a percentile is the upper edge of the bucket it falls in, so within 10%;
and since every conventional bound is an edge, the cumulative counts Prometheus wants are exact
sums of whole buckets, computed when scraped rather than kept per request.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from itertools import accumulate

import msgspec

__all__ = ["EDGES", "PROMETHEUS_BOUNDS_MS", "HistogramState", "LatencyHistogram", "upper_edge"]

_RATIO = 1.1  # each log bucket is 10% wider than the one before: percentiles are within 10%
_LOWEST_MS = 0.01
_LOGEDGES = 179  # 0.01 ms * 1.1**179 ~ 260 s; slower observations land in the last bucket
PROMETHEUS_BOUNDS_MS = (5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10_000)
"""``prometheus_client``'s default histogram buckets (0.005 s to 10 s), in milliseconds."""

# The last bucket takes everything slower; one bisect over the edges costs a third of a log().
EDGES = tuple(
    sorted(
        {float(_LOWEST_MS * _RATIO**index) for index in range(_LOGEDGES)}
        | {float(bound) for bound in PROMETHEUS_BOUNDS_MS}
    )
)
BUCKETS = len(EDGES) + 1
# For each conventional bound, how many leading buckets lie at or below it.
_PROMETHEUS_CUTS = tuple(EDGES.index(float(bound)) + 1 for bound in PROMETHEUS_BOUNDS_MS)


def upper_edge(index: int) -> float:
    """Return the upper edge, in ms, of bucket ``index`` (infinity for the last)."""
    return EDGES[index] if index < len(EDGES) else math.inf


class HistogramState(msgspec.Struct, array_like=True):
    """A histogram as plain data (bucket counts, count, sum, min, max), for merging workers."""

    counts: list[int]
    count: int
    sum: float
    min: float
    max: float


class LatencyHistogram:
    """Counts of observations (in ms) in fixed buckets, with their count, sum, min and max."""

    __slots__ = ("count", "counts", "max", "min", "sum")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = 0.0

    def observe(self, ms: float) -> None:
        """Add one observation in milliseconds."""
        self.counts[bisect_left(EDGES, ms)] += 1
        self.count += 1
        self.sum += ms
        if ms < self.min:
            self.min = ms
        if ms > self.max:
            self.max = ms

    def percentile(self, q: float) -> float:
        """Return the ``q``-th percentile (0-100) in ms: the upper edge of its bucket, clamped
        to the smallest and largest observation."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(self.count * q / 100.0))
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return min(self.max, max(self.min, upper_edge(index)))
        return self.max

    def summary(self) -> dict[str, float]:
        """Return count, sum, min, max, average and p50/p95/p99, in ms, rounded to 3 places."""
        count = self.count
        return {
            "count": count,
            "sum_ms": round(self.sum, 3),
            "min_ms": round(self.min, 3) if count else 0.0,
            "max_ms": round(self.max, 3),
            "avg_ms": round(self.sum / count, 3) if count else 0.0,
            "p50_ms": round(self.percentile(50), 3),
            "p95_ms": round(self.percentile(95), 3),
            "p99_ms": round(self.percentile(99), 3),
        }

    def prometheus_buckets(self) -> list[tuple[float, int]]:
        """Return ``(bound in seconds, observations at or below it)`` for each conventional
        bound, then ``(inf, count)``: exact, since every bound is a bucket edge."""
        running = list(accumulate(self.counts))
        out = [
            (bound / 1000.0, running[cut - 1])
            for bound, cut in zip(PROMETHEUS_BOUNDS_MS, _PROMETHEUS_CUTS, strict=True)
        ]
        out.append((math.inf, self.count))
        return out

    def state(self) -> HistogramState:
        """Return the histogram as plain data."""
        return HistogramState(list(self.counts), self.count, self.sum, self.min, self.max)

    def absorb(self, state: HistogramState) -> None:
        """Add another histogram's observations to this one."""
        if len(state.counts) != len(self.counts):
            raise ValueError("histograms with different buckets cannot be merged")
        self.counts = [a + b for a, b in zip(self.counts, state.counts, strict=True)]
        self.count += state.count
        self.sum += state.sum
        self.min = min(self.min, state.min)
        self.max = max(self.max, state.max)
