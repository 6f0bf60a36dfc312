"""Streaming tools: NDJSON and SSE bodies, error records, deadlines, disconnects, flat memory."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ai_spine_tools import ToolContext, create_tool
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.server._app import ToolApp
from ai_spine_tools.testing import AsyncToolTestClient
from serverproc import running_server
from tools import streamer

TOOLS = Path(__file__).resolve().parent / "tools"


def records(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines()]


def events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in body.decode().split("\n\n"):
        if block:
            event, data = block.split("\n")
            out.append((event.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


async def test_items_stream_as_ndjson_with_a_final_result_record() -> None:
    async with AsyncToolTestClient(streamer.tool, ServerSettings()) as client:
        response = await client.execute({"count": 3}, execution_id="s-1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert "content-length" not in response.headers
    lines = records(response.content)
    assert lines[:3] == [{"type": "item", "data": {"i": i}} for i in range(3)]
    final = lines[3]
    assert final["type"] == "result"
    assert final["status"] == "success"
    assert final["execution_id"] == "s-1"
    assert final["output_data"] == {"items": 3}
    assert final["timestamp"].endswith("Z")


async def test_server_sent_events_when_the_client_asks() -> None:
    async with AsyncToolTestClient(streamer.tool, ServerSettings()) as client:
        response = await client.execute({"count": 2}, headers={"accept": "text/event-stream"})
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    got = events(response.content)
    assert got[:2] == [("item", {"i": 0}), ("item", {"i": 1})]
    assert got[2][0] == "result"
    assert got[2][1]["output_data"] == {"items": 2}


@pytest.mark.parametrize(
    ("fail_with", "code", "retryable"),
    [("crash", "EXECUTION_ERROR", False), ("unavailable", "SERVICE_UNAVAILABLE", True)],
)
async def test_an_error_mid_stream_becomes_the_final_error_record(
    fail_with: str, code: str, retryable: bool
) -> None:
    before = streamer.state["closed"]
    async with AsyncToolTestClient(streamer.tool, ServerSettings()) as client:
        response = await client.execute({"count": 5, "fail_at": 2, "fail_with": fail_with})
    assert response.status_code == 200  # the status line went out with the first item
    lines = records(response.content)
    assert [line["type"] for line in lines] == ["item", "item", "error"]
    error = lines[-1]
    assert error["status"] == "error"
    assert error["error_code"] == code
    assert error["retryable"] is retryable
    assert error["items_sent"] == 2
    assert "the source broke" not in error["error_message"]  # no internals without debug
    assert streamer.state["closed"] == before + 1


@pytest.mark.parametrize(
    ("fail_with", "status", "code"),
    [("crash", 500, "EXECUTION_ERROR"), ("unavailable", 503, "SERVICE_UNAVAILABLE")],
)
async def test_an_error_before_the_first_item_is_a_plain_error_response(
    fail_with: str, status: int, code: str
) -> None:
    async with AsyncToolTestClient(streamer.tool, ServerSettings()) as client:
        response = await client.execute({"count": 5, "fail_at": 0, "fail_with": fail_with})
    assert response.status_code == status
    assert response.error_code == code
    if status == 503:
        assert response.headers["retry-after"] == "2"


async def test_validation_errors_come_before_any_stream() -> None:
    async with AsyncToolTestClient(streamer.tool, ServerSettings()) as client:
        response = await client.execute({"count": -1})
    assert response.status_code == 400
    assert response.error_code == "VALIDATION_ERROR"


async def test_the_deadline_covers_the_stream_and_closes_the_generator() -> None:
    before = streamer.state["closed"]
    async with AsyncToolTestClient(streamer.tool, ServerSettings(request_timeout_ms=100)) as client:
        started = time.monotonic()
        response = await client.execute({"count": 1000, "delay_ms": 20})
        took = time.monotonic() - started
    lines = records(response.content)
    assert 2 <= len(lines) - 1 <= 6
    assert lines[-1]["error_code"] == "TIMEOUT_ERROR"
    assert lines[-1]["retryable"] is True
    assert took < 0.2
    assert streamer.state["closed"] == before + 1


async def test_in_process_runs_collect_the_items() -> None:
    result = await streamer.tool.run({"count": 3})
    assert result.data == {"items": [{"i": 0}, {"i": 1}, {"i": 2}]}


async def _drive(
    app: ToolApp, body: dict[str, Any], *, disconnect_after: int | None = None
) -> list[tuple[float, bytes]]:
    """Call ``app`` directly, noting when each body chunk arrives."""
    chunks: list[tuple[float, bytes]] = []
    gone = asyncio.Event()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": json.dumps(body).encode()}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            chunks.append((time.monotonic(), message["body"]))
            if disconnect_after is not None and len(chunks) >= disconnect_after:
                gone.set()

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/execute",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
    }
    await app(scope, receive, send)
    return chunks


async def test_a_slow_generator_has_each_item_sent_as_it_is_yielded() -> None:
    app = ToolApp(streamer.tool, ServerSettings())
    await streamer.tool.start()
    started = time.monotonic()
    chunks = await _drive(app, {"input_data": {"count": 3, "delay_ms": 100}})
    first_at = chunks[0][0] - started
    assert first_at < 0.05  # not held back until the generator finished (0.3 s)
    assert [json.loads(c)["type"] for _, c in chunks if c] == ["item", "item", "item", "result"]


async def test_a_client_that_disconnects_stops_the_generator() -> None:
    app = ToolApp(streamer.tool, ServerSettings())
    await streamer.tool.start()
    before = streamer.state["closed"]
    chunks = await asyncio.wait_for(
        _drive(app, {"input_data": {"count": 10_000, "delay_ms": 5}}, disconnect_after=2), 5
    )
    assert len(chunks) < 10
    assert streamer.state["closed"] == before + 1
    assert app.admission.in_flight == 0  # the stream gave its execution slot back
    assert streamer.tool.metrics.by_code["CLIENT_DISCONNECTED"] >= 1


async def test_a_stream_holds_its_execution_slot_until_it_ends() -> None:
    app = ToolApp(streamer.tool, ServerSettings(max_concurrent_executions=1, queue_size=0))
    await streamer.tool.start()
    first = asyncio.create_task(_drive(app, {"input_data": {"count": 3, "delay_ms": 50}}))
    await asyncio.sleep(0.03)
    second = await _drive(app, {"input_data": {"count": 1}})
    assert json.loads(second[-1][1])["error_code"] == "OVERLOADED"
    await first
    assert app.admission.in_flight == 0


async def test_async_generator_methods_and_fewer_arguments_stream_too() -> None:
    class Source:
        async def __call__(self, input: dict[str, Any]) -> AsyncIterator[int]:
            for i in range(2):
                yield i

    tool = create_tool(
        metadata={"name": "gen", "version": "1.0.0", "description": "d", "capabilities": ["x"]},
        execute=Source(),
    )
    assert tool.streams
    async with AsyncToolTestClient(tool, ServerSettings()) as client:
        response = await client.execute({})
    assert [r.get("data") for r in records(response.content)] == [0, 1, None]


async def test_context_is_available_to_a_streaming_tool() -> None:
    async def execute(
        input: dict[str, Any], config: dict[str, Any], context: ToolContext
    ) -> AsyncIterator[str]:
        yield context.execution_id

    tool = create_tool(
        metadata={"name": "ctx", "version": "1.0.0", "description": "d", "capabilities": ["x"]},
        execute=execute,
    )
    async with AsyncToolTestClient(tool, ServerSettings()) as client:
        response = await client.execute({}, execution_id="abc")
    assert records(response.content)[0]["data"] == "abc"


@pytest.mark.slow
def test_a_million_items_stream_with_flat_memory() -> None:
    count = 1_000_000
    with running_server(
        TOOLS / "streamer.py", env={"AI_SPINE_REQUEST_TIMEOUT": "120000"}
    ) as server:
        lines = 0
        tail = b""
        with httpx.stream(
            "POST",
            f"{server.url}/api/execute",
            json={"input_data": {"count": count}},
            timeout=120,
        ) as response:
            assert response.status_code == 200
            for chunk in response.iter_raw(1 << 20):
                lines += chunk.count(b"\n")
                tail = (tail + chunk)[-4096:]
        status = Path(f"/proc/{server.process.pid}/status").read_text()
    peak_kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    final = json.loads(tail.rstrip(b"\n").rsplit(b"\n", 1)[-1])
    assert lines == count + 1
    assert final["output_data"] == {"items": count}
    assert peak_kb < 100 * 1024, f"peak RSS {peak_kb / 1024:.1f} MB"


async def test_the_decorator_form_streams_an_async_generator() -> None:
    from ai_spine_tools import tool

    @tool(name="counter", capabilities=["x"])
    async def counter(count: int = 2) -> AsyncIterator[int]:
        """Counts."""
        for i in range(count):
            yield i

    assert counter.streams
    assert (await counter.run({"count": 3})).data == {"items": [0, 1, 2]}
