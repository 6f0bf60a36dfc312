"""The process pool of ``context.to_process``: results, errors and unpicklable calls, deadlines
that stop a worker, crashed workers, lazy start and shutdown, figures, and a real server that
keeps answering while CPU-bound executions run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from ai_spine_tools import (
    ToolContext,
    UnpicklableError,
    WorkerCrashedError,
    create_tool,
    number_field,
    string_field,
)
from ai_spine_tools.core._processes import ProcessPool, shared_pool
from ai_spine_tools.testing import AsyncToolTestClient
from serverproc import TOOLS, running_server

CPU = TOOLS / "cpu.py"


# -- functions the workers run: module level, so they pickle by reference ---------------------


def power(base: int, exponent: int = 2, *, modulo: int | None = None) -> dict[str, int]:
    return {"value": pow(base, exponent, modulo), "pid": os.getpid()}


def fail(message: str) -> None:
    raise KeyError(message)


def exit_now(code: int) -> None:
    os._exit(code)


def note_pid_and_sleep(path: str, seconds: float) -> int:
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def pid() -> int:
    return os.getpid()


async def run_in_process(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> Any:
    call = input["call"]
    if call == "power":
        return await context.to_process(power, 3, 4, modulo=5)
    if call == "fail":
        return await context.to_process(fail, "no such key")
    if call == "exit":
        return await context.to_process(exit_now, 1)
    if call == "lambda":
        return await context.to_process(lambda: 1)
    if call == "lock":
        lock = threading.Lock()  # the mistake under test: mypy flags it too
        return await context.to_process(power, lock)  # type: ignore[arg-type]
    if call == "stuck":
        return await context.to_process(note_pid_and_sleep, input["path"], 60.0)
    return {"pid": await context.to_process(pid)}


def make_tool(*, timeout_ms: int | None = None) -> Any:
    return create_tool(
        metadata={"name": "in-process", "version": "1.0.0", "description": "Uses the pool"},
        schema={
            "input": {
                "call": string_field(required=True),
                "path": string_field(required=False),
                "seconds": number_field(required=False),
            }
        },
        execute=run_in_process,
        timeout_ms=timeout_ms,
    )


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def gone(pid: int) -> bool:
    try:
        status: str = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return True
    return bool(status == psutil.STATUS_ZOMBIE)


# -- in-process: the tool's app, a real pool --------------------------------------------------


async def test_to_process_returns_the_result_and_carries_arguments() -> None:
    async with AsyncToolTestClient(make_tool()) as client:
        response = await client.execute({"call": "power"})
    assert response.ok, response.text
    assert response.output_data is not None
    assert response.output_data["value"] == pow(3, 4, 5)
    assert response.output_data["pid"] != os.getpid()


async def test_an_exception_in_the_worker_comes_back_with_its_type_message_and_traceback() -> None:
    pool = ProcessPool(1)
    try:
        with pytest.raises(KeyError, match="no such key") as caught:
            await pool.run(fail, "no such key")
    finally:
        pool.shutdown()
    notes = "".join(getattr(caught.value, "__notes__", []))
    assert "raised in worker process" in notes
    assert "test_processes.fail" in notes
    assert "raise KeyError(message)" in notes  # the worker's own traceback


@pytest.mark.parametrize(
    ("call", "says"),
    [
        ("lambda", "define it with def at the top level of a module"),
        ("lock", "cannot send argument 1 of test_processes.power (lock)"),
    ],
)
async def test_an_unpicklable_call_answers_a_clear_message(call: str, says: str) -> None:
    async with AsyncToolTestClient(make_tool()) as client:
        response = await client.execute({"call": call})
    assert response.status_code == 500
    assert response.error_code == "EXECUTION_ERROR"
    assert says in (response.error_message or "")
    assert "picklable" in (response.error_message or "")


async def test_a_call_past_the_deadline_answers_408_and_its_worker_is_replaced(
    tmp_path: Path,
) -> None:
    noted = tmp_path / "pid"
    async with AsyncToolTestClient(make_tool(timeout_ms=2000)) as client:
        assert (await client.execute({"call": "pid"})).ok  # the worker is up: no start-up race
        response = await client.execute({"call": "stuck", "path": str(noted)})
        assert response.status_code == 408
        assert response.error_code == "TIMEOUT_ERROR"
        stuck = int(noted.read_text())
        assert await asyncio.to_thread(wait_until, lambda: gone(stuck))
        pool = shared_pool()
        assert await asyncio.to_thread(wait_until, lambda: pool.stats()["size"] == 1)
        assert pool.stats()["restarts"] == 1
        assert pool.stats()["crashes"] == 0
        after = await client.execute({"call": "pid"})
    assert after.ok, after.text
    assert after.output_data is not None
    assert after.output_data["pid"] != stuck


async def test_a_worker_that_exits_gives_a_clear_error_and_the_pool_recovers() -> None:
    async with AsyncToolTestClient(make_tool()) as client:
        response = await client.execute({"call": "exit"})
        assert response.status_code == 500
        message = response.error_message or ""
        assert "test_processes.exit_now died (exit code 1)" in message
        assert "a new worker replaces it" in message
        assert shared_pool().stats()["crashes"] == 1
        after = await client.execute({"call": "power"})
    assert after.ok, after.text


def segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)  # what a crash in native code looks like from outside


@pytest.mark.parametrize(
    ("crash", "says"),
    [
        (lambda pool: pool.run(exit_now, 3), "exit code 3"),
        (lambda pool: pool.run(segfault), "SIGSEGV"),
    ],
    ids=["exit", "segfault"],
)
async def test_a_crash_raises_worker_crashed_error_and_the_pool_goes_on(
    crash: Callable[[ProcessPool], Any], says: str
) -> None:
    pool = ProcessPool(1)
    try:
        with pytest.raises(WorkerCrashedError, match=says):
            await crash(pool)
        assert await pool.run(pid) > 0
        assert pool.stats()["crashes"] == 1
    finally:
        pool.shutdown()


async def test_a_call_cancelled_while_queued_restarts_no_worker(tmp_path: Path) -> None:
    pool = ProcessPool(1)
    try:
        running = asyncio.ensure_future(pool.run(note_pid_and_sleep, str(tmp_path / "a"), 0.5))
        await asyncio.to_thread(wait_until, lambda: (tmp_path / "a").exists())
        queued = asyncio.ensure_future(pool.run(pid))
        await asyncio.sleep(0.05)
        assert pool.stats()["queued"] == 1
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert await running == int((tmp_path / "a").read_text())
        assert pool.stats() | {"calls": 0} == pool.stats() | {
            "calls": 0,
            "queued": 0,
            "busy": 0,
            "restarts": 0,
        }
    finally:
        pool.shutdown()


async def test_an_unpicklable_function_raises_at_the_call() -> None:
    pool = ProcessPool(1)
    try:
        with pytest.raises(UnpicklableError, match="not as a lambda, a closure"):
            await pool.run(lambda: 1)
        assert pool.stats()["size"] == 0  # nothing was sent, nothing started
    finally:
        pool.shutdown()


async def test_the_pool_reports_its_figures_and_stops_with_the_tool() -> None:
    tool = make_tool()
    async with AsyncToolTestClient(tool) as client:
        first = await client.execute({"call": "pid"})
        assert first.output_data is not None
        figures = tool.get_metrics().pools["processes"]
        text = (await client.get("/metrics?format=prometheus")).text
    worker = first.output_data["pid"]
    assert figures["size"] == 1
    assert figures["busy"] == 0
    assert figures["queued"] == 0
    assert figures["calls"] == 1
    assert figures["restarts"] == 0
    assert figures["max_size"] >= 1
    assert 'ai_spine_pool_size{pool="processes",tool="in-process"} 1.0' in text
    assert 'ai_spine_pool_restarts_total{pool="processes",tool="in-process"} 0.0' in text
    assert await asyncio.to_thread(wait_until, lambda: gone(worker))  # the tool stopped
    assert "processes" not in tool.get_metrics().pools


async def test_the_pool_is_sized_by_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_SPINE_PROCESS_WORKERS", "3")
    async with AsyncToolTestClient(make_tool()) as client:
        assert (await client.execute({"call": "pid"})).ok
        assert shared_pool().stats()["max_size"] == 3


# -- a real server ----------------------------------------------------------------------------


def descendants(pid: int) -> list[psutil.Process]:
    found: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
    return found


def test_a_bad_pool_size_fails_start_up_naming_the_variable() -> None:
    environment = {**os.environ, "AI_SPINE_PROCESS_WORKERS": "zero"}
    command = [sys.executable, "-m", "ai_spine_tools", "serve", str(CPU), "--port", "1"]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "AI_SPINE_PROCESS_WORKERS is invalid: expected a whole number" in done.stderr


@pytest.mark.slow
def test_a_served_tool_file_starts_no_process_before_use_and_stops_them_on_sigterm() -> None:
    with running_server(CPU, env={"AI_SPINE_PROCESS_WORKERS": "2"}) as server:
        assert descendants(server.process.pid) == []  # lazy: no call yet, no process
        response = httpx.post(
            f"{server.url}/api/execute", json={"input_data": {"seconds": 0.05}}, timeout=30
        )
        assert response.status_code == 200, response.text
        worker = response.json()["output_data"]["pid"]  # chain_hashes, from the tool's file
        children = descendants(server.process.pid)
        assert worker in {child.pid for child in children}
        assert server.stop(signal.SIGTERM) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


@pytest.mark.slow
def test_each_server_worker_owns_a_pool_and_stops_it(tmp_path: Path) -> None:
    target = TOOLS / "cpu_decorated.py"
    env = {"AI_SPINE_PROCESS_WORKERS": "1"}
    with running_server(target, "--workers", "2", env=env) as server:
        pids = set()
        for _ in range(4):
            response = httpx.post(
                f"{server.url}/api/execute", json={"input_data": {"limit": 2000}}, timeout=30
            )
            assert response.status_code == 200, response.text
            output = response.json()["output_data"]
            assert output["primes"] == 303
            assert output["execution_id"] == response.json()["execution_id"]
            pids.add(output["pid"])
        children = descendants(server.process.pid)
        assert pids <= {child.pid for child in children}
        assert server.stop(signal.SIGTERM) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


@pytest.mark.slow
def test_a_stuck_call_on_a_server_answers_408_and_its_worker_is_gone(tmp_path: Path) -> None:
    noted = tmp_path / "pid"
    env = {"AI_SPINE_PROCESS_WORKERS": "1", "AI_SPINE_REQUEST_TIMEOUT": "2000"}
    with running_server(CPU, env=env) as server:
        warm = httpx.post(f"{server.url}/api/execute", json={"input_data": {}}, timeout=30)
        assert warm.status_code == 200, warm.text  # the worker is up: no start-up race
        stuck = httpx.post(
            f"{server.url}/api/execute",
            json={"input_data": {"mode": "stuck", "path": str(noted)}},
            timeout=30,
        )
        assert stuck.status_code == 408
        assert wait_until(lambda: gone(int(noted.read_text())))
        after = httpx.post(f"{server.url}/api/execute", json={"input_data": {}}, timeout=30)
        assert after.status_code == 200, after.text
        figures = httpx.get(f"{server.url}/metrics", timeout=10).json()["pools"]["processes"]
    assert figures["restarts"] == 1
    assert figures["calls"] == 3
    assert figures["max_size"] == 1


@pytest.mark.slow
async def test_health_answers_while_cpu_bound_executions_run() -> None:
    """Four executions of at least a second of hashing each, on two workers: /health, polled
    meanwhile, answers every time well within a second (bounded, not timed to the ms)."""
    with running_server(CPU, env={"AI_SPINE_PROCESS_WORKERS": "2"}) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            warm = await client.post("/api/execute", json={"input_data": {"seconds": 0.01}})
            assert warm.status_code == 200
            body = {"input_data": {"seconds": 1.0}}
            executions = [
                asyncio.ensure_future(client.post("/api/execute", json=body)) for _ in range(4)
            ]
            waits = []
            while not all(e.done() for e in executions):
                started = time.perf_counter()
                health = await client.get("/health")
                waits.append(time.perf_counter() - started)
                assert health.status_code == 200
                await asyncio.sleep(0.1)
            results = [(await e).json()["output_data"] for e in executions]
    assert all(result["seconds"] >= 1.0 for result in results)
    assert len({result["pid"] for result in results}) >= 2
    assert len(waits) >= 5  # polled throughout the two seconds or more of hashing
    assert max(waits) < 1.0
