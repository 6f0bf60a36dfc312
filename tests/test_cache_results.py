"""Result caching in the server: keys, HIT/MISS, bypass, stampede protection, invalidation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from ai_spine_tools import (
    ToolContext,
    ToolError,
    api_key_field,
    boolean_field,
    create_tool,
    enum_field,
    string_field,
    tool,
)
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.cache import CacheOptions, MultiLevelCache
from ai_spine_tools.exceptions import ToolDefinitionError
from ai_spine_tools.testing import AsyncToolTestClient
from redisproc import closed_port, shared_redis, unique_prefix

Execute = Callable[[dict[str, Any], dict[str, Any], ToolContext], Awaitable[Any]]


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def counting_tool(
    *,
    cache: Any = True,
    config: dict[str, Any] | None = None,
    delay: float = 0.0,
    fail: bool = False,
) -> tuple[Any, list[dict[str, Any]]]:
    """A weather-like tool recording each run (input and flags) in the returned list."""
    runs: list[dict[str, Any]] = []

    async def execute(input: dict[str, Any], cfg: dict[str, Any], context: ToolContext) -> Any:
        runs.append({"input": dict(input), "no_cache": context.flags.no_cache})
        if delay:
            await asyncio.sleep(delay)
        if fail:
            raise ToolError("upstream down", code="UPSTREAM_DOWN", status=503, retryable=True)
        return {"city": input["city"], "units": input["units"], "run": len(runs)}

    made = create_tool(
        metadata={"name": "weather-cached", "version": "2.0.0", "description": "Cached weather"},
        schema={
            "input": {
                "city": string_field(required=True, max_length=100),
                "units": enum_field(["celsius", "fahrenheit"], default="celsius"),
            },
            "config": config or {},
        },
        execute=execute,
        cache=cache,
    )
    return made, runs


def client(made: Any, **settings: Any) -> AsyncToolTestClient:
    return AsyncToolTestClient(made, ServerSettings(**settings))


async def test_second_identical_request_is_a_hit() -> None:
    made, runs = counting_tool(cache={"ttl": 600})
    async with client(made) as c:
        first = await c.execute({"city": "Madrid"})
        second = await c.execute({"city": "Madrid"})
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert (
        first.output_data == second.output_data == {"city": "Madrid", "units": "celsius", "run": 1}
    )
    assert first.json["cache"]["hit"] is False
    assert first.json["cache"]["age_ms"] == 0.0
    assert second.json["cache"]["hit"] is True
    assert second.json["cache"]["key"] == first.json["cache"]["key"]
    assert second.json["cache"]["age_ms"] >= 0.0
    assert second.json["execution_id"] != first.json["execution_id"]
    assert len(runs) == 1


async def test_key_is_tool_version_and_hash_of_the_validated_input() -> None:
    made, runs = counting_tool()
    async with client(made) as c:
        implicit = await c.execute({"city": "Madrid"})
        explicit = await c.execute({"city": "Madrid", "units": "celsius"})  # the default
        other = await c.execute({"city": "Madrid", "units": "fahrenheit"})
    key = implicit.json["cache"]["key"]
    assert key.startswith("result:weather-cached:2.0.0:")
    assert len(key.rsplit(":", 1)[1]) == 64  # sha256
    assert explicit.headers["X-Cache"] == "HIT"
    assert other.headers["X-Cache"] == "MISS"
    assert key == made.cache.key({"city": "Madrid"})
    assert len(runs) == 2


@pytest.mark.parametrize(
    ("vary_config", "shared"),
    [(None, False), (["api_key"], False), ([], True)],
)
async def test_config_fields_in_the_key_only_as_a_hash(
    vary_config: list[str] | None, shared: bool
) -> None:
    made, runs = counting_tool(
        cache={"ttl": 60, "vary_config": vary_config},
        config={"api_key": api_key_field(required=True, overridable=True)},
    )
    async with client(made) as c:
        alice = await c.execute({"city": "Oslo"}, {"api_key": "alice-key-123456"})
        bob = await c.execute({"city": "Oslo"}, {"api_key": "bob-key-654321"})
    assert bob.headers["X-Cache"] == ("HIT" if shared else "MISS")
    assert len(runs) == (1 if shared else 2)
    for response in (alice, bob):
        assert "key-" not in response.text  # the secret never shows, the key is a hash


async def test_errors_are_not_cached() -> None:
    made, runs = counting_tool(fail=True)
    async with client(made) as c:
        first = await c.execute({"city": "Lima"})
        second = await c.execute({"city": "Lima"})
    assert (first.status_code, second.status_code) == (503, 503)
    assert second.error_code == "UPSTREAM_DOWN"
    assert "X-Cache" not in second.headers
    assert len(runs) == 2
    assert made.cache.stats()["results"]["stored"] == 0


async def test_output_json_cannot_hold_is_an_error_and_not_cached() -> None:
    async def execute(input: dict[str, Any]) -> Any:
        return {"value": object()}

    made = create_tool(
        metadata={"name": "odd", "version": "1.0.0", "description": "Returns junk"},
        schema={"input": {}},
        execute=execute,
        cache=True,
    )
    async with client(made) as c:
        response = await c.execute({})
    assert response.status_code == 500
    assert response.error_code == "OUTPUT_NOT_SERIALIZABLE"
    assert response.json["error_details"]["path"] == "output_data.value"
    assert made.cache.stats()["results"]["stored"] == 0


@pytest.mark.parametrize("toggle", ["cache_enabled", "cacheEnabled"])
async def test_cache_enabled_config_field_switches_caching_per_request(toggle: str) -> None:
    made, runs = counting_tool(
        config={toggle: boolean_field(default=True, overridable=True)},
    )
    async with client(made) as c:
        off = [await c.execute({"city": "Rome"}, {toggle: False}) for _ in range(2)]
        on = [await c.execute({"city": "Rome"}, {toggle: True}) for _ in range(2)]
    assert all("X-Cache" not in r.headers and "cache" not in r.json for r in off)
    assert [r.headers["X-Cache"] for r in on] == ["MISS", "HIT"]
    assert len(runs) == 3
    assert on[0].json["cache"]["key"] == made.cache.key({"city": "Rome"}, {toggle: False})


@pytest.mark.parametrize(
    ("headers", "metadata", "ran", "refreshed"),
    [
        ({"Cache-Control": "no-cache"}, None, True, True),
        ({"Cache-Control": "max-age=0, no-cache"}, None, True, True),
        ({"Pragma": "no-cache"}, None, True, True),
        ({"Cache-Control": "no-store"}, None, True, False),
        (None, {"cache_control": "no-cache"}, True, True),
        (None, {"cache_control": "no-store"}, True, False),
        ({"Cache-Control": "max-age=60"}, None, False, False),
        (None, {"cache_control": 1}, False, False),
    ],
)
async def test_caller_can_bypass_the_cache(
    headers: dict[str, str] | None, metadata: dict[str, Any] | None, ran: bool, refreshed: bool
) -> None:
    made, runs = counting_tool()
    async with client(made) as c:
        await c.execute({"city": "Kyiv"})
        response = await c.execute({"city": "Kyiv"}, headers=headers, metadata=metadata)
        after = await c.execute({"city": "Kyiv"})
    assert response.headers["X-Cache"] == ("MISS" if ran else "HIT")
    assert len(runs) == (2 if ran else 1)
    if ran:
        assert runs[-1]["no_cache"] is True  # the tool sees context.flags.no_cache
    assert after.headers["X-Cache"] == "HIT"
    assert after.output_data is not None
    assert after.output_data["run"] == (2 if refreshed else 1)


async def test_200_concurrent_identical_requests_run_the_tool_once() -> None:
    made, runs = counting_tool(delay=0.05)
    async with client(made) as c:
        responses = await asyncio.gather(*(c.execute({"city": "Lagos"}) for _ in range(200)))
    assert len(runs) == 1
    assert all(r.status_code == 200 for r in responses)
    assert {r.output_data["run"] for r in responses if r.output_data} == {1}
    assert sorted(r.headers["X-Cache"] for r in responses) == ["HIT"] * 199 + ["MISS"]
    stats = made.cache.stats()["results"]
    assert (stats["misses"], stats["hits"], stats["coalesced"], stats["in_flight"]) == (
        1,
        199,
        199,
        0,
    )


async def test_a_failure_reaches_every_waiter_and_is_not_cached() -> None:
    made, runs = counting_tool(delay=0.05, fail=True)
    async with client(made) as c:
        responses = await asyncio.gather(*(c.execute({"city": "Quito"}) for _ in range(50)))
        again = await c.execute({"city": "Quito"})
    assert len(runs) == 2  # once for the 50, once more afterwards
    assert {r.error_code for r in [*responses, again]} == {"UPSTREAM_DOWN"}


async def test_waiters_compute_it_themselves_when_the_first_request_is_cancelled() -> None:
    made, runs = counting_tool(delay=0.2)
    async with client(made) as c:
        first = asyncio.create_task(c.execute({"city": "Baku"}))
        await asyncio.sleep(0.02)
        follower = asyncio.create_task(c.execute({"city": "Baku"}))
        await asyncio.sleep(0.02)
        first.cancel()
        response = await follower
    assert response.status_code == 200
    assert len(runs) == 2


async def test_ttl_expiry_uses_the_injected_clock() -> None:
    clock = Clock()
    made, runs = counting_tool(cache={"ttl": 30, "clock": clock})
    async with client(made) as c:
        await c.execute({"city": "Pune"})
        clock.now += 29
        assert (await c.execute({"city": "Pune"})).headers["X-Cache"] == "HIT"
        clock.now += 1
        assert (await c.execute({"city": "Pune"})).headers["X-Cache"] == "MISS"
    assert len(runs) == 2


async def test_server_default_ttl_applies_without_an_explicit_one() -> None:
    clock = Clock()
    made, _ = counting_tool(cache={"clock": clock})
    async with client(made, cache_ttl_s=5) as c:
        await c.execute({"city": "Cork"})
        clock.now += 5
        assert (await c.execute({"city": "Cork"})).headers["X-Cache"] == "MISS"
    assert made.cache.ttl == 5


async def test_least_recently_used_result_is_evicted_at_max_keys() -> None:
    made, runs = counting_tool(cache={"max_keys": 2})
    async with client(made) as c:
        for city in ("A", "B", "A", "C"):  # C evicts B, the least recently used
            await c.execute({"city": city})
        hits = [(await c.execute({"city": city})).headers["X-Cache"] for city in ("A", "C", "B")]
    assert hits == ["HIT", "HIT", "MISS"]
    assert made.cache.stats()["l1"]["evictions"] == 2
    assert len(runs) == 4


async def test_invalidation_by_input_prefix_and_all() -> None:
    made, runs = counting_tool()
    async with client(made) as c:
        for city in ("Paris", "Porto", "Perth"):
            await c.execute({"city": city})
        assert await made.cache.invalidate({"city": "Paris", "units": "celsius"}) is True
        assert await made.cache.invalidate({"city": "Paris"}) is False
        assert (await c.execute({"city": "Paris"})).headers["X-Cache"] == "MISS"
        assert (await c.execute({"city": "Porto"})).headers["X-Cache"] == "HIT"
        assert await made.cache.invalidate_all() == 3
        assert (await c.execute({"city": "Porto"})).headers["X-Cache"] == "MISS"
        assert await made.cache.invalidate_prefix("result:weather-cached:2.0.0:") == 1
    assert len(runs) == 5


async def test_context_cache_works_like_the_guides_multilevel_cache() -> None:
    async def execute(input: dict[str, Any], config: dict[str, Any], context: ToolContext) -> Any:
        key = f"tool:{context.tool_id}:{input['q']}"
        cached = await context.cache.get(key)
        if cached is not None:
            return {**cached, "cache": "hit"}
        await context.cache.set(key, {"answer": input["q"].upper()}, 600)
        return {"answer": input["q"].upper(), "cache": "miss"}

    made = create_tool(
        metadata={"name": "manual", "version": "1.0.0", "description": "Caches by hand"},
        schema={"input": {"q": string_field(required=True)}},
        execute=execute,
    )
    async with client(made) as c:
        first = await c.execute({"q": "abc"})
        second = await c.execute({"q": "abc"})
    assert (first.output_data, second.output_data) == (
        {"answer": "ABC", "cache": "miss"},
        {"answer": "ABC", "cache": "hit"},
    )
    assert "X-Cache" not in second.headers  # result caching itself is off
    assert await made.cache.get("tool:manual:abc") == {"answer": "ABC"}
    assert made.get_metrics().cache is not None


async def test_metrics_report_cache_statistics() -> None:
    made, _ = counting_tool()
    async with client(made) as c:
        for _ in range(4):
            await c.execute({"city": "Nairobi"})
        metrics = (await c.get("/metrics")).json
    cache = metrics["cache"]
    assert cache["results"]["hits"] == 3
    assert cache["results"]["misses"] == 1
    assert cache["results"]["hit_rate"] == 0.75
    assert cache["l1"]["hits"] == 3
    assert cache["redis_errors"] == 0
    assert cache["l2"] is None
    assert made.get_metrics().cache == made.cache.stats()


async def test_uncached_tool_answers_without_cache_header_or_block() -> None:
    made, runs = counting_tool(cache=None)
    async with client(made) as c:
        responses = [await c.execute({"city": "Tunis"}) for _ in range(2)]
    assert all("X-Cache" not in r.headers and "cache" not in r.json for r in responses)
    assert len(runs) == 2


async def test_decorator_takes_cache() -> None:
    @tool(name="shout", cache={"ttl": 60})
    async def shout(text: str) -> dict[str, str]:
        """Shout the text."""
        return {"text": text.upper()}

    async with client(shout) as c:
        responses = [await c.execute({"text": "hi"}) for _ in range(2)]
    assert [r.headers["X-Cache"] for r in responses] == ["MISS", "HIT"]
    assert shout.cache.options == CacheOptions(ttl=60)


@pytest.mark.parametrize(
    ("cache", "message"),
    [
        ("yes", "cache must be True"),
        ({"ttl": -1}, "ttl"),
        ({"ttl": "10"}, "ttl"),
        ({"max_keys": 0}, "max_keys"),
        ({"vary_config": "api_key"}, "vary_config"),
        ({"vary_config": ["nope"]}, "nope"),
        ({"size": 10}, "size"),
    ],
)
def test_bad_cache_options_are_refused(cache: Any, message: str) -> None:
    with pytest.raises(ToolDefinitionError, match=message):
        counting_tool(cache=cache)


async def test_unreachable_redis_degrades_health_but_requests_succeed() -> None:
    shared_redis()
    made, runs = counting_tool()
    settings = {
        "redis_url": f"redis://127.0.0.1:{closed_port()}/0",
        "redis_command_timeout_ms": 300,
        "redis_prefix": unique_prefix(),
    }
    async with client(made, **settings) as c:
        first = await c.execute({"city": "Dakar"})
        second = await c.execute({"city": "Dakar"})
        health = await c.get("/health")
        ready = await c.get("/ready")
        assert made.cache.stats()["redis_errors"] >= 1
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.headers["X-Cache"] == "HIT"  # from this process's memory
    assert health.status_code == 200
    assert health.json["status"] == "degraded"
    assert health.json["checks"]["cache"]["status"] == "degraded"
    assert health.json["checks"]["cache"]["redis_errors"] >= 1
    assert ready.status_code == 200
    assert made.cache.store is made.cache.memory  # detached again at shutdown
    assert len(runs) == 1


async def test_with_redis_a_result_is_shared_between_apps() -> None:
    settings = {"redis_url": shared_redis(), "redis_prefix": unique_prefix()}
    a, runs_a = counting_tool()
    b, runs_b = counting_tool()
    async with client(a, **settings) as ca, client(b, **settings) as cb:
        first = await ca.execute({"city": "Accra"})
        second = await cb.execute({"city": "Accra"})
        health = await cb.get("/health")
        assert isinstance(b.cache.store, MultiLevelCache)
        assert await a.cache.invalidate_all() == 1
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert second.output_data == first.output_data
    assert (len(runs_a), len(runs_b)) == (1, 0)
    assert health.json["status"] == "healthy"
    assert health.json["checks"]["cache"] == {"status": "ok", "backend": "memory+redis"}


@pytest.mark.parametrize(("l1_ttl", "after_invalidation"), [(0, "MISS"), (60, "HIT")])
async def test_with_l1_ttl_0_an_invalidation_on_one_app_is_seen_at_once_by_the_other(
    l1_ttl: float, after_invalidation: str
) -> None:
    settings = {"redis_url": shared_redis(), "redis_prefix": unique_prefix()}
    a, runs_a = counting_tool(cache={"ttl": 600, "l1_ttl": l1_ttl})
    b, runs_b = counting_tool(cache={"ttl": 600, "l1_ttl": l1_ttl})
    body = b'{"input_data": {"city": "Accra"}}'
    async with client(a, **settings) as ca, client(b, **settings) as cb:
        first = await ca.post("/api/execute", content=body)
        hits = [await cb.post("/api/execute", content=body) for _ in range(3)]  # from Redis
        assert await a.cache.invalidate({"city": "Accra"}) is True
        again = await cb.post("/api/execute", content=body)  # the same bytes: remembered
        again_by_input = await cb.execute({"city": "Accra"})
        stats = b.cache.stats()
        kept = (len(a.cache.memory), len(b.cache.memory))
        await a.cache.invalidate_all()
    assert first.headers["X-Cache"] == "MISS"
    assert [r.headers["X-Cache"] for r in hits] == ["HIT"] * 3
    assert hits[2].output_data == first.output_data
    assert again.headers["X-Cache"] == after_invalidation  # with 60 s, B's memory is stale
    assert again_by_input.headers["X-Cache"] == "HIT"
    if l1_ttl == 0:
        assert kept == (0, 0)  # no result was kept in either app's memory
        assert (len(runs_a), len(runs_b)) == (1, 1)  # B ran it again, after the invalidation
        assert stats["l2"]["hits"] == 4  # every hit was read from Redis
        # The remembered body missed, then its lookup by key: two misses overall.
        assert (stats["hits"], stats["misses"], stats["l1"]["misses"]) == (4, 2, 0)
        assert stats["results"]["hits"] == 4
    else:
        assert (len(runs_a), len(runs_b)) == (1, 0)


async def test_with_l1_ttl_0_and_no_redis_results_stay_in_memory() -> None:
    made, runs = counting_tool(cache={"ttl": 600, "l1_ttl": 0})
    async with client(made) as c:
        replies = [await c.execute({"city": "Cusco"}) for _ in range(2)]
    assert [r.headers["X-Cache"] for r in replies] == ["MISS", "HIT"]
    assert len(runs) == 1
    assert made.cache.in_memory is True


async def test_a_result_read_from_redis_is_sent_as_stored() -> None:
    settings = {"redis_url": shared_redis(), "redis_prefix": unique_prefix()}
    made, _ = counting_tool(cache={"ttl": 600, "l1_ttl": 0})
    async with client(made, **settings) as c:
        first = await c.execute({"city": "Lagos"})
        key = first.json["cache"]["key"]
        redis = made.cache.store.l2
        # An entry written by another instance, its output bytes spelled their own way.
        await redis.client.set(
            settings["redis_prefix"] + key,
            b'[1700000000.5, {"city" : "Lagos",  "run": 1.50}, {"source": "elsewhere"}]',
        )
        hit = await c.execute({"city": "Lagos"})
    assert hit.headers["X-Cache"] == "HIT"
    assert b'"output_data":{"city" : "Lagos",  "run": 1.50}' in hit.content
    assert hit.json["metadata"] == {"source": "elsewhere"}


@pytest.mark.parametrize(("cache", "documented"), [(True, True), (None, False)])
async def test_schema_documents_the_cache_block_when_results_are_cached(
    cache: Any, documented: bool
) -> None:
    made, _ = counting_tool(cache=cache)
    async with client(made) as c:
        schema = (await c.get("/schema")).json
    success = schema["components"]["schemas"]["Success"]["properties"]
    assert ("cache" in success) is documented


def test_a_streaming_tool_refuses_result_caching() -> None:
    async def execute(input: dict[str, Any]) -> AsyncIterator[dict[str, int]]:
        yield {"n": 1}

    with pytest.raises(ToolDefinitionError, match="streaming"):
        create_tool(
            metadata={"name": "s", "version": "1.0.0", "description": "Streams"},
            execute=execute,
            cache=True,
        )


async def test_the_same_body_again_is_answered_without_running_or_revalidating() -> None:
    made, runs = counting_tool(cache={"ttl": 600})
    body = b'{"input_data": {"city": "Quito"}}'
    async with client(made) as c:
        replies = [await c.post("/api/execute", content=body) for _ in range(3)]
    assert [r.headers["X-Cache"] for r in replies] == ["MISS", "HIT", "HIT"]
    assert len(runs) == 1
    assert len({r.execution_id for r in replies}) == 3  # each answer has its own id
    assert replies[2].output_data == replies[0].output_data
    assert replies[2].json["cache"]["key"] == replies[0].json["cache"]["key"]


async def test_a_remembered_body_echoes_the_execution_id_it_carries() -> None:
    made, _ = counting_tool(cache={"ttl": 600})
    body = b'{"input_data": {"city": "Lima"}, "execution_id": "mine-1"}'
    async with client(made) as c:
        await c.post("/api/execute", content=body)
        again = await c.post("/api/execute", content=body)
    assert again.headers["X-Cache"] == "HIT"
    assert again.execution_id == "mine-1"


async def test_a_remembered_body_still_honours_no_cache() -> None:
    made, runs = counting_tool(cache={"ttl": 600})
    body = b'{"input_data": {"city": "Bogota"}}'
    async with client(made) as c:
        await c.post("/api/execute", content=body)
        fresh = await c.post("/api/execute", content=body, headers={"Cache-Control": "no-cache"})
    assert fresh.headers["X-Cache"] == "MISS"
    assert len(runs) == 2


async def test_a_remembered_body_misses_once_its_result_expires_or_is_invalidated() -> None:
    clock = Clock()
    made, runs = counting_tool(cache={"ttl": 10, "clock": clock})
    body = b'{"input_data": {"city": "Caracas"}}'
    async with client(made) as c:
        await c.post("/api/execute", content=body)
        clock.now += 11
        expired = await c.post("/api/execute", content=body)
        await made.cache.invalidate({"city": "Caracas", "units": "celsius"})
        invalidated = await c.post("/api/execute", content=body)
    assert (expired.headers["X-Cache"], invalidated.headers["X-Cache"]) == ("MISS", "MISS")
    assert len(runs) == 3


async def test_a_body_that_fails_validation_is_never_remembered() -> None:
    made, runs = counting_tool(cache={"ttl": 600})
    body = b'{"input_data": {"city": 5}}'
    async with client(made) as c:
        replies = [await c.post("/api/execute", content=body) for _ in range(2)]
    assert [r.status_code for r in replies] == [400, 400]
    assert runs == []
