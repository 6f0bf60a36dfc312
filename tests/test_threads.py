"""The thread pool of sync functions: what holds its threads shows in /health (checks.executor)
and /metrics, and each execution still running past its deadline is logged once, in-process and
over a real socket."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest

from ai_spine_tools import create_tool, number_field
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.core._threads import ThreadRunner
from ai_spine_tools.testing import AsyncToolTestClient
from serverproc import TOOLS, running_server


def _held_tool(release: threading.Event) -> Any:
    def execute(input: dict[str, Any]) -> dict[str, Any]:
        release.wait(input["seconds"])
        return {}

    return create_tool(
        metadata={"name": "held", "version": "1.0.0", "description": "Waits for a release"},
        schema={"input": {"seconds": number_field(min=0, max=30, default=0)}},
        execute=execute,
        timeout_ms=100,
        max_threads=2,
    )


async def test_a_runner_counts_busy_threads_and_frees_them() -> None:
    runner = ThreadRunner("counted", 2)
    release = threading.Event()
    calls = [asyncio.ensure_future(runner.run(release.wait, (5,))) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert runner.figures() == {"busy": 2, "max": 2, "queued": 1, "overdue": 0, "overdue_total": 0}
    assert runner.check() == {"status": "degraded", "busy": 2, "max": 2}
    release.set()
    assert await asyncio.gather(*calls) == [True, True, True]
    assert runner.check() == {"status": "ok", "busy": 0, "max": 2}
    runner.shutdown()


async def test_executions_past_their_deadline_hold_threads_and_show_in_health(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    held = _held_tool(release)
    async with AsyncToolTestClient(held, ServerSettings(diagnostics=False)) as client:
        idle = (await client.get("/health")).json
        first = await asyncio.gather(*(client.execute({"seconds": 10}) for _ in range(2)))
        late = await client.execute({"seconds": 0})  # waits for a thread, past its deadline
        health = (await client.get("/health")).json
        metrics = (await client.get("/metrics")).json
        release.set()
        for _ in range(100):
            if held.threads.busy == 0:
                break
            await asyncio.sleep(0.01)
        after = (await client.get("/health")).json
    assert idle["checks"]["executor"] == {"status": "ok", "busy": 0, "max": 2}
    assert [r.error_code for r in first] == ["TIMEOUT_ERROR", "TIMEOUT_ERROR"]
    assert late.error_code == "TIMEOUT_ERROR"
    assert health["status"] == "degraded"
    assert health["checks"]["executor"] == {"status": "degraded", "busy": 2, "max": 2, "overdue": 2}
    executor = metrics["concurrency"]["executor"]
    assert (executor["busy"], executor["overdue"], executor["overdue_total"]) == (2, 2, 2)
    assert metrics["concurrency"]["deadline_overruns"] == {"sync": 2, "async": 0}
    assert after["checks"]["executor"] == {"status": "ok", "busy": 0, "max": 2}
    warnings = [
        r.getMessage() for r in caplog.records if "passed its 100 ms deadline" in r.getMessage()
    ]
    assert len(warnings) == 2  # once per stuck execution, not once per check
    assert all(w.startswith("tool 'held': a sync execute") for w in warnings)


async def test_a_call_cancelled_before_it_starts_frees_its_place_at_once() -> None:
    runner = ThreadRunner("queued", 1)
    release = threading.Event()
    running = asyncio.ensure_future(runner.run(release.wait, (5,)))
    waiting = asyncio.ensure_future(runner.run(time.sleep, (0,)))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert runner.busy == 1
    release.set()
    await running
    assert runner.busy == 0
    runner.shutdown()


@pytest.mark.slow
def test_a_served_sync_tool_stuck_past_its_deadline_is_seen_in_health_and_the_log() -> None:
    with running_server(TOOLS / "stuck.py") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            stuck = [client.post("/api/execute", json={"input_data": {"seconds": 3}})]
            stuck.append(client.post("/api/execute", json={"input_data": {"seconds": 3}}))
            quick = client.post("/api/execute", json={"input_data": {"seconds": 0.01}})
            health = client.get("/health").json()
        server.stop()
        output = server.output()
    assert [r.status_code for r in stuck] == [408, 408]
    assert quick.status_code == 408  # both threads are held: it waited for one, in vain
    assert health["status"] == "degraded"
    assert health["checks"]["executor"]["status"] == "degraded"
    assert health["checks"]["executor"]["busy"] == 2
    assert output.count("tool 'stuck-tool': a sync execute passed its 300 ms deadline") >= 2
