"""Event-loop health: lag is measured, a blocking ``async execute`` is named in one warning (with
its stack when asked), a sync tool doing the same in the thread pool is not flagged."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ai_spine_tools import Tool, create_tool, string_field
from ai_spine_tools.observability._loopwatch import LoopWatch, execute_codes
from ai_spine_tools.testing import ToolTestClient


async def sleepy_async(input: dict[str, Any]) -> dict[str, Any]:
    time.sleep(0.3)  # noqa: ASYNC251 - the mistake under test: blocking in async execute
    return {"slept": input["name"]}


def sleepy_sync(input: dict[str, Any]) -> dict[str, Any]:
    time.sleep(0.3)  # the same call, where it belongs: a sync execute runs in the thread pool
    return {"slept": input["name"]}


def make(execute: Any, name: str) -> Tool:
    return create_tool(
        metadata={"name": name, "version": "1.0.0", "description": "Sleeps"},
        schema={"input": {"name": string_field(required=True)}},
        execute=execute,
    )


def wait_for(condition: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_time_sleep_in_async_execute_is_detected(caplog: pytest.LogCaptureFixture) -> None:
    tool = make(sleepy_async, "sleepy-async")
    caplog.set_level(logging.WARNING, logger="ai_spine_tools.diagnostics")
    with ToolTestClient(tool) as client:
        for _ in range(2):
            assert client.execute({"name": "a"}).ok
        wait_for(lambda: tool.get_metrics().resources["event_loop_blocked"]["total"] >= 2)
        resources = tool.get_metrics().resources
        text = client.get("/metrics?format=prometheus").text
    assert resources["event_loop_lag_ms"]["max"] >= 250
    assert resources["event_loop_blocked"]["by_tool"] == {"sleepy-async": 2}
    warnings = [r.getMessage() for r in caplog.records if "blocked the event loop" in r.message]
    assert len(warnings) == 1  # one warning per tool, however often it blocks
    assert "'sleepy-async'" in warnings[0]
    assert "thread pool" in warnings[0]
    assert "async" in warnings[0]
    assert "blocking stack" not in warnings[0]  # production: no stack unless asked
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["ai_spine_event_loop_lag_max_seconds"].samples[0].value >= 0.25
    assert families["ai_spine_event_loop_blocked"].samples[0].value == 2


def test_the_same_tool_declared_sync_is_not_flagged(caplog: pytest.LogCaptureFixture) -> None:
    tool = make(sleepy_sync, "sleepy-sync")
    caplog.set_level(logging.WARNING, logger="ai_spine_tools.diagnostics")
    with ToolTestClient(tool) as client:
        for _ in range(2):
            assert client.execute({"name": "a"}).ok
        time.sleep(0.1)
        resources = tool.get_metrics().resources
    assert resources["event_loop_blocked"]["total"] == 0
    assert resources["event_loop_lag_ms"]["max"] < 100
    assert not [r for r in caplog.records if "blocked the event loop" in r.message]


def test_the_warning_carries_the_stack_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    tool = make(sleepy_async, "sleepy-stack")
    caplog.set_level(logging.WARNING, logger="ai_spine_tools.diagnostics")
    with ToolTestClient(tool, blocking_stacks=True, blocking_threshold_ms=50) as client:
        assert client.execute({"name": "a"}).ok
        wait_for(lambda: tool.get_metrics().resources["event_loop_blocked"]["total"] >= 1)
    (warning,) = [r.getMessage() for r in caplog.records if "blocked the event loop" in r.message]
    assert "blocking stack" in warning
    assert "in sleepy_async" in warning
    assert "time.sleep(0.3)" in warning


def test_diagnostics_can_be_turned_off() -> None:
    tool = make(sleepy_sync, "quiet")
    with ToolTestClient(tool, diagnostics=False) as client:
        assert "memory" not in client.get("/health").json["checks"]
    assert "event_loop_lag_ms" not in tool.get_metrics().resources


class _Callable:
    async def __call__(self, input: dict[str, Any]) -> dict[str, Any]:
        return input


@pytest.mark.parametrize(
    ("function", "name"),
    [
        (sleepy_async, "sleepy_async"),
        (_Callable(), "__call__"),
        (_Callable().__call__, "__call__"),
    ],
)
def test_execute_codes_unwraps_callables(function: Any, name: str) -> None:
    (code,) = execute_codes(function)
    assert code.co_name == name


def test_an_idle_loop_has_no_lag() -> None:
    import asyncio

    async def main() -> dict[str, Any]:
        watch = LoopWatch(interval=0.02)
        watch.start()
        await asyncio.sleep(0.2)
        watch.stop()
        return watch.figures()

    figures = asyncio.run(main())
    assert figures["event_loop_lag_ms"]["max"] < 50
    assert figures["event_loop_blocked"]["total"] == 0
