"""The ASGI app, driven in-process: routes, envelopes, status codes, headers, guards."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

import weather
from ai_spine_tools import Tool, ToolResult, create_tool, string_field
from ai_spine_tools._app import create_app
from ai_spine_tools._inprocess import InProcessApp, RawResponse
from ai_spine_tools._settings import ServerSettings
from tools import secrets, slow

JSON = [("content-type", "application/json")]


@asynccontextmanager
async def serving(tool: Tool, **settings: Any) -> AsyncIterator[InProcessApp]:
    client = InProcessApp(create_app(tool, ServerSettings(**settings)))
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def execute(
    client: InProcessApp, body: Any, headers: list[tuple[str, str]] | None = None
) -> RawResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.request(
        "POST", "/api/execute", body=raw, headers=JSON if headers is None else headers
    )


def payload(response: RawResponse) -> Any:
    return json.loads(response.body)


async def test_execute_success_envelope_is_wire_compatible() -> None:
    async with serving(weather.tool) as client:
        response = await execute(
            client, {"input_data": {"city": "Madrid"}, "execution_id": "abc-1"}
        )
    body = payload(response)
    assert response.status == 200
    assert set(body) == {"execution_id", "status", "output_data", "execution_time_ms", "timestamp"}
    assert body["execution_id"] == "abc-1"
    assert body["status"] == "success"
    assert body["output_data"]["city"] == "Madrid"
    assert body["timestamp"].endswith("Z")
    assert isinstance(body["execution_time_ms"], float)


async def test_every_response_carries_the_standard_headers() -> None:
    async with serving(weather.tool) as client:
        response = await execute(
            client, {"input_data": {"city": "Oslo"}}, [*JSON, ("x-request-id", "req-42")]
        )
        missing = await client.request("GET", "/nope")
    for r in (response, missing):
        assert r.headers["x-tool-version"] == "1.0.0"
        assert r.headers["x-response-time"].endswith("ms")
        assert r.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"] == "req-42"
    assert len(missing.headers["x-request-id"]) == 36


async def test_an_insane_request_id_is_replaced() -> None:
    async with serving(weather.tool) as client:
        response = await execute(
            client, {"input_data": {"city": "Oslo"}}, [*JSON, ("x-request-id", "a b\x01")]
        )
    assert response.headers["x-request-id"] != "a b\x01"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "INVALID_JSON"),
        (b"", 400, "INVALID_JSON"),
        (b'{"input_data": {"city": "\xff"}}', 400, "INVALID_JSON"),
        (b"[1, 2]", 400, "VALIDATION_ERROR"),
        (b'"just a string"', 400, "VALIDATION_ERROR"),
        (b"42", 400, "VALIDATION_ERROR"),
        (b'{"input_data": []}', 400, "VALIDATION_ERROR"),
        (b'{"input_data": {"city": 7}}', 400, "VALIDATION_ERROR"),
        (b'{"input_data": {}}', 400, "VALIDATION_ERROR"),
        (b'{"input_data": {"city": "x", "extra": 1}}', 400, "VALIDATION_ERROR"),
        (b'{"input_data": {"city": "x"}, "config": [1]}', 400, "CONFIGURATION_ERROR"),
        (b'{"input_data": {"city": "x"}, "execution_id": 5}', 400, "VALIDATION_ERROR"),
        (b"[" * 5000 + b"]" * 5000, 400, "VALIDATION_ERROR"),
    ],
)
async def test_bad_bodies_get_a_clear_4xx(body: bytes, status: int, code: str) -> None:
    async with serving(weather.tool) as client:
        response = await execute(client, body)
        assert (await client.request("GET", "/health")).status == 200
    result = payload(response)
    assert response.status == status
    assert result["status"] == "error"
    assert result["error_code"] == code
    assert result["error_message"]


async def test_validation_error_lists_every_bad_field() -> None:
    async with serving(weather.tool) as client:
        response = await execute(
            client, {"input_data": {"city": "x" * 101, "units": "kelvin", "z": 1}}
        )
    details = payload(response)["error_details"]["errors"]
    assert [(e["path"], e["code"]) for e in details] == [
        ("city", "too_long"),
        ("units", "enum"),
        ("z", "unknown_field"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"input_data": {"city": "Lima"}, "unknown_top_level": {"a": 1}},
        {"input_data": {"city": "Lima"}, "metadata": {"trace": "t"}},
        {"input_data": {"city": "Lima", "units": None}},
    ],
)
async def test_lenient_envelopes_are_accepted(body: dict[str, Any]) -> None:
    async with serving(weather.tool) as client:
        response = await execute(client, body)
    assert response.status == 200, response.body


async def test_missing_input_data_is_an_empty_object() -> None:
    tool = create_tool(
        metadata={"name": "no-input", "version": "1.0.0", "description": "takes nothing"},
        execute=lambda: {"ok": True},
    )
    async with serving(tool) as client:
        missing = await execute(client, {})
        null = await execute(client, {"input_data": None})
    assert payload(missing)["output_data"] == {"ok": True}
    assert payload(null)["output_data"] == {"ok": True}


@pytest.mark.parametrize(
    ("returned", "output"),
    [
        ({"a": 1}, {"a": 1}),
        ([1, 2], {"result": [1, 2]}),
        ("text", {"result": "text"}),
        (None, {}),
        (ToolResult.success({"b": 2}), {"b": 2}),
        ({"status": "success", "data": {"c": 3}}, {"c": 3}),
    ],
)
async def test_output_data_is_always_an_object(returned: Any, output: dict[str, Any]) -> None:
    tool = create_tool(
        metadata={"name": "returns", "version": "1.0.0", "description": "returns a value"},
        execute=lambda: returned,
    )
    async with serving(tool) as client:
        response = await execute(client, {})
    assert payload(response)["output_data"] == output


@pytest.mark.parametrize(
    ("raised", "status", "code", "retryable"),
    [
        (
            lambda: ToolResult.error("UPSTREAM_DOWN", "down", type="network_error", retryable=True),
            503,
            "UPSTREAM_DOWN",
            True,
        ),
        (
            lambda: {
                "status": "error",
                "error": {
                    "code": "MISSING_REQUIRED_FIELD",
                    "message": "m",
                    "type": "validation_error",
                },
            },
            400,
            "MISSING_REQUIRED_FIELD",
            False,
        ),
        (
            lambda: {
                "status": "error",
                "error": {
                    "code": "SERVICE_UNAVAILABLE",
                    "message": "m",
                    "type": "network_error",
                    "retryable": True,
                    "retryAfterMs": 30000,
                },
            },
            503,
            "SERVICE_UNAVAILABLE",
            True,
        ),
    ],
)
async def test_error_results_map_to_status_and_code(
    raised: Callable[[], Any], status: int, code: str, retryable: bool
) -> None:
    tool = create_tool(
        metadata={"name": "errs", "version": "1.0.0", "description": "fails on purpose"},
        execute=raised,
    )
    async with serving(tool) as client:
        response = await execute(client, {})
    body = payload(response)
    assert response.status == status
    assert body["error_code"] == code
    assert body["retryable"] is retryable
    assert body["execution_id"]


async def test_service_unavailable_sets_retry_after() -> None:
    tool = create_tool(
        metadata={"name": "down", "version": "1.0.0", "description": "dependency down"},
        execute=lambda: {
            "status": "error",
            "error": {
                "code": "SERVICE_UNAVAILABLE",
                "message": "m",
                "type": "network_error",
                "retryable": True,
                "retryAfterMs": 30000,
            },
        },
    )
    async with serving(tool) as client:
        response = await execute(client, {})
    assert response.headers["retry-after"] == "30"
    assert payload(response)["retry_after_ms"] == 30000


async def test_an_unexpected_exception_is_500_without_internals() -> None:
    async with serving(slow.tool) as client:
        response = await execute(client, {"input_data": {"fail": "secret internals"}})
    body = payload(response)
    assert response.status == 500
    assert body["error_code"] == "EXECUTION_ERROR"
    assert "secret internals" not in response.body.decode()


async def test_debug_mode_shows_the_exception() -> None:
    async with serving(slow.tool, debug=True) as client:
        response = await execute(client, {"input_data": {"fail": "visible"}})
    assert "visible" in payload(response)["error_message"]


async def test_timeout_returns_408_and_cancels_the_execution() -> None:
    before = slow.state["cancelled"]
    async with serving(slow.tool, request_timeout_ms=100) as client:
        response = await execute(client, {"input_data": {"seconds": 5}})
    body = payload(response)
    assert response.status == 408
    assert body["error_code"] == "TIMEOUT_ERROR"
    assert body["retryable"] is True
    assert slow.state["cancelled"] == before + 1


async def test_errors_as_200_mode_keeps_the_error_body() -> None:
    async with serving(weather.tool, errors_as_200=True) as client:
        response = await execute(client, {"input_data": {}})
        missing = await client.request("GET", "/nope")
    assert response.status == 200
    assert payload(response)["status"] == "error"
    assert payload(response)["error_code"] == "VALIDATION_ERROR"
    assert missing.status == 404


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("Application/JSON", 200),
        ("application/vnd.api+json", 200),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("multipart/form-data; boundary=x", 415),
    ],
)
async def test_content_types(content_type: str, status: int) -> None:
    async with serving(weather.tool) as client:
        response = await execute(
            client, {"input_data": {"city": "Rome"}}, [("content-type", content_type)]
        )
    assert response.status == status
    if status == 415:
        assert payload(response)["error_code"] == "INVALID_CONTENT_TYPE"


async def test_a_missing_content_type_is_read_as_json() -> None:
    async with serving(weather.tool) as client:
        response = await execute(client, {"input_data": {"city": "Rome"}}, [])
    assert response.status == 200


async def test_body_over_the_limit_is_413() -> None:
    async with serving(weather.tool, max_body_bytes=1000) as client:
        response = await execute(client, {"input_data": {"city": "x" * 2000}})
        declared = await client.request(
            "POST", "/api/execute", body=b"{}", headers=[*JSON, ("content-length", "5000")]
        )
    assert response.status == 413
    assert payload(response)["error_code"] == "PAYLOAD_TOO_LARGE"
    assert declared.status == 413


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health", 200),
        ("GET", "/health/", 200),
        ("GET", "//health", 200),
        ("GET", "/ready", 200),
        ("GET", "/schema", 200),
        ("GET", "/metrics", 200),
        ("GET", "/", 200),
        ("HEAD", "/health", 200),
        ("HEAD", "/", 200),
        ("POST", "/api/execute/", 200),
        ("POST", "//api//execute", 200),
        ("GET", "/api/execute", 405),
        ("POST", "/health", 405),
        ("DELETE", "/", 405),
        ("OPTIONS", "/health", 204),
        ("GET", "/nope", 404),
        ("GET", "/../etc/passwd", 404),
        ("GET", "/api/execute/../../health", 404),
        ("GET", "/%00", 404),
        ("GET", "/ünïcödé", 404),
    ],
)
async def test_routes(method: str, path: str, status: int) -> None:
    body = json.dumps({"input_data": {"city": "Bern"}}).encode() if method == "POST" else b""
    async with serving(weather.tool) as client:
        response = await client.request(method, path, body=body, headers=JSON)
    assert response.status == status
    if method == "HEAD":
        assert response.body == b""
        assert int(response.headers["content-length"]) > 0
    if status == 404:
        details = payload(response)["error_details"]
        assert "POST /api/execute" in details["available_endpoints"]
    if status == 405:
        assert "allow" in response.headers


async def test_health_ready_and_info_bodies() -> None:
    async with serving(weather.tool) as client:
        health = payload(await client.request("GET", "/health"))
        ready = payload(await client.request("GET", "/ready"))
        info = payload(await client.request("GET", "/"))
    assert health["status"] == "healthy"
    assert health["tool"] == "weather-lookup"
    assert ready["ready"] is True
    assert info["name"] == "weather-lookup"
    assert info["capabilities"] == ["weather.current"]


@pytest.mark.parametrize(
    ("outcome", "state", "status"),
    [
        (True, "healthy", 200),
        (False, "degraded", 200),
        ({"status": "degraded", "upstream": "slow"}, "degraded", 200),
        ({"status": "unhealthy"}, "unhealthy", 503),
    ],
)
async def test_health_check_outcomes(outcome: Any, state: str, status: int) -> None:
    tool = create_tool(
        metadata={"name": "checked", "version": "1.0.0", "description": "has a health check"},
        execute=dict,
        health_check=lambda: outcome,
    )
    async with serving(tool) as client:
        response = await client.request("GET", "/health")
        ready = await client.request("GET", "/ready")
    assert response.status == status
    assert payload(response)["status"] == state
    assert ready.status == (503 if state == "unhealthy" else 200)


async def test_a_failing_health_check_is_degraded_not_down() -> None:
    def broken() -> bool:
        raise ConnectionError("db unreachable")

    tool = create_tool(
        metadata={"name": "broken-check", "version": "1.0.0", "description": "x"},
        execute=dict,
        health_check=broken,
    )
    async with serving(tool) as client:
        response = await client.request("GET", "/health")
    assert response.status == 200
    assert payload(response)["status"] == "degraded"


async def test_ready_is_503_while_draining() -> None:
    app = create_app(weather.tool, ServerSettings())
    client = InProcessApp(app)
    await client.start()
    try:
        assert (await client.request("GET", "/ready")).status == 200
        app.draining = True  # type: ignore[attr-defined]
        response = await client.request("GET", "/ready")
        assert response.status == 503
        assert payload(response)["reason"] == "draining"
    finally:
        await client.stop()


async def test_schema_is_openapi_with_a_valid_example() -> None:
    async with serving(weather.tool) as client:
        document = payload(await client.request("GET", "/schema"))
        example = document["paths"]["/api/execute"]["post"]["requestBody"]["content"][
            "application/json"
        ]["example"]
        response = await execute(client, example)
    assert document["openapi"] == "3.1.0"
    assert document["x-tool-metadata"]["name"] == "weather-lookup"
    assert document["components"]["schemas"]["Input"]["required"] == ["city"]
    assert response.status == 200


async def test_metrics_count_requests_and_errors() -> None:
    tool = create_tool(
        metadata={"name": "counted", "version": "1.0.0", "description": "x"},
        schema={"input": {"q": string_field(required=True)}},
        execute=lambda input: {"q": input["q"]},
    )
    async with serving(tool) as client:
        for _ in range(3):
            await execute(client, {"input_data": {"q": "a"}})
        await execute(client, {"input_data": {}})
        metrics = payload(await client.request("GET", "/metrics"))
    assert metrics["requests"]["total"] == 4
    assert metrics["errors"]["by_code"] == {"VALIDATION_ERROR": 1}
    assert metrics["resources"]["memory_usage_bytes"] > 0


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([], 401),
        ([("x-api-key", "wrong")], 401),
        ([("authorization", "Bearer wrong")], 401),
        ([("authorization", "Basic c2VjcmV0LWtleS0x")], 401),
        ([("x-api-key", "secret-key-1")], 200),
        ([("x-api-key", "secret-key-2")], 200),
        ([("authorization", "Bearer secret-key-1")], 200),
        ([("authorization", "bearer secret-key-2")], 200),
    ],
)
async def test_api_key_auth(headers: list[tuple[str, str]], status: int) -> None:
    async with serving(weather.tool, api_keys=("secret-key-1", "secret-key-2")) as client:
        response = await execute(client, {"input_data": {"city": "Kyiv"}}, [*JSON, *headers])
        probe = await client.request("GET", "/health")
        ready = await client.request("GET", "/ready")
        metrics = await client.request("GET", "/metrics", headers=headers)
    assert response.status == status
    assert probe.status == ready.status == 200
    assert metrics.status == status
    if status == 401:
        assert payload(response)["error_code"] == "AUTHENTICATION_REQUIRED"
        assert "secret-key" not in response.body.decode()


async def test_rate_limit_rejects_past_the_limit_with_headers() -> None:
    async with serving(weather.tool, rate_limit="3/minute") as client:
        responses = [await execute(client, {"input_data": {"city": "Quito"}}) for _ in range(5)]
    assert [r.status for r in responses] == [200, 200, 200, 429, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in responses[:3]] == ["2", "1", "0"]
    refused = responses[3]
    assert refused.headers["x-ratelimit-limit"] == "3"
    assert int(refused.headers["retry-after"]) >= 1
    assert payload(refused)["error_code"] == "RATE_LIMIT_EXCEEDED"
    assert payload(refused)["retryable"] is True


async def test_rate_limit_is_per_api_key_when_auth_is_on() -> None:
    async with serving(weather.tool, rate_limit="1/minute", api_keys=("k-one", "k-two")) as client:
        first = await execute(
            client, {"input_data": {"city": "A"}}, [*JSON, ("x-api-key", "k-one")]
        )
        second = await execute(
            client, {"input_data": {"city": "A"}}, [*JSON, ("x-api-key", "k-two")]
        )
        again = await execute(
            client, {"input_data": {"city": "A"}}, [*JSON, ("x-api-key", "k-one")]
        )
    assert (first.status, second.status, again.status) == (200, 200, 429)


async def test_config_from_the_request_and_missing_required_config() -> None:
    async with serving(secrets.tool) as client:
        ok = await execute(client, {"input_data": {"q": "x"}, "config": {"api_key": "k" * 12}})
        missing = await execute(client, {"input_data": {"q": "x"}})
        short = await execute(client, {"input_data": {"q": "x"}, "config": {"api_key": "Zq9&x"}})
    assert payload(ok)["output_data"] == {
        "endpoint": "https://api.example.com/",
        "key_length": 12,
        "q": "x",
    }
    assert missing.status == 400
    assert payload(missing)["error_code"] == "CONFIGURATION_ERROR"
    assert "api_key" in payload(missing)["error_message"]
    assert short.status == 400
    assert "Zq9&x" not in short.body.decode()


async def test_gzip_compression_when_enabled() -> None:
    async with serving(weather.tool, compression=True) as client:
        response = await client.request("GET", "/schema", headers=[("accept-encoding", "gzip")])
    assert response.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(response.body))["openapi"] == "3.1.0"


async def test_cors_when_enabled() -> None:
    async with serving(weather.tool, cors_origins=("https://app.example",)) as client:
        preflight = await client.request(
            "OPTIONS",
            "/api/execute",
            headers=[
                ("origin", "https://app.example"),
                ("access-control-request-method", "POST"),
            ],
        )
    assert preflight.status == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"


async def test_startup_fails_on_a_bad_server_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_SPINE_CONFIG_ENDPOINT", "not a url")
    client = InProcessApp(create_app(secrets.tool, ServerSettings()))
    with pytest.raises(RuntimeError, match="AI_SPINE_CONFIG_ENDPOINT"):
        await client.start()


async def test_concurrent_executions_run_in_parallel() -> None:
    async with serving(slow.tool) as client:
        started = asyncio.get_running_loop().time()
        responses = await asyncio.gather(
            *(execute(client, {"input_data": {"seconds": 0.2}}) for _ in range(20))
        )
        took = asyncio.get_running_loop().time() - started
    assert all(r.status == 200 for r in responses)
    assert took < 2.0  # 20 x 0.2 s run together, not one after another
