"""``context.metrics``: counters, gauges and timers (context manager, decorator, start/stop)."""

from __future__ import annotations

import asyncio
import time

import pytest

from ai_spine_tools.observability._custom_metrics import MAX_NAMES, CustomMetrics


def test_counters_gauges_and_observations_by_name() -> None:
    metrics = CustomMetrics()
    metrics.increment("rows_read")
    metrics.increment("rows_read", 41)
    metrics.gauge("database_connections", 7)
    metrics.gauge("database_connections", 5)
    for ms in (10.0, 20.0, 30.0):
        metrics.observe("database_query", ms)
    snapshot = metrics.snapshot()
    assert snapshot["rows_read"] == 42
    assert snapshot["database_connections"] == 5
    timer = snapshot["database_query"]
    assert (timer["count"], timer["sum_ms"], timer["min_ms"], timer["max_ms"]) == (
        3,
        60.0,
        10.0,
        30.0,
    )
    assert timer["avg_ms"] == 20.0
    assert 20.0 <= timer["p50_ms"] <= 22.0
    assert timer["p99_ms"] == 30.0
    assert list(snapshot) == sorted(snapshot)


def test_a_timer_times_a_block_even_when_it_raises() -> None:
    metrics = CustomMetrics()
    with metrics.timer("block") as timer:
        time.sleep(0.01)
    assert timer.elapsed_ms >= 10.0
    with pytest.raises(RuntimeError), metrics.timer("block"):
        raise RuntimeError("boom")
    assert metrics.snapshot()["block"]["count"] == 2


async def test_a_timer_works_with_async_with() -> None:
    metrics = CustomMetrics()
    async with metrics.timer("awaited"):
        await asyncio.sleep(0.01)
    assert metrics.snapshot()["awaited"]["min_ms"] >= 10.0


async def test_a_timer_decorates_sync_and_async_functions() -> None:
    metrics = CustomMetrics()

    @metrics.timer("parse")
    def parse(text: str) -> int:
        return len(text)

    @metrics.timer("fetch")
    async def fetch(delay: float) -> str:
        await asyncio.sleep(delay)
        return "done"

    assert parse("abc") == 3
    assert parse("de") == 2
    assert list(await asyncio.gather(fetch(0.01), fetch(0.02))) == ["done", "done"]
    assert parse.__name__ == "parse"
    snapshot = metrics.snapshot()
    assert snapshot["parse"]["count"] == 2
    assert snapshot["fetch"]["count"] == 2
    assert snapshot["fetch"]["max_ms"] >= 20.0


def test_a_decorated_function_still_records_after_the_registry_is_cleared() -> None:
    metrics = CustomMetrics()

    @metrics.timer("parse")
    def parse(text: str) -> str:
        return text

    metrics.clear()  # as tool.reset() does, and entering a test client
    parse("x")
    assert metrics.snapshot()["parse"]["count"] == 1


def test_start_timer_returns_a_stop_function_like_the_seed() -> None:
    metrics = CustomMetrics()
    stop = metrics.start_timer("total_execution")
    time.sleep(0.005)
    elapsed = stop()
    assert elapsed >= 5.0
    assert metrics.snapshot()["total_execution"]["sum_ms"] == round(elapsed, 3)


@pytest.mark.parametrize(
    ("first", "second"),
    [("increment", "gauge"), ("gauge", "observe"), ("observe", "increment")],
)
def test_a_name_keeps_its_kind(first: str, second: str) -> None:
    metrics = CustomMetrics()
    getattr(metrics, first)("shared", 1)
    with pytest.raises(ValueError, match="'shared' is a"):
        getattr(metrics, second)("shared", 1)


@pytest.mark.parametrize("name", ["", "1st", "has space", "x" * 101, "semi;colon", "ünïcode"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="must start with a letter"):
        CustomMetrics().increment(name)


@pytest.mark.parametrize("name", ["db", "db_query", "db.query", "cache:l1", "api-calls", "_x"])
def test_good_names_are_taken(name: str) -> None:
    metrics = CustomMetrics()
    metrics.increment(name)
    assert metrics.snapshot() == {name: 1}


def test_names_past_the_limit_are_dropped_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = CustomMetrics()
    for index in range(MAX_NAMES):
        metrics.increment(f"n{index}")
    with caplog.at_level("WARNING", logger="ai_spine_tools.metrics"):
        metrics.increment("one_too_many")
        metrics.gauge("two_too_many", 1)
        metrics.observe("three_too_many", 1.0)
        with metrics.timer("four_too_many"):
            pass
    assert len(metrics.snapshot()) == MAX_NAMES
    assert len(caplog.records) == 1
    metrics.increment("n0")  # known names still count
    assert metrics.snapshot()["n0"] == 2


def test_state_and_absorb_add_up_two_registries() -> None:
    one, two = CustomMetrics(), CustomMetrics()
    one.increment("calls", 2)
    two.increment("calls", 3)
    one.gauge("connections", 4)
    two.gauge("connections", 6)
    two.observe("query", 5.0)
    merged = CustomMetrics()
    merged.absorb(one.state())
    merged.absorb(two.state(), gauges=False)  # a worker that is gone: its gauges no longer hold
    snapshot = merged.snapshot()
    assert snapshot["calls"] == 5
    assert snapshot["connections"] == 4
    assert snapshot["query"]["count"] == 1
