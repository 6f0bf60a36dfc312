"""The latency histogram: O(1) buckets, percentiles within 10%, exact Prometheus buckets."""

from __future__ import annotations

import math
import random

import pytest

from ai_spine_tools.observability._histogram import (
    EDGES,
    PROMETHEUS_BOUNDS_MS,
    LatencyHistogram,
    upper_edge,
)


def test_every_prometheus_bound_is_a_bucket_edge() -> None:
    for bound in PROMETHEUS_BOUNDS_MS:
        assert float(bound) in EDGES
    assert list(EDGES) == sorted(EDGES)
    assert upper_edge(len(EDGES)) == math.inf


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], [0] * 14 + [0]),
        ([5.0], [1] * 14 + [1]),  # le="0.005" includes 5 ms exactly
        ([5.0001], [0] + [1] * 13 + [1]),
        ([0.2, 7.0, 60.0, 20_000.0], [1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4]),
        ([10_000.0, 10_000.5], [0] * 13 + [1, 2]),
    ],
)
def test_prometheus_buckets_are_cumulative_and_exact(
    values: list[float], expected: list[int]
) -> None:
    histogram = LatencyHistogram()
    for value in values:
        histogram.observe(value)
    buckets = histogram.prometheus_buckets()
    assert [count for _, count in buckets] == expected
    assert [bound for bound, _ in buckets] == [b / 1000 for b in PROMETHEUS_BOUNDS_MS] + [math.inf]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_are_within_one_bucket_of_the_exact_value(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(0.0, 1.5) for _ in range(5000)]
    histogram = LatencyHistogram()
    for value in values:
        histogram.observe(value)
    ordered = sorted(values)
    for q in (50, 95, 99):
        exact = ordered[math.ceil(len(values) * q / 100) - 1]
        assert exact <= histogram.percentile(q) <= exact * 1.1


def test_summary_of_a_known_sequence() -> None:
    histogram = LatencyHistogram()
    for ms in range(1, 101):
        histogram.observe(float(ms))
    summary = histogram.summary()
    assert summary["count"] == 100
    assert summary["sum_ms"] == 5050.0
    assert (summary["min_ms"], summary["max_ms"], summary["avg_ms"]) == (1.0, 100.0, 50.5)
    assert 50 <= summary["p50_ms"] <= 55
    assert 95 <= summary["p95_ms"] <= 100
    assert 99 <= summary["p99_ms"] <= 100


def test_an_empty_histogram_reports_zeros() -> None:
    summary = LatencyHistogram().summary()
    assert summary == {
        "count": 0,
        "sum_ms": 0.0,
        "min_ms": 0.0,
        "max_ms": 0.0,
        "avg_ms": 0.0,
        "p50_ms": 0.0,
        "p95_ms": 0.0,
        "p99_ms": 0.0,
    }


def test_absorbing_a_state_adds_observations() -> None:
    one, two = LatencyHistogram(), LatencyHistogram()
    for ms in (1.0, 2.0):
        one.observe(ms)
    for ms in (0.5, 300.0):
        two.observe(ms)
    one.absorb(two.state())
    assert (one.count, one.sum, one.min, one.max) == (4, 303.5, 0.5, 300.0)
    assert sum(one.counts) == 4


def test_histograms_with_other_buckets_do_not_merge() -> None:
    state = LatencyHistogram().state()
    state.counts = state.counts[:-1]
    with pytest.raises(ValueError, match="different buckets"):
        LatencyHistogram().absorb(state)
