"""Several tools in one server (``SuiteApp``), over real sockets: each tool's contract under its
name (the fast execute path included), the root's probes and metrics, one MCP server, the
platform's call shape, a failed setup isolated (or fatal with --strict-startup), per-tool keys,
limits and caches, and the names refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from ai_spine_tools import create_tool, string_field, tools_asgi
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.core._loader import load_tools
from ai_spine_tools.exceptions import ToolDefinitionError, UnknownSettingError
from ai_spine_tools.server._protocol import GuardedHTTPProtocol
from ai_spine_tools.server._startup import check_tool_environment
from ai_spine_tools.server._suite import SuiteApp
from ai_spine_tools.server._wire import Receive, Scope, Send
from ai_spine_tools.testing import MockAISpineClient
from serverproc import TOOLS, free_port, running_server

SUITE = TOOLS / "suite"
WEATHER = SUITE / "weather.py"
CURRENCY = SUITE / "currency.py"


def post(url: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(url, json=body, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def suite() -> Iterator[Any]:
    env = {"AI_SPINE_MCP": "true", "AI_SPINE_RATE_LIMIT": "3/minute", "AI_SPINE_CORS_ORIGINS": ""}
    with running_server(SUITE, env=env) as server:
        yield server


# -- routing -----------------------------------------------------------------------------------


def test_each_tool_answers_its_whole_contract_under_its_name(suite: Any) -> None:
    answer = post(f"{suite.url}/weather/api/execute", {"input_data": {"city": "Oslo"}})
    assert answer.status_code == 200
    assert answer.json()["output_data"] == {"city": "Oslo", "temperature": 21.5}
    assert answer.headers["x-tool-version"] == "1.1.0"
    converted = post(f"{suite.url}/currency/api/execute", {"input_data": {"amount": 10}})
    assert converted.json()["output_data"] == {"eur": 9.0}
    assert converted.headers["x-tool-version"] == "2.0.0"
    health = httpx.get(f"{suite.url}/currency/health").json()
    assert (health["tool"], health["status"]) == ("currency", "healthy")
    ready = httpx.get(f"{suite.url}/weather/ready").json()
    assert (ready["ready"], ready["tool"]) == (True, "weather")
    schema = httpx.get(f"{suite.url}/weather/schema").json()
    assert schema["info"]["title"].startswith("weather")
    invalid = post(f"{suite.url}/currency/api/execute", {"input_data": {"amount": -1}})
    assert invalid.json()["error_code"] == "VALIDATION_ERROR"


def test_the_root_lists_the_tools_and_refuses_unprefixed_executions(suite: Any) -> None:
    listing = httpx.get(f"{suite.url}/").json()
    names = [tool["name"] for tool in listing["tools"]]
    assert names == ["currency", "weather"]  # a folder's tool files in name order
    weather = next(tool for tool in listing["tools"] if tool["name"] == "weather")
    assert "POST /weather/api/execute" in weather["endpoints"]
    assert "POST /mcp" in listing["endpoints"]
    refused = post(f"{suite.url}/api/execute", {"input_data": {"city": "Oslo"}})
    assert refused.status_code == 404
    assert "POST /<name>/api/execute" in refused.json()["error_message"]
    assert refused.json()["error_details"]["tools"] == ["currency", "weather"]
    assert httpx.get(f"{suite.url}/nowhere/health").status_code == 404
    encoded = post(f"{suite.url}/weather%2Fapi/execute", {"input_data": {"city": "Oslo"}})
    assert encoded.status_code == 404  # a path routes as sent


def test_the_roots_answers_carry_a_tools_headers_but_its_version(suite: Any) -> None:
    listing = httpx.get(f"{suite.url}/", headers={"x-request-id": "root-1"})
    refused = post(f"{suite.url}/api/execute", {}, **{"x-request-id": "root-2"})
    foreign = {"origin": "http://evil.example", "x-request-id": "root-3"}
    mcp = httpx.post(f"{suite.url}/mcp", json={}, headers=foreign, timeout=10)
    for answer, request_id in ((listing, "root-1"), (refused, "root-2"), (mcp, "root-3")):
        assert answer.headers["x-request-id"] == request_id
        assert answer.headers["x-response-time"].endswith("ms")
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "x-tool-version" not in answer.headers


def test_the_root_probes_and_metrics_cover_every_tool(suite: Any) -> None:
    post(f"{suite.url}/weather/api/execute", {"input_data": {"city": "Lima"}})
    health = httpx.get(f"{suite.url}/health")
    assert health.status_code == 200
    assert set(health.json()["tools"]) == {"currency", "weather"}
    assert health.json()["status"] in ("healthy", "degraded")
    ready = httpx.get(f"{suite.url}/ready")
    assert (ready.status_code, ready.json()["ready"]) == (200, True)
    metrics = httpx.get(f"{suite.url}/metrics").json()["tools"]
    assert metrics["weather"]["requests"]["total"] >= 1
    text = httpx.get(f"{suite.url}/metrics", headers={"accept": "text/plain"}).text
    assert text.count("# HELP ai_spine_requests_total") == 1  # one family, both tools in it
    assert 'ai_spine_requests_total{code="OK",status="success",tool="weather"}' in text
    assert 'tool="currency"' in text


def test_one_mcp_server_lists_and_calls_every_tool(suite: Any) -> None:
    headers = {"accept": "application/json, text/event-stream"}
    listed = httpx.post(
        f"{suite.url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers=headers,
        timeout=10,
    ).json()
    assert sorted(tool["name"] for tool in listed["result"]["tools"]) == ["currency", "weather"]
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "currency", "arguments": {"amount": 100}},
    }
    called = httpx.post(f"{suite.url}/mcp", json=call, headers=headers, timeout=10).json()
    assert called["result"]["structuredContent"] == {"eur": 90.0}
    foreign = {**headers, "origin": "http://evil.example"}
    refused = httpx.post(f"{suite.url}/mcp", json=call, headers=foreign, timeout=10)
    assert (refused.status_code, refused.json()["error_code"]) == (403, "FORBIDDEN_ORIGIN")
    call["params"] = {"name": "nothing", "arguments": {}}
    unknown = httpx.post(f"{suite.url}/mcp", json=call, headers=headers, timeout=10).json()
    assert "Unknown tool 'nothing'" in json.dumps(unknown)


async def test_the_platform_calls_a_prefixed_tool_as_it_calls_a_server_of_its_own(
    suite: Any,
) -> None:
    endpoint = f"{suite.url}/weather"  # what the platform registers
    async with MockAISpineClient() as platform, httpx.AsyncClient() as http:
        result = await platform.execute(endpoint, {"city": "Quito"})
        health = (await http.get(f"{endpoint}/health")).json()
    assert result.ok
    assert result.output_data == {"city": "Quito", "temperature": 21.5}
    assert health["status"] == "healthy"


def test_rate_limits_and_caches_are_each_tools_own(suite: Any) -> None:
    # AI_SPINE_RATE_LIMIT=3/minute per client: spending weather's leaves currency's whole.
    statuses = [
        post(f"{suite.url}/weather/api/execute", {"input_data": {"city": f"C{n}"}}).status_code
        for n in range(5)
    ]
    assert 429 in statuses
    assert post(f"{suite.url}/currency/api/execute", {"input_data": {"amount": 1}}).status_code in (
        200,
        429,
    )
    caches = httpx.get(f"{suite.url}/metrics").json()["tools"]
    assert caches["currency"]["cache"]["results"]["hits"] == 0  # weather's hits are its own


# -- the fast path -------------------------------------------------------------------------------


class CountingSuite(SuiteApp):
    asgi_requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.asgi_requests += 1
        await super().__call__(scope, receive, send)


def test_prefixed_executions_take_the_fast_path() -> None:
    tools = load_tools(str(SUITE))
    app = CountingSuite(tools, ServerSettings())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            http=GuardedHTTPProtocol,
            lifespan="on",
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(3):
            answer = post(f"{url}/currency/api/execute", {"input_data": {"amount": 2}})
            assert answer.json()["output_data"] == {"eur": 1.8}
        assert app.asgi_requests == 0
        assert httpx.get(f"{url}/currency/health").status_code == 200
        assert app.asgi_requests == 1  # the probes go through ASGI
    finally:
        server.should_exit = True
        thread.join(15)


# -- start-up ------------------------------------------------------------------------------------


def test_a_failed_setup_leaves_the_other_tools_serving() -> None:
    env = {"SUITE_BREAK_CURRENCY": "1", "AI_SPINE_MCP": "true", "AI_SPINE_CORS_ORIGINS": ""}
    with running_server(WEATHER, env=env, command="serve", ready_timeout=30.0) as only:
        assert httpx.get(f"{only.url}/health").status_code == 200  # one tool: no setup to fail
    port = free_port()
    argv = [sys.executable, "-m", "ai_spine_tools", "serve", str(WEATHER), str(CURRENCY)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_listening(url, process)
        ready = httpx.get(f"{url}/ready")
        assert ready.status_code == 503
        assert "currency: setup failed: the rates service refused the key" in ready.json()["reason"]
        assert httpx.get(f"{url}/currency/ready").status_code == 503
        refused = post(f"{url}/currency/api/execute", {"input_data": {"amount": 1}})
        assert (refused.status_code, refused.json()["error_code"]) == (503, "TOOL_UNAVAILABLE")
        assert "rates service refused" in refused.json()["error_message"]
        assert httpx.get(f"{url}/health").status_code == 503
        served = post(f"{url}/weather/api/execute", {"input_data": {"city": "Oslo"}})
        assert served.status_code == 200
        call = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "currency", "arguments": {"amount": 1}},
        }
        accept = {"accept": "application/json, text/event-stream"}
        over_mcp = httpx.post(f"{url}/mcp", json=call, headers=accept, timeout=10).json()
        assert over_mcp["result"]["isError"] is True
        assert "TOOL_UNAVAILABLE" in over_mcp["result"]["content"][0]["text"]
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert "tool currency is unavailable" in output


def test_strict_startup_stops_at_a_failed_setup() -> None:
    argv = [sys.executable, "-m", "ai_spine_tools", "serve", str(SUITE), "--strict-startup"]
    argv += ["--host", "127.0.0.1", "--port", str(free_port())]
    done = subprocess.run(
        argv,
        env={**os.environ, "SUITE_BREAK_CURRENCY": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "currency: the rates service refused the key" in done.stdout + done.stderr


# -- keys and names ------------------------------------------------------------------------------


def test_a_tool_may_have_keys_of_its_own() -> None:
    env = {
        "AI_SPINE_API_KEYS": "server-key-0123456789",
        "AI_SPINE_API_KEYS_WEATHER": "w-key-0123456789",
    }
    with running_server(SUITE, env=env) as server:
        weather = f"{server.url}/weather/api/execute"
        currency = f"{server.url}/currency/api/execute"
        body = {"input_data": {"city": "Oslo"}}
        assert post(weather, body, **{"x-api-key": "server-key-0123456789"}).status_code == 401
        assert post(weather, body, **{"x-api-key": "w-key-0123456789"}).status_code == 200
        amount = {"input_data": {"amount": 1}}
        assert post(currency, amount, **{"x-api-key": "server-key-0123456789"}).status_code == 200
        assert post(currency, amount, **{"x-api-key": "w-key-0123456789"}).status_code == 401
        metrics = f"{server.url}/metrics"
        assert httpx.get(metrics).status_code == 401
        assert httpx.get(metrics, headers={"x-api-key": "server-key-0123456789"}).status_code == 200
        server.stop()
        output = server.output()
    assert "tools with API keys of their own: weather" in output


def test_a_misspelt_tool_key_variable_is_fatal() -> None:
    tools = load_tools(str(SUITE))
    with pytest.raises(UnknownSettingError, match="AI_SPINE_API_KEYS_WEATHER"):
        check_tool_environment(tools, {"AI_SPINE_API_KEYS_WAETHER": "k"})
    assert check_tool_environment(tools, {"AI_SPINE_API_KEYS_WEATHER": "k"}) == []


def _named(name: str) -> Any:
    async def execute(input: dict[str, Any]) -> dict[str, Any]:
        return {}

    return create_tool(
        metadata={"name": name, "version": "1.0.0", "description": "A tool"},
        schema={"input": {"q": string_field()}},
        execute=execute,
    )


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["a", "a"], "two tools are called 'a'"),
        (["health", "b"], "cannot be called 'health'"),
        (["Metrics", "b"], "cannot be called 'Metrics'"),
        ([], "at least one tool"),
    ],
)
def test_names_a_suite_cannot_serve_are_refused(names: list[str], message: str) -> None:
    with pytest.raises(ToolDefinitionError, match=message):
        tools_asgi([_named(name) for name in names])


def test_the_cli_refuses_two_tools_of_one_name_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ai_spine_tools", "serve", str(WEATHER), str(WEATHER)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "two tools are called 'weather'" in done.stderr
    assert "Traceback" not in done.stderr


def test_schema_registers_each_tool_at_its_own_url() -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "ai_spine_tools", "schema", str(SUITE)),
            *("--format", "spine-registration", "--endpoint", "https://tools.example.com/"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    registrations = json.loads(done.stdout)
    assert [r["execute_url"] for r in registrations] == [
        "https://tools.example.com/currency/api/execute",
        "https://tools.example.com/weather/api/execute",
    ]
    assert registrations[1]["health_url"] == "https://tools.example.com/weather/health"


def test_a_module_exposing_a_tools_list_is_a_suite(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "suite_of_two.py").write_text(
        "from ai_spine_tools import create_tool, string_field\n"
        "async def run(input):\n    return {}\n"
        "tools = [\n"
        "    create_tool(metadata={'name': n, 'version': '1.0.0', 'description': 'A tool'},\n"
        "                schema={'input': {'q': string_field()}}, execute=run)\n"
        "    for n in ('first', 'second')\n"
        "]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert [tool.name for tool in load_tools("suite_of_two")] == ["first", "second"]
    assert [tool.name for tool in load_tools("suite_of_two:tools")] == ["first", "second"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ToolDefinitionError, match="holds no tool file"):
        load_tools(str(tmp_path / "empty"))


def _wait_listening(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited early")
        try:
            httpx.get(f"{url}/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")
