"""The ASGI app, driven in-process through our own testing toolkit: routes, envelopes, status
codes, headers, guards."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest

import weather
from ai_spine_tools import Tool, ToolResult, create_tool, string_field
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.server._app import create_app
from ai_spine_tools.testing import (
    AsyncToolTestClient,
    ToolResponse,
    assert_success,
    assert_validation_error,
)
from tools import keyed, slow

JSON = {"content-type": "application/json"}


@asynccontextmanager
async def serving(tool: Tool, **settings: Any) -> AsyncIterator[AsyncToolTestClient]:
    # Settings built from the keywords alone, so the environment of the test run plays no part.
    async with AsyncToolTestClient(tool, ServerSettings(**settings)) as client:
        yield client


async def execute(
    client: AsyncToolTestClient, body: Any, headers: Mapping[str, str] | None = None
) -> ToolResponse:
    """POST ``body`` (bytes as they are, anything else as JSON) to ``/api/execute``."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(
        "/api/execute", content=raw, headers=JSON if headers is None else headers
    )


async def test_execute_success_envelope_is_wire_compatible() -> None:
    async with serving(weather.tool) as client:
        response = await client.execute({"city": "Madrid"}, execution_id="abc-1")
    body = response.json
    assert response.status_code == 200
    assert set(body) == {"execution_id", "status", "output_data", "execution_time_ms", "timestamp"}
    assert body["execution_id"] == "abc-1"
    assert body["status"] == "success"
    assert assert_success(response)["city"] == "Madrid"
    assert body["timestamp"].endswith("Z")
    assert isinstance(body["execution_time_ms"], float)


async def test_every_response_carries_the_standard_headers() -> None:
    async with serving(weather.tool) as client:
        response = await client.execute({"city": "Oslo"}, headers={"X-Request-ID": "req-42"})
        missing = await client.get("/nope")
    for r in (response, missing):
        assert r.headers["X-Tool-Version"] == "1.0.0"
        assert r.headers["X-Response-Time"].endswith("ms")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Request-ID"] == "req-42"
    assert len(missing.headers["X-Request-ID"]) == 36


async def test_an_insane_request_id_is_replaced() -> None:
    async with serving(weather.tool) as client:
        response = await client.execute({"city": "Oslo"}, headers={"X-Request-ID": "a b\x01"})
    assert response.headers["X-Request-ID"] != "a b\x01"


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
        assert (await client.get("/health")).status_code == 200
    result = response.json
    assert response.status_code == status
    assert result["status"] == "error"
    assert response.error_code == code
    assert response.error_message


async def test_validation_error_lists_every_bad_field() -> None:
    async with serving(weather.tool) as client:
        response = await client.execute({"city": "x" * 101, "units": "kelvin", "z": 1})
    assert [(e["path"], e["code"]) for e in response.validation_errors] == [
        ("city", "too_long"),
        ("units", "enum"),
        ("z", "unknown_field"),
    ]
    assert_validation_error(response, "city", "too_long")


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
        response = await client.post("/api/execute", json=body)
    assert response.status_code == 200, response.content
    assert_success(response)


async def test_missing_input_data_is_an_empty_object() -> None:
    tool = create_tool(
        metadata={"name": "no-input", "version": "1.0.0", "description": "takes nothing"},
        execute=lambda: {"ok": True},
    )
    async with serving(tool) as client:
        missing = await client.post("/api/execute", json={})
        null = await client.post("/api/execute", json={"input_data": None})
    assert missing.output_data == {"ok": True}
    assert null.output_data == {"ok": True}


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
        response = await client.execute()
    assert response.json["output_data"] == output
    assert assert_success(response) == output


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
        response = await client.execute()
    assert response.status_code == status
    assert response.error_code == code
    assert response.json["retryable"] is retryable
    assert response.execution_id


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
        response = await client.execute()
    assert response.headers["Retry-After"] == "30"
    assert response.json["retry_after_ms"] == 30000


async def test_an_unexpected_exception_is_500_without_internals() -> None:
    async with serving(slow.tool) as client:
        response = await client.execute({"fail": "secret internals"})
    assert response.status_code == 500
    assert response.error_code == "EXECUTION_ERROR"
    assert "secret internals" not in response.text


async def test_debug_mode_shows_the_exception() -> None:
    async with serving(slow.tool, debug=True) as client:
        response = await client.execute({"fail": "visible"})
    assert "visible" in (response.error_message or "")


async def test_timeout_returns_408_and_cancels_the_execution() -> None:
    before = slow.state["cancelled"]
    async with serving(slow.tool, request_timeout_ms=100) as client:
        response = await client.execute({"seconds": 5})
    assert response.status_code == 408
    assert response.error_code == "TIMEOUT_ERROR"
    assert response.json["retryable"] is True
    assert slow.state["cancelled"] == before + 1


async def test_errors_as_200_mode_keeps_the_error_body() -> None:
    async with serving(weather.tool, errors_as_200=True) as client:
        response = await client.execute({})
        missing = await client.get("/nope")
    assert response.status_code == 200
    assert response.status == "error"
    assert response.error_code == "VALIDATION_ERROR"
    assert missing.status_code == 404


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
            client, {"input_data": {"city": "Rome"}}, {"content-type": content_type}
        )
    assert response.status_code == status
    if status == 415:
        assert response.error_code == "INVALID_CONTENT_TYPE"


async def test_a_missing_content_type_is_read_as_json() -> None:
    async with serving(weather.tool) as client:
        response = await execute(client, {"input_data": {"city": "Rome"}}, {})
    assert response.status_code == 200


async def test_body_over_the_limit_is_413() -> None:
    async with serving(weather.tool, max_body_bytes=1000) as client:
        response = await client.execute({"city": "x" * 2000})
        declared = await client.post(
            "/api/execute", content=b"{}", headers={**JSON, "content-length": "5000"}
        )
    assert response.status_code == 413
    assert response.error_code == "PAYLOAD_TOO_LARGE"
    assert declared.status_code == 413


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
        response = await client.request(method, path, content=body, headers=JSON)
    assert response.status_code == status
    if method == "HEAD":
        assert response.content == b""
        assert int(response.headers["Content-Length"]) > 0
    if status == 404:
        assert "POST /api/execute" in response.error_details["available_endpoints"]
    if status == 405:
        assert "allow" in response.headers


async def test_health_ready_and_info_bodies() -> None:
    async with serving(weather.tool) as client:
        health = (await client.get("/health")).json
        ready = (await client.get("/ready")).json
        info = (await client.get("/")).json
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
        response = await client.get("/health")
        ready = await client.get("/ready")
    assert response.status_code == status
    assert response.json["status"] == state
    assert ready.status_code == (503 if state == "unhealthy" else 200)


async def test_a_failing_health_check_is_degraded_not_down() -> None:
    def broken() -> bool:
        raise ConnectionError("db unreachable")

    tool = create_tool(
        metadata={"name": "broken-check", "version": "1.0.0", "description": "x"},
        execute=dict,
        health_check=broken,
    )
    async with serving(tool) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json["status"] == "degraded"


async def test_ready_is_503_while_draining() -> None:
    app = create_app(weather.tool, ServerSettings())
    async with AsyncToolTestClient(app) as client:
        assert (await client.get("/ready")).status_code == 200
        app.draining = True  # type: ignore[attr-defined]
        response = await client.get("/ready")
        assert response.status_code == 503
        assert response.json["reason"] == "draining"


async def test_schema_is_openapi_with_a_valid_example() -> None:
    async with serving(weather.tool) as client:
        document = (await client.get("/schema")).json
        example = document["paths"]["/api/execute"]["post"]["requestBody"]["content"][
            "application/json"
        ]["example"]
        response = await client.post("/api/execute", json=example)
    assert document["openapi"] == "3.1.0"
    assert document["x-tool-metadata"]["name"] == "weather-lookup"
    assert document["components"]["schemas"]["Input"]["required"] == ["city"]
    assert response.status_code == 200


async def test_metrics_count_requests_and_errors() -> None:
    tool = create_tool(
        metadata={"name": "counted", "version": "1.0.0", "description": "x"},
        schema={"input": {"q": string_field(required=True)}},
        execute=lambda input: {"q": input["q"]},
    )
    async with serving(tool) as client:
        for _ in range(3):
            await client.execute({"q": "a"})
        await client.execute({})
        metrics = (await client.get("/metrics")).json
    assert metrics["requests"]["total"] == 4
    assert metrics["errors"]["by_code"] == {"VALIDATION_ERROR": 1}
    assert metrics["resources"]["memory_usage_bytes"] > 0


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"x-api-key": "wrong"}, 401),
        ({"authorization": "Bearer wrong"}, 401),
        ({"authorization": "Basic c2VjcmV0LWtleS0x"}, 401),
        ({"x-api-key": "secret-key-1"}, 200),
        ({"x-api-key": "secret-key-2"}, 200),
        ({"authorization": "Bearer secret-key-1"}, 200),
        ({"authorization": "bearer secret-key-2"}, 200),
    ],
)
async def test_api_key_auth(headers: dict[str, str], status: int) -> None:
    async with serving(weather.tool, api_keys=("secret-key-1", "secret-key-2")) as client:
        response = await client.execute({"city": "Kyiv"}, headers=headers)
        probe = await client.get("/health")
        ready = await client.get("/ready")
        metrics = await client.get("/metrics", headers=headers)
    assert response.status_code == status
    assert probe.status_code == ready.status_code == 200
    assert metrics.status_code == status
    if status == 401:
        assert response.error_code == "AUTHENTICATION_REQUIRED"
        assert "secret-key" not in response.text


async def test_rate_limit_rejects_past_the_limit_with_headers() -> None:
    async with serving(weather.tool, rate_limit="3/minute") as client:
        responses = [await client.execute({"city": "Quito"}) for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses[:3]] == ["2", "1", "0"]
    refused = responses[3]
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.error_code == "RATE_LIMIT_EXCEEDED"
    assert refused.json["retryable"] is True


async def test_rate_limit_is_per_api_key_when_auth_is_on() -> None:
    async with serving(weather.tool, rate_limit="1/minute", api_keys=("k-one", "k-two")) as client:
        first = await client.execute({"city": "A"}, headers={"x-api-key": "k-one"})
        second = await client.execute({"city": "A"}, headers={"x-api-key": "k-two"})
        again = await client.execute({"city": "A"}, headers={"x-api-key": "k-one"})
    assert (first.status_code, second.status_code, again.status_code) == (200, 200, 429)


async def test_config_from_the_request_and_missing_required_config() -> None:
    async with serving(keyed.tool) as client:
        ok = await client.execute({"q": "x"}, {"api_key": "k" * 12})
        missing = await client.execute({"q": "x"})
        short = await client.execute({"q": "x"}, {"api_key": "Zq9&x"})
    assert ok.output_data == {
        "endpoint": "https://api.example.com/",
        "key_length": 12,
        "q": "x",
    }
    assert missing.status_code == 400
    assert missing.error_code == "CONFIGURATION_ERROR"
    assert "api_key" in (missing.error_message or "")
    assert short.status_code == 400
    assert "Zq9&x" not in short.text


async def test_gzip_compression_when_enabled() -> None:
    async with serving(weather.tool, compression=True) as client:
        response = await client.get("/schema", headers={"accept-encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(response.content))["openapi"] == "3.1.0"


async def test_cors_when_enabled() -> None:
    async with serving(weather.tool, cors_origins=("https://app.example",)) as client:
        preflight = await client.request(
            "OPTIONS",
            "/api/execute",
            headers={
                "origin": "https://app.example",
                "access-control-request-method": "POST",
            },
        )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"


async def test_startup_fails_on_a_bad_server_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_SPINE_CONFIG_ENDPOINT", "not a url")
    client = AsyncToolTestClient(keyed.tool, ServerSettings())
    with pytest.raises(RuntimeError, match="AI_SPINE_CONFIG_ENDPOINT"):
        await client.__aenter__()


async def test_concurrent_executions_run_in_parallel() -> None:
    async with serving(slow.tool) as client:
        started = asyncio.get_running_loop().time()
        responses = await asyncio.gather(*(client.execute({"seconds": 0.2}) for _ in range(20)))
        took = asyncio.get_running_loop().time() - started
    assert all(r.status_code == 200 for r in responses)
    assert took < 2.0  # 20 x 0.2 s run together, not one after another


# -- deadlines and overload protection -------------------------------------------------------------

finished = {"finally": 0, "thread_done": 0}


async def _sleeps_past_its_deadline(input: dict[str, Any]) -> Any:
    try:
        await asyncio.sleep(5)
    finally:
        finished["finally"] += 1


def _sleeps_in_a_thread(input: dict[str, Any]) -> Any:
    import time

    time.sleep(0.3)
    finished["thread_done"] += 1
    return {}


@pytest.mark.parametrize("deadline_ms", [50, 200])
async def test_deadline_answers_408_in_time_and_cancels_the_task(deadline_ms: int) -> None:
    tool = create_tool(
        metadata={"name": "sleeper", "version": "1.0.0", "description": "d", "capabilities": ["x"]},
        execute=_sleeps_past_its_deadline,
        timeout_ms=deadline_ms,
    )
    before = finished["finally"]
    async with serving(tool) as client:
        started = asyncio.get_running_loop().time()
        response = await client.execute({})
        took_ms = (asyncio.get_running_loop().time() - started) * 1000
    assert response.status_code == 408
    assert response.error_code == "TIMEOUT_ERROR"
    assert response.json["error_details"] == {"timeout_ms": deadline_ms}
    assert deadline_ms <= took_ms < deadline_ms + 100
    assert finished["finally"] == before + 1  # the task was cancelled: its finally block ran


async def test_a_sync_execute_times_out_but_its_thread_runs_on() -> None:
    tool = create_tool(
        metadata={"name": "blocks", "version": "1.0.0", "description": "d", "capabilities": ["x"]},
        execute=_sleeps_in_a_thread,
        timeout_ms=50,
    )
    before = finished["thread_done"]
    async with serving(tool) as client:
        response = await client.execute({})
        assert response.status_code == 408
        assert finished["thread_done"] == before  # answered before the thread finished
        await asyncio.sleep(0.4)
    assert finished["thread_done"] == before + 1  # threads cannot be cancelled (see README)


async def test_ten_times_the_limit_at_once_sheds_the_excess_with_503() -> None:
    limit = 10
    async with serving(slow.tool, max_concurrent_executions=limit, queue_size=0) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def timed() -> tuple[ToolResponse, float]:
            response = await client.execute({"seconds": 0.3})
            return response, loop.time() - started

        outcomes = await asyncio.gather(*(timed() for _ in range(limit * 10)))
        health = (await client.get("/health")).json
    ok = [r for r, _ in outcomes if r.status_code == 200]
    shed = [(r, t) for r, t in outcomes if r.status_code == 503]
    assert len(ok) == limit
    assert len(shed) == limit * 9
    assert all(t < 0.1 for _, t in shed)  # refused at once, not after waiting for a slot
    response = shed[0][0]
    assert response.error_code == "OVERLOADED"
    assert response.json["retryable"] is True
    assert response.json["retry_after_ms"] == 1000
    assert response.headers["retry-after"] == "1"
    assert health["requests"]["rejected_overloaded"] == limit * 9
    assert health["requests"]["in_flight"] == 0
    concurrency = slow.tool.get_metrics().concurrency
    assert concurrency is not None
    assert {key: concurrency[key] for key in ("in_flight", "limit", "queued", "queue_size")} == {
        "in_flight": 0,
        "limit": limit,
        "queued": 0,
        "queue_size": 0,
    }
    assert concurrency["rejected"] == limit * 9


@pytest.mark.parametrize(
    ("requests", "queue_size", "queue_timeout_ms", "ok"),
    [
        (4, 2, 2000, 4),  # two run, two wait their turn
        (6, 2, 2000, 4),  # the queue holds two: the other two are refused at once
        (4, 2, 10, 2),  # the waiters give up after 10 ms
    ],
)
async def test_a_short_bounded_queue_absorbs_bursts(
    requests: int, queue_size: int, queue_timeout_ms: int, ok: int
) -> None:
    async with serving(
        slow.tool,
        max_concurrent_executions=2,
        queue_size=queue_size,
        queue_timeout_ms=queue_timeout_ms,
    ) as client:
        responses = await asyncio.gather(
            *(client.execute({"seconds": 0.1}) for _ in range(requests))
        )
        concurrency = slow.tool.get_metrics().concurrency
    assert sum(r.status_code == 200 for r in responses) == ok
    assert sum(r.error_code == "OVERLOADED" for r in responses) == requests - ok
    assert concurrency is not None
    assert concurrency["in_flight"] == 0
    assert concurrency["queued"] == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"input_data": {"city": 1e400}}', "a number is too large for a 64-bit float"),
        (
            b'{"input_data": {"city": "x"}, "metadata": {"n": -1e400}}',
            "a number is too large for a 64-bit float",
        ),
        (b'{"input_data": {"city": "\\ud83d"}}', "lacks its other half"),
        (b'{"input_data": {"city": "\\ud83d x"}}', "lacks its other half"),
        (b'{"input_data": {"city": "x"', "Input data was truncated"),
    ],
)
async def test_json_a_float_or_utf_16_cannot_hold_is_named_as_such(
    body: bytes, reason: str
) -> None:
    async with serving(weather.tool) as client:
        response = await execute(client, body)
        paired = await execute(client, b'{"input_data": {"city": "\\ud83d\\ude00"}}')
    assert response.status_code == 400
    assert response.error_code == "INVALID_JSON"
    message = response.error_message or ""
    assert message.startswith("Request body is not valid JSON: ")
    assert reason in message
    assert paired.output_data is not None  # a whole pair is a character like any other
    assert paired.output_data["city"] == "\U0001f600"


# -- what cannot be stopped, and what looks like a success -------------------------------------


def _blocking(seconds: float, timeout_ms: int) -> Tool:
    async def execute(input: dict[str, Any]) -> dict[str, Any]:
        time.sleep(seconds)  # noqa: ASYNC251 - blocks the loop: the deadline cannot cancel it
        return {"slept": seconds}

    return create_tool(
        metadata={"name": "blocker", "version": "1.0.0", "description": "Blocks the loop"},
        execute=execute,
        timeout_ms=timeout_ms,
    )


async def test_an_async_execute_blocking_past_its_deadline_is_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = ServerSettings(diagnostics=False)
    async with AsyncToolTestClient(_blocking(0.3, 100), settings) as client:
        late = await client.execute({})
        metrics = (await client.get("/metrics")).json
    assert late.status_code == 200  # the work is done: its answer is kept, and reported
    assert metrics["concurrency"]["deadline_overruns"] == {"sync": 0, "async": 1}
    [warning] = [
        r.getMessage() for r in caplog.records if "past its 100 ms deadline" in r.getMessage()
    ]
    assert warning.startswith("tool 'blocker': an execution ran ")
    assert "blocked the event loop" in warning


async def test_an_execution_within_its_deadline_is_no_overrun() -> None:
    async with AsyncToolTestClient(_blocking(0.0, 1000), ServerSettings()) as client:
        await client.execute({})
        metrics = (await client.get("/metrics")).json
    assert metrics["concurrency"]["deadline_overruns"] == {"sync": 0, "async": 0}


@pytest.mark.parametrize(("debug", "warned"), [(True, 1), (False, 0)])
async def test_returning_none_warns_once_in_debug_as_ai_spine_dev_runs(
    debug: bool, warned: int, caplog: pytest.LogCaptureFixture
) -> None:
    async def execute(input: dict[str, Any]) -> None:
        input.get("city")  # forgot to return it

    made = create_tool(
        metadata={"name": "forgetful", "version": "1.0.0", "description": "Returns nothing"},
        execute=execute,
    )
    async with AsyncToolTestClient(made, ServerSettings(debug=debug)) as client:
        answers = [await client.execute({}) for _ in range(2)]
    assert [a.output_data for a in answers] == [{}, {}]
    logged = [r.getMessage() for r in caplog.records if "execute returned None" in r.getMessage()]
    assert len(logged) == warned
