"""``map_concurrent``: bounded concurrency (measured), per-item errors, progress, flat memory."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ai_spine_tools import ToolContext, create_tool, map_concurrent
from ai_spine_tools.resilience._batch import Progress


class Probe:
    """An async function that records how many of its calls run at once."""

    def __init__(self, delay: float = 0.001) -> None:
        self.running = 0
        self.peak = 0
        self.delay = delay

    async def __call__(self, item: int) -> int:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.delay)
            if item % 7 == 3:
                raise ValueError(f"bad item {item}")
            return item * 2
        finally:
            self.running -= 1


@pytest.mark.parametrize(
    ("concurrency", "batch_size", "items"),
    [(1, 10, 25), (3, 10, 40), (5, 10, 100), (8, 4, 30), (10, 100, 250)],
)
async def test_never_exceeds_its_concurrency(concurrency: int, batch_size: int, items: int) -> None:
    probe = Probe()
    result = await map_concurrent(
        range(items), probe, concurrency=concurrency, batch_size=batch_size
    )
    assert probe.peak <= concurrency
    assert probe.peak == min(concurrency, batch_size, items)  # and it does use what it may
    assert result.max_concurrency == probe.peak
    assert result.processed == items


async def test_item_errors_are_collected_without_failing_the_batch() -> None:
    result = await map_concurrent(range(20), Probe(0), concurrency=4, batch_size=5)
    failed = [r.index for r in result.errors]
    assert failed == [3, 10, 17]
    assert result.failed == 3
    assert result.succeeded == 17
    assert [r.index for r in result.results] == list(range(20))  # input order
    assert result.values[:3] == [0, 2, 4]
    summary = result.to_dict()
    assert summary["processed_count"] == 20
    assert summary["error_count"] == 3
    assert summary["results"][3] == {"index": 3, "item": 3, "error": "bad item 3"}


async def test_reports_progress_after_each_batch() -> None:
    seen: list[Progress] = []
    await map_concurrent(range(25), Probe(0), batch_size=10, on_progress=seen.append)
    assert [p.done for p in seen] == [10, 20, 25]
    assert seen[-1].total == 25
    assert seen[-1].fraction == 1.0
    assert seen[-1].failed == 4  # 3, 10, 17, 24


async def test_async_progress_callbacks_and_the_context() -> None:
    seen: list[int] = []

    async def record(progress: Progress) -> None:
        seen.append(progress.done)

    context = ToolContext(execution_id="e", tool_id="t", tool_version="1")
    await map_concurrent(
        iter(range(12)), Probe(0), batch_size=5, on_progress=record, context=context
    )
    assert seen == [5, 10, 12]
    assert context.progress == {"done": 12, "total": None, "failed": 2}


async def test_async_iterables_are_consumed_too() -> None:
    async def source() -> AsyncIterator[int]:
        for i in range(9):
            yield i

    result = await map_concurrent(source(), Probe(0), concurrency=3, batch_size=4)
    assert result.processed == 9


async def test_reads_the_source_at_most_one_batch_ahead() -> None:
    pulled = 0

    def source() -> Iterator[int]:
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield i

    async for outcome in map_concurrent(source(), Probe(0), batch_size=10):
        assert pulled <= outcome.index + 10
        if outcome.index == 25:
            break
    assert pulled == 30


async def test_memory_stays_flat_when_streaming_a_large_input() -> None:
    async def double(item: int) -> int:
        return item * 2

    def peak_for(count: int) -> int:
        async def run() -> int:
            total = 0
            async for outcome in map_concurrent(range(count), double, batch_size=50):
                total += outcome.value or 0
            return total

        tracemalloc.start()
        try:
            asyncio.run(run())
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = (
        await asyncio.to_thread(peak_for, 2_000),
        await asyncio.to_thread(peak_for, 100_000),
    )
    assert large < small * 2 + 256 * 1024  # 50 times the items, about the same peak


async def test_keep_results_false_keeps_only_counts_and_first_failures() -> None:
    result = await map_concurrent(range(1000), Probe(0), batch_size=100, keep_results=False)
    assert result.processed == 1000
    assert len(result.results) == 100  # the first 100 failures of the 143
    assert result.failed == 143


async def test_the_deadline_still_cancels_the_whole_run() -> None:
    cancelled = 0

    async def slow(item: int) -> int:
        nonlocal cancelled
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled += 1
            raise
        return item

    async def execute(input: dict[str, Any], config: dict[str, Any], context: ToolContext) -> Any:
        result = await map_concurrent(range(100), slow, concurrency=5, context=context)
        return result.to_dict()

    tool = create_tool(
        metadata={"name": "batcher", "version": "1.0.0", "description": "d", "capabilities": ["x"]},
        execute=execute,
        timeout_ms=50,
    )
    result = await tool.run({})
    assert result.error_code == "TIMEOUT_ERROR"
    assert cancelled == 5


@pytest.mark.parametrize(
    ("options", "message"),
    [({"concurrency": 0}, "concurrency"), ({"batch_size": 0}, "batch_size")],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    async def fn(item: int) -> int:
        return item

    with pytest.raises(ValueError, match=message):
        map_concurrent([1], fn, **options)
