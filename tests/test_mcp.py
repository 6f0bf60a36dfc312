"""The tool over MCP, driven by the official ``mcp`` client: over Streamable HTTP against a running
``ai-spine serve --mcp`` (with the 2026 stateless protocol and with the initialize handshake), and
over stdio against ``ai-spine mcp``. Every call goes down the ``/api/execute`` corridor."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from agent.weather_agent import tool as agents
from ai_spine_tools import ServerConfigurationError
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.server._app import ToolApp, create_app
from ai_spine_tools.server._inprocess import InProcessApp
from ai_spine_tools.server._mcp import execute_call, tool_result
from serverproc import TOOLS, ServerProcess, running_server

AGENTS = Path(__file__).resolve().parent / "agent" / "weather_agent.py"
TIMEOUT = {"AI_SPINE_REQUEST_TIMEOUT": "500"}
TRANSPORTS = ["http", "http-handshake", "stdio"]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server(AGENTS, "--mcp", env=TIMEOUT) as running:
        yield running


@pytest.fixture(scope="module")
def guarded_server() -> Iterator[ServerProcess]:
    env = {"AI_SPINE_MCP": "true", "AI_SPINE_API_KEYS": "key-one", "AI_SPINE_CORS_ORIGINS": ""}
    with running_server(AGENTS, env=env) as running:
        yield running


@contextlib.asynccontextmanager
async def connect(
    transport: str, server: ServerProcess, headers: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    """An MCP client session with the tool over ``transport``."""
    if transport == "stdio":
        command = [sys.executable, "-m", "ai_spine_tools", "mcp", str(AGENTS)]
        target = StdioServerParameters(command=command[0], args=command[1:], env=TIMEOUT)
        async with Client(target) as client:
            yield client
        return
    mode = "legacy" if transport == "http-handshake" else "auto"
    async with (
        httpx2.AsyncClient(headers=headers or {}) as http,
        Client(streamable_http_client(f"{server.url}/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


def execute(server: ServerProcess, arguments: dict[str, Any]) -> dict[str, Any]:
    """What ``POST /api/execute`` answers for ``arguments``."""
    body: dict[str, Any] = httpx.post(
        f"{server.url}/api/execute", json={"input_data": arguments}, timeout=10
    ).json()
    return body


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    return httpx.get(url, headers=headers, timeout=10).json()


def post_mcp(url: str, headers: dict[str, str]) -> httpx.Response:
    """A raw ``tools/list`` request to ``/mcp``."""
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    return httpx.post(f"{url}/mcp", json=message, headers=headers, timeout=10)


def text_of(result: Any) -> str:
    text: str = result.content[0].text
    return text


# -- over every transport ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_lists_the_tool_with_our_schema(server: ServerProcess, transport: str) -> None:
    async with connect(transport, server) as client:
        listed = (await client.list_tools()).tools
    assert [tool.name for tool in listed] == ["agent-weather"]
    assert listed[0].description == agents.metadata.description
    assert listed[0].input_schema == agents.json_schema()
    assert "$ref" not in json.dumps(listed[0].input_schema)


VALID = [
    {"city": "Madrid"},
    {"city": "Oslo", "units": "fahrenheit", "tags": ["cold", "dark"], "sleep_ms": None},
]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("arguments", VALID)
async def test_a_valid_call_answers_the_output_data_of_api_execute(
    server: ServerProcess, transport: str, arguments: dict[str, Any]
) -> None:
    expected = execute(server, arguments)["output_data"]
    async with connect(transport, server) as client:
        result = await client.call_tool("agent-weather", arguments)
    assert result.is_error is False
    assert result.structured_content == expected
    assert json.loads(text_of(result)) == expected


INVALID: list[tuple[dict[str, Any], str, str]] = [
    ({"city": "x" * 101}, "city", "too_long"),
    ({}, "city", "required"),
    ({"city": "Oslo", "units": "kelvin"}, "units", "enum"),
    ({"city": "Oslo", "tags": ["a" * 11]}, "tags[0]", "too_long"),
    ({"city": "Oslo", "country": "NO"}, "country", "unknown_field"),
]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_invalid_call_is_an_error_result_naming_the_field(
    server: ServerProcess, transport: str
) -> None:
    async with connect(transport, server) as client:
        for arguments, path, code in INVALID:
            result = await client.call_tool("agent-weather", arguments)
            assert result.is_error is True
            assert text_of(result).startswith("VALIDATION_ERROR: Invalid input:")
            assert f"'{path}'" in text_of(result)
            issues = result.structured_content["error_details"]["errors"]
            assert {"path": path, "code": code} in [
                {"path": issue["path"], "code": issue["code"]} for issue in issues
            ]
            assert text_of(result) == (
                "VALIDATION_ERROR: " + execute(server, arguments)["error_message"]
            )


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_call_past_its_deadline_is_an_error_and_the_server_stays_healthy(
    server: ServerProcess, transport: str
) -> None:
    async with connect(transport, server) as client:
        result = await client.call_tool("agent-weather", {"city": "Oslo", "sleep_ms": 5000})
        assert result.is_error is True
        assert text_of(result) == "TIMEOUT_ERROR: Execution exceeded its timeout of 500 ms"
        assert result.structured_content["retryable"] is True
        after = await client.call_tool("agent-weather", {"city": "Oslo"})
        assert after.is_error is False
        assert len((await client.list_tools()).tools) == 1
    health = get_json(f"{server.url}/health")
    assert health["status"] == "healthy"
    assert health["requests"]["in_flight"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_failing_tool_is_an_error_result_without_internals(
    server: ServerProcess, transport: str
) -> None:
    async with connect(transport, server) as client:
        result = await client.call_tool("agent-weather", {"city": "Oslo", "fail": True})
    assert result.is_error is True
    assert text_of(result) == "EXECUTION_ERROR: Tool execution failed"
    dumped = result.model_dump_json()
    assert "hunter2" not in dumped
    assert "Traceback" not in dumped


@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_an_unknown_tool_is_a_protocol_error(server: ServerProcess, transport: str) -> None:
    async with connect(transport, server) as client:
        with pytest.raises(MCPError, match="Unknown tool 'nope'"):
            await client.call_tool("nope", {})


# -- HTTP only: the same door as /api/execute ---------------------------------------------------


async def test_mcp_needs_the_api_key_that_execute_needs(guarded_server: ServerProcess) -> None:
    refused = post_mcp(guarded_server.url, {"accept": "application/json, text/event-stream"})
    assert refused.status_code == 401
    assert refused.json()["error_code"] == "AUTHENTICATION_REQUIRED"
    with pytest.raises(Exception):  # noqa: B017 - the client surfaces the 401 its own way
        async with connect("http", guarded_server) as client:
            await client.list_tools()
    before = get_json(f"{guarded_server.url}/health")["requests"]["total"]
    async with connect("http", guarded_server, {"X-API-Key": "key-one"}) as client:
        assert not (await client.call_tool("agent-weather", {"city": "Lima"})).is_error
        assert (await client.call_tool("agent-weather", {})).is_error
    health = get_json(f"{guarded_server.url}/health")
    assert health["requests"]["total"] == before + 2  # counted as executions, like /api/execute
    metrics = get_json(f"{guarded_server.url}/metrics", {"X-API-Key": "key-one"})
    assert sum(metrics["auth"]["requests_by_key"].values()) >= 2


def test_a_browser_origin_not_allowed_by_cors_is_refused(guarded_server: ServerProcess) -> None:
    response = post_mcp(
        guarded_server.url, {"origin": "https://evil.example", "x-api-key": "key-one"}
    )
    assert response.status_code == 403
    assert response.json()["error_code"] == "FORBIDDEN_ORIGIN"


def test_mcp_responses_carry_the_server_headers(server: ServerProcess) -> None:
    response = post_mcp(server.url, {"accept": "application/json, text/event-stream"})
    assert response.headers["x-tool-version"] == "1.2.0"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "POST /mcp" in get_json(f"{server.url}/")["endpoints"]


# -- in-process ----------------------------------------------------------------------------------


async def test_mcp_is_off_unless_asked_for() -> None:
    host = InProcessApp(create_app(agents, ServerSettings()))
    await host.start()
    try:
        response = await host.request("POST", "/mcp", body=b"{}")
    finally:
        await host.stop()
    assert response.status == 404
    body = json.loads(response.body)
    assert "set AI_SPINE_MCP=true (or run ai-spine serve --mcp)" in body["error_message"]
    assert body["error_details"]["enable_with"] == "AI_SPINE_MCP=true"


def test_mcp_without_the_sdk_fails_at_start_up_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "mcp.server.lowlevel", None)
    with pytest.raises(ServerConfigurationError, match=r"ai-spine-tools\[mcp\]"):
        ToolApp(agents, ServerSettings(mcp=True))


async def test_a_streaming_tool_answers_its_items_as_tool_run_collects_them() -> None:
    from tools.streamer import tool as streamer

    app = ToolApp(streamer, ServerSettings())
    host = InProcessApp(app)
    await host.start()
    try:
        status, body = await execute_call(app.pipeline, {"count": 3})
        expected = await streamer.run({"count": 3})
    finally:
        await host.stop()
    result = tool_result(body, streamed=status == 200)
    assert result.is_error is False
    assert result.structured_content == expected.data == {"items": [{"i": 0}, {"i": 1}, {"i": 2}]}


async def called(app: ToolApp, arguments: dict[str, Any]) -> Any:
    """One ``tools/call`` of ``app``'s tool, in-process, as the MCP server makes it."""
    status, body = await execute_call(app.pipeline, arguments, scope={"client": ("10.0.0.7", 1)})
    return tool_result(body, streamed=app.tool.streams and status == 200)


async def test_calls_use_the_result_cache_of_execute() -> None:
    from tools.cached import tool as cached

    app = ToolApp(cached, ServerSettings())
    host = InProcessApp(app)
    await host.start()
    try:
        first = await called(app, {"q": "mcp-cache"})
        second = await called(app, {"q": "mcp-cache"})
    finally:
        await host.stop()
    assert first.structured_content == second.structured_content
    assert first.meta["ai_spine"]["cache"]["hit"] is False
    assert second.meta["ai_spine"]["cache"]["hit"] is True


async def test_calls_count_against_the_rate_limit_of_execute() -> None:
    app = ToolApp(agents, ServerSettings(rate_limit="2/minute", rate_limit_by="ip"))
    host = InProcessApp(app)
    await host.start()
    try:
        results = [await called(app, {"city": "Oslo"}) for _ in range(3)]
    finally:
        await host.stop()
    assert [result.is_error for result in results] == [False, False, True]
    assert text_of(results[2]).startswith("RATE_LIMIT_EXCEEDED: Rate limit of 2/minute exceeded")
    assert results[2].structured_content["retryable"] is True


@pytest.mark.parametrize(
    ("envelope", "text", "is_error"),
    [
        ({"status": "success", "output_data": {"a": 1}}, '{"a": 1}', False),
        (
            {"status": "error", "error_code": "RATE_LIMIT_EXCEEDED", "error_message": "Slow down"},
            "RATE_LIMIT_EXCEEDED: Slow down",
            True,
        ),
    ],
)
def test_tool_result_maps_the_envelope(envelope: dict[str, Any], text: str, is_error: bool) -> None:
    result = tool_result(json.dumps(envelope).encode())
    assert (text_of(result), result.is_error) == (text, is_error)


@pytest.mark.slow
def test_stdio_runs_cleanup_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    marker = tmp_path / "cleanup-ran"
    process = subprocess.Popen(
        [sys.executable, "-m", "ai_spine_tools", "mcp", str(TOOLS / "slow.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "AI_SPINE_TEST_MARKER": str(marker)},
    )
    assert process.stdin is not None
    assert process.stdout is not None
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    process.stdin.write(json.dumps(hello).encode() + b"\n")
    process.stdin.flush()
    assert json.loads(process.stdout.readline())["id"] == 1  # serving, stdin still open
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(10) == 0
    finally:
        process.kill()
        process.communicate()
    assert marker.read_text() == "cleanup ran\n"


PIPED = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "pipe", "version": "1"},
        },
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "slow-tool", "arguments": {"seconds": 0.2}},
    },
]


@pytest.mark.slow
@pytest.mark.parametrize("run", range(3))
def test_stdio_answers_every_request_read_before_the_end_of_input(run: int) -> None:
    piped = "".join(json.dumps(message) + "\n" for message in PIPED)
    result = subprocess.run(
        [sys.executable, "-m", "ai_spine_tools", "mcp", str(TOOLS / "slow.py")],
        input=piped,  # written whole, then stdin closes: the call is still running at EOF
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0, result.stderr
    assert sorted(answer["id"] for answer in answers) == [1, 2, 3]
    called = next(answer for answer in answers if answer["id"] == 3)
    assert called["result"]["structuredContent"]["slept"] == 0.2
