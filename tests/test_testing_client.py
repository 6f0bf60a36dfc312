"""ToolTestClient, test_tool and the assertion helpers of ai_spine_tools.testing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from typing import Any

import pytest

import weather
from ai_spine_tools import Tool, create_tool, string_field
from ai_spine_tools.testing import (
    AsyncToolTestClient,
    MockAISpineClient,
    ToolResponse,
    ToolTestClient,
    assert_success,
    assert_validation_error,
    test_tool,
)

META = {"name": "lifecycle", "version": "2.0.0", "description": "records its lifecycle"}


def lifecycle_tool(events: list[str], *, fail_setup: bool = False) -> Tool:
    async def setup() -> dict[str, str]:
        if fail_setup:
            raise RuntimeError("database unreachable")
        events.append("setup")
        return {"pool": "open"}

    async def cleanup(resources: dict[str, str]) -> None:
        events.append(f"cleanup {resources['pool']}")

    async def execute(input: dict[str, Any], config: dict[str, Any], context: Any) -> Any:
        events.append("execute")
        return {"resources": context.resources, "user_agent": context.security.user_agent}

    return create_tool(
        metadata=META,
        schema={"input": {"name": string_field(max_length=5)}},
        execute=execute,
        setup=setup,
        cleanup=cleanup,
    )


def portal_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("ai-spine-portal")]


def test_sync_client_executes_and_types_the_response() -> None:
    with ToolTestClient(weather.tool) as client:
        response = client.execute({"city": "Madrid"}, execution_id="run-1")
    assert isinstance(response, ToolResponse)
    assert response.status_code == 200
    assert response.ok
    assert response.status == "success"
    assert response.execution_id == "run-1"
    assert response.output_data is not None
    assert response.output_data["city"] == "Madrid"
    assert response.error_code is None
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-tool-version"] == "1.0.0"
    assert response.headers["X-Tool-Version"] == "1.0.0"  # names match in any case
    assert "X-Request-ID" in response.headers
    assert json.loads(response.text) == response.json


def test_sync_client_reports_validation_errors() -> None:
    with ToolTestClient(weather.tool) as client:
        response = client.execute({"city": "x" * 101, "units": "kelvin"})
    assert response.status_code == 400
    assert not response.ok
    assert response.error_code == "VALIDATION_ERROR"
    assert response.error_message is not None
    assert response.error_message.startswith("Invalid input")
    assert [(e["path"], e["code"]) for e in response.validation_errors] == [
        ("city", "too_long"),
        ("units", "enum"),
    ]
    assert repr(response) == "<ToolResponse [400] VALIDATION_ERROR>"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health", 200),
        ("GET", "/ready", 200),
        ("GET", "/schema", 200),
        ("GET", "/metrics", 200),
        ("GET", "/", 200),
        ("GET", "/nowhere", 404),
        ("DELETE", "/api/execute", 405),
    ],
)
def test_sync_client_reaches_every_route(method: str, path: str, status: int) -> None:
    with ToolTestClient(weather.tool) as client:
        response = client.request(method, path)
    assert response.status_code == status
    assert isinstance(response.json, dict)


def test_post_sends_raw_content_and_json() -> None:
    with ToolTestClient(weather.tool) as client:
        broken = client.post(
            "/api/execute", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        fine = client.post("/api/execute", json={"input_data": {"city": "Oslo"}})
    assert broken.status_code == 400
    assert broken.error_code == "INVALID_JSON"
    assert fine.ok


def test_post_refuses_json_and_content_together() -> None:
    with ToolTestClient(weather.tool) as client, pytest.raises(TypeError, match="not both"):
        client.post("/api/execute", json={}, content=b"{}")


def test_sync_client_runs_setup_on_enter_and_cleanup_on_exit() -> None:
    events: list[str] = []
    with ToolTestClient(lifecycle_tool(events)) as client:
        assert events == ["setup"]
        response = client.execute({"name": "ada"})
        assert response.output_data == {
            "resources": {"pool": "open"},
            "user_agent": None,
        }
    assert events == ["setup", "execute", "cleanup open"]
    assert portal_threads() == []


async def test_async_client_runs_setup_and_cleanup_on_the_running_loop() -> None:
    events: list[str] = []
    async with ToolTestClient(lifecycle_tool(events)) as client:
        assert isinstance(client, AsyncToolTestClient)
        assert events == ["setup"]
        response = await client.execute({"name": "ada"})
        health = await client.get("/health")
        posted = await client.post("/api/execute", json={"input_data": {"name": "bob"}})
    assert response.ok
    assert health.json["status"] == "healthy"
    assert posted.ok
    assert events == ["setup", "execute", "execute", "cleanup open"]


async def test_async_client_can_be_built_directly() -> None:
    async with AsyncToolTestClient(weather.tool) as client:
        response = await client.request("POST", "/api/execute", json={"input_data": {}})
    assert_validation_error(response, "city", "required")


async def test_sync_client_works_inside_a_running_loop() -> None:
    with ToolTestClient(weather.tool) as client:
        response = client.execute({"city": "Lima"})
    assert response.ok


def test_failed_setup_raises_and_leaves_no_thread() -> None:
    events: list[str] = []
    with (
        pytest.raises(RuntimeError, match="database unreachable"),
        ToolTestClient(lifecycle_tool(events, fail_setup=True)),
    ):
        pass  # pragma: no cover - entering fails
    assert portal_threads() == []


def test_client_outside_its_block_says_how_to_use_it() -> None:
    client = ToolTestClient(weather.tool)
    with pytest.raises(RuntimeError, match="with ToolTestClient"):
        client.execute({"city": "Rome"})


async def test_a_tool_started_elsewhere_keeps_its_lifecycle() -> None:
    events: list[str] = []
    tool = lifecycle_tool(events)
    async with tool:
        async with ToolTestClient(tool) as client:
            assert (await client.execute({"name": "x"})).ok
        assert events == ["setup", "execute"]  # the client did not clean up someone else's tool
    assert events[-1] == "cleanup open"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-API-Key": "wrong"}, 401),
        ({"X-API-Key": "secret-key"}, 200),
        ({"Authorization": "Bearer secret-key"}, 200),
    ],
)
def test_settings_overrides_reach_the_app(headers: dict[str, str], status: int) -> None:
    with ToolTestClient(weather.tool, api_keys=("secret-key",)) as client:
        response = client.execute({"city": "Quito"}, headers=headers)
    assert response.status_code == status


def test_default_headers_go_with_every_request() -> None:
    with ToolTestClient(weather.tool, api_keys=("k1",), headers={"X-API-Key": "k1"}) as client:
        assert client.execute({"city": "Kyiv"}).ok
        assert client.get("/metrics").status_code == 200


def test_client_accepts_an_asgi_app() -> None:
    with ToolTestClient(weather.tool.asgi(errors_as_200=True)) as client:
        response = client.execute({})
    assert response.status_code == 200
    assert not response.ok
    assert response.error_code == "VALIDATION_ERROR"


def test_client_runs_an_app_without_lifespan_support() -> None:
    async def bare(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("only http")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with ToolTestClient(bare) as client:
        response = client.get("/")
    assert response.status_code == 204
    assert response.json is None


def test_settings_need_a_tool() -> None:
    with pytest.raises(TypeError, match="only when the client is given a Tool"):
        ToolTestClient(weather.tool.asgi(), api_keys=("k",))
    with pytest.raises(TypeError, match="expected a Tool or an ASGI app"):
        ToolTestClient(42)  # type: ignore[arg-type]


def test_test_tool_returns_the_response() -> None:
    response = test_tool(weather.tool, {"city": "Madrid", "units": "fahrenheit"})
    assert response.ok
    assert response.output_data is not None
    assert response.output_data["units"] == "fahrenheit"


def test_test_tool_expect_success_lists_the_validation_messages() -> None:
    with pytest.raises(AssertionError) as caught:
        test_tool(weather.tool, {"city": "x" * 101, "units": "kelvin"}, expect_success=True)
    message = str(caught.value)
    assert message.startswith("expected a success, got VALIDATION_ERROR (HTTP 400)")
    assert "- city: [too_long] 'city' must be at most 100 characters (got 101)" in message
    assert "- units: [enum] 'units' must be one of 'celsius', 'fahrenheit'" in message


def test_test_tool_passes_settings() -> None:
    assert test_tool(weather.tool, {"city": "Lyon"}, api_keys=("k",)).status_code == 401


def test_test_tool_is_not_collected_as_a_test() -> None:
    assert test_tool.__test__ is False  # type: ignore[attr-defined]


def test_assert_success_returns_output_data() -> None:
    with ToolTestClient(weather.tool) as client:
        data = assert_success(client.execute({"city": "Oslo"}))
    assert data["city"] == "Oslo"


@pytest.mark.parametrize(
    ("input", "field", "code", "message"),
    [
        ({"city": "Oslo"}, "city", None, "expected a validation error on 'city', got a success"),
        ({}, "units", None, "expected a validation error on 'units', got VALIDATION_ERROR"),
        ({}, "city", "too_long", "on 'city' with code 'too_long', got VALIDATION_ERROR"),
    ],
)
def test_assert_validation_error_explains_a_mismatch(
    input: dict[str, Any], field: str, code: str | None, message: str
) -> None:
    with ToolTestClient(weather.tool) as client:
        response = client.execute(input)
    with pytest.raises(AssertionError, match=message):
        assert_validation_error(response, field, code)


def test_assert_validation_error_returns_the_issue() -> None:
    with ToolTestClient(weather.tool) as client:
        issue = assert_validation_error(client.execute({}), "city", "required")
    assert issue == {"path": "city", "code": "required", "message": "'city' is required"}


def test_assert_validation_error_rejects_other_errors() -> None:
    with ToolTestClient(weather.tool, api_keys=("k",)) as client:
        response = client.execute({"city": "Oslo"})
    with pytest.raises(AssertionError, match="got AUTHENTICATION_REQUIRED \\(HTTP 401\\)"):
        assert_validation_error(response, "city")


def test_assertions_read_platform_results_too() -> None:
    async def run() -> None:
        async with MockAISpineClient() as spine:
            assert_success(await spine.execute(weather.tool, {"city": "Oslo"}))
            assert_validation_error(await spine.execute(weather.tool, {}), "city", "required")

    asyncio.run(run())


def test_importing_the_package_does_not_import_the_toolkit() -> None:
    code = (
        "import sys, ai_spine_tools; print('ai_spine_tools.testing' in sys.modules);"
        "import ai_spine_tools.testing; print('matplotlib' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False", "False"]


def stateful_tool() -> Tool:
    """A tool whose executions leave state: a breaker that opens, a cached result, a metric."""

    async def execute(input: dict[str, Any], context: Any) -> dict[str, Any]:
        context.metrics.increment("calls")
        if input["name"] == "fail":
            async with context.breaker("upstream", failure_threshold=1, recovery_timeout=60):
                raise ConnectionError("down")
        return {"name": input["name"]}

    return create_tool(
        metadata={"name": "stateful", "version": "1.0.0", "description": "leaves state"},
        schema={"input": {"name": string_field(max_length=10)}},
        execute=execute,
        cache={"ttl": 600},
    )


def leave_state(client: ToolTestClient) -> None:
    client.execute({"name": "fail"})
    assert client.execute({"name": "fail"}).error_code == "CIRCUIT_OPEN"
    assert client.execute({"name": "x"}).headers["x-cache"] == "MISS"


def test_each_client_starts_from_a_reset_tool() -> None:
    tool = stateful_tool()
    with ToolTestClient(tool) as client:
        leave_state(client)
    with ToolTestClient(tool) as client:  # as the next test would
        assert tool.get_metrics().custom == {}
        assert client.execute({"name": "x"}).headers["x-cache"] == "MISS"
        assert client.execute({"name": "fail"}).error_code != "CIRCUIT_OPEN"


def test_reset_false_keeps_the_state() -> None:
    tool = stateful_tool()
    with ToolTestClient(tool) as client:
        leave_state(client)
    with ToolTestClient(tool, reset=False) as client:
        assert tool.get_metrics().custom["calls"] == 3
        assert client.execute({"name": "x"}).headers["x-cache"] == "HIT"
        assert client.execute({"name": "fail"}).error_code == "CIRCUIT_OPEN"


def test_a_misspelt_setting_names_the_right_one() -> None:
    with pytest.raises(TypeError, match="did you mean 'request_timeout_ms'"):
        ToolTestClient(weather.tool, request_timeout=200)
