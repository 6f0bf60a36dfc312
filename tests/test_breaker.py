"""Circuit breakers: the state machine on an injected clock, the three ways to use one, the
context's per-tool breakers, their place in /health and metrics, and state shared through Redis."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ai_spine_tools import (
    CircuitBreaker,
    CircuitOpenError,
    ExecutionError,
    ServiceUnavailableError,
    ToolContext,
    ValidationError,
    create_tool,
    string_field,
)
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.server._app import create_app
from ai_spine_tools.server._inprocess import InProcessApp


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state_of(breaker: CircuitBreaker) -> str:
    return breaker.state  # read anew each time (mypy would narrow a repeated attribute read)


class DependencyDownError(Exception):
    pass


async def fail() -> None:
    raise DependencyDownError("down")


async def succeed() -> str:
    return "ok"


async def test_opens_after_n_failures_rejects_fast_half_opens_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, 30.0, 1, clock=clock)
    for _ in range(2):
        with pytest.raises(DependencyDownError):
            await breaker.call(fail)
    assert state_of(breaker) == "closed"
    with pytest.raises(DependencyDownError):
        await breaker.call(fail)
    assert state_of(breaker) == "open"

    calls = 0

    async def counted() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(counted)
    assert calls == 0  # rejected without touching the dependency
    assert caught.value.status == 503
    assert caught.value.retryable is True
    assert caught.value.retry_after_ms == 30_000
    assert caught.value.to_dict()["error_code"] == "CIRCUIT_OPEN"

    clock.now += 29.0
    assert state_of(breaker) == "open"
    assert breaker.retry_after_ms() == 1000
    clock.now += 1.0
    assert state_of(breaker) == "half_open"
    assert await breaker.call(counted) == "ok"
    assert state_of(breaker) == "closed"
    assert calls == 1
    assert breaker.stats()["opened"] == 1


async def test_a_failing_trial_call_reopens() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    with pytest.raises(DependencyDownError):
        await breaker.call(fail)
    clock.now += 5.0
    with pytest.raises(DependencyDownError):
        await breaker.call(fail)
    assert state_of(breaker) == "open"
    assert breaker.retry_after_ms() == 5000


async def test_half_open_lets_only_max_calls_through_at_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 1.0, 2, clock=clock)
    with pytest.raises(DependencyDownError):
        await breaker.call(fail)
    clock.now += 1.0
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "ok"

    trials = [asyncio.create_task(breaker.call(slow)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):
        await breaker.call(succeed)
    release.set()
    assert await asyncio.gather(*trials) == ["ok", "ok"]
    assert state_of(breaker) == "closed"  # two trial successes close it


async def test_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(2, 1.0, clock=Clock())
    for _ in range(5):
        with pytest.raises(DependencyDownError):
            await breaker.call(fail)
        await breaker.call(succeed)
    assert state_of(breaker) == "closed"


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (DependencyDownError("down"), True),
        (ServiceUnavailableError("upstream 503"), True),
        (ExecutionError("boom"), True),
        (ValidationError([]), False),
        (KeyError("not the dependency's fault"), False),
    ],
)
async def test_only_dependency_failures_count(error: Exception, counts: bool) -> None:
    breaker = CircuitBreaker(1, 10.0, clock=Clock(), exclude=(KeyError,))

    async def raise_it() -> None:
        raise error

    with pytest.raises(type(error)):
        await breaker.call(raise_it)
    assert (breaker.state == "open") is counts


async def test_failure_types_narrow_what_counts() -> None:
    breaker = CircuitBreaker(1, 10.0, clock=Clock(), failure_types=(ConnectionError,))
    with pytest.raises(DependencyDownError):
        await breaker.call(fail)
    assert state_of(breaker) == "closed"

    async def refused() -> None:
        raise ConnectionRefusedError

    with pytest.raises(ConnectionRefusedError):
        await breaker.call(refused)
    assert state_of(breaker) == "open"


async def test_context_manager_and_decorator_forms() -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 10.0, clock=clock)

    @breaker
    async def fetch(value: int) -> int:
        if value < 0:
            raise DependencyDownError
        return value * 2

    assert await fetch(2) == 4
    with pytest.raises(DependencyDownError):
        async with breaker:
            raise DependencyDownError
    with pytest.raises(DependencyDownError):
        await fetch(-1)
    assert state_of(breaker) == "open"
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pytest.fail("an open circuit must not run the block")
    with pytest.raises(CircuitOpenError):
        await fetch(1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"recovery_timeout": -1}, "recovery_timeout"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(**options)


async def test_a_call_cut_off_by_the_deadline_counts_as_a_failure() -> None:
    async def hang(input: dict[str, Any], config: dict[str, Any], context: ToolContext) -> Any:
        async with context.breaker("slow-api", failure_threshold=1):
            await asyncio.sleep(5)

    tool = create_tool(
        metadata={"name": "hangs", "version": "1.0.0", "description": "d", "capabilities": ["x"]},
        execute=hang,
        timeout_ms=50,
    )
    result = await tool.run({})
    assert result.error_code == "TIMEOUT_ERROR"
    assert tool.breakers.get("slow-api").state == "open"


# -- through the server --------------------------------------------------------------------------

state = {"up": False}


async def weather(input: dict[str, Any], config: dict[str, Any], context: ToolContext) -> Any:
    async with context.breaker("weather-api", failure_threshold=2, recovery_timeout=60):
        if not state["up"]:
            raise ConnectionError("weather-api refused the connection")
        return {"city": input["city"]}


breaker_tool = create_tool(
    metadata={
        "name": "breaker-tool",
        "version": "1.0.0",
        "description": "Calls a flaky dependency",
        "capabilities": ["weather.current"],
    },
    schema={"input": {"city": string_field(required=True, max_length=20)}},
    execute=weather,
)


async def test_open_circuit_is_a_fast_503_shown_in_health_and_metrics() -> None:
    state["up"] = False
    client = InProcessApp(create_app(breaker_tool, ServerSettings()))
    await client.start()
    try:

        async def call(body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
            response = await client.request(
                "POST",
                "/api/execute",
                body=json.dumps(body).encode(),
                headers=[("content-type", "application/json")],
            )
            return response.status, json.loads(response.body), response.headers

        for _ in range(3):  # validation errors never reach the breaker
            status, body, _ = await call({"input_data": {"city": "x" * 50}})
            assert body["error_code"] == "VALIDATION_ERROR"
        assert "weather-api" not in breaker_tool.breakers  # nothing reached the dependency
        for _ in range(2):  # the dependency refuses: a retryable 503, as any unreachable one
            status, body, _ = await call({"input_data": {"city": "Oslo"}})
            assert (status, body["error_code"]) == (503, "UPSTREAM_UNAVAILABLE")
        status, body, headers = await call({"input_data": {"city": "Oslo"}})
        assert status == 503
        assert body["error_code"] == "CIRCUIT_OPEN"
        assert body["retryable"] is True
        assert 0 < body["retry_after_ms"] <= 60_000
        assert headers["retry-after"] == "60"

        health = json.loads((await client.request("GET", "/health")).body)
        assert health["status"] == "degraded"
        assert health["breakers"]["weather-api"]["state"] == "open"
        metrics = json.loads((await client.request("GET", "/metrics")).body)
        assert metrics["breakers"]["weather-api"]["state"] == "open"
        assert metrics["breakers"]["weather-api"]["rejected"] >= 1
        assert breaker_tool.get_metrics().breakers["weather-api"]["failures"] == 2
    finally:
        await client.stop()


# -- shared through Redis ------------------------------------------------------------------------

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis_client() -> AsyncIterator[Any]:
    redis = pytest.importorskip("redis.asyncio")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        if os.environ.get("AI_SPINE_REQUIRE_SERVICES") == "1":
            raise
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    yield client
    await client.aclose()


async def test_redis_shares_the_open_state_between_instances(redis_client: Any) -> None:
    name = f"shared-{uuid.uuid4().hex[:8]}"
    clock = Clock()
    one = CircuitBreaker(2, 30.0, name=name, redis=redis_client, clock=clock, sync_interval=0)
    two = CircuitBreaker(2, 30.0, name=name, redis=redis_client, clock=clock, sync_interval=0)
    try:
        with pytest.raises(DependencyDownError):
            await one.call(fail)
        with pytest.raises(DependencyDownError):
            await two.call(fail)  # the second failure overall: the shared count reaches 2
        assert state_of(two) == "open"
        with pytest.raises(CircuitOpenError) as caught:
            await one.call(succeed)  # instance one learns it from Redis
        assert 0 < (caught.value.retry_after_ms or 0) <= 30_000
        assert one.stats()["shared"] is True
        fields = await redis_client.hgetall(f"ai-spine:breaker:{name}")
        assert int(fields[b"open_until"]) > 0
    finally:
        await redis_client.delete(f"ai-spine:breaker:{name}")


async def test_redis_down_leaves_the_local_breaker_working() -> None:
    pytest.importorskip("redis")
    breaker = CircuitBreaker(1, 30.0, redis="redis://127.0.0.1:1/0", clock=Clock(), sync_interval=0)
    with pytest.raises(DependencyDownError):
        await breaker.call(fail)
    assert state_of(breaker) == "open"
