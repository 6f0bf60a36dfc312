"""``ai_spine_tools.cache``: memory, Redis and both in layers; time is injected, Redis is real."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ai_spine_tools.cache import CacheError, MemoryCache, MultiLevelCache, RedisCache
from redisproc import closed_port, shared_redis, throwaway_redis, unique_prefix


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def redis_cache() -> AsyncIterator[RedisCache]:
    cache = RedisCache(shared_redis(), key_prefix=unique_prefix())
    try:
        yield cache
    finally:
        await cache.clear()
        await cache.close()


def unreachable() -> RedisCache:
    """A RedisCache pointed at a port nothing listens on."""
    return RedisCache(f"redis://127.0.0.1:{closed_port()}/0", command_timeout=0.5, retry_delay=0.01)


# -- MemoryCache ----------------------------------------------------------------------------------


async def test_memory_returns_what_was_stored_and_none_when_absent() -> None:
    cache = MemoryCache()
    await cache.set("a", {"x": [1, 2]})
    assert await cache.get("a") == {"x": [1, 2]}
    assert await cache.get("missing") is None


@pytest.mark.parametrize(
    ("ttl", "elapsed", "alive"),
    [
        (10.0, 9.9, True),
        (10.0, 10.0, False),
        (10.0, 60.0, False),
        (None, 299.0, True),  # the default TTL, 300 s
        (None, 300.0, False),
        (0, 10**9, True),  # 0 means no expiry
    ],
)
async def test_memory_entry_lives_for_its_ttl(
    clock: Clock, ttl: float | None, elapsed: float, alive: bool
) -> None:
    cache = MemoryCache(default_ttl=300, clock=clock)
    await cache.set("k", "v", ttl)
    clock.advance(elapsed)
    assert (await cache.get("k") == "v") is alive
    assert ("k" in cache) is alive


async def test_memory_without_default_ttl_keeps_entries(clock: Clock) -> None:
    cache = MemoryCache(default_ttl=None, clock=clock)
    await cache.set("k", "v")
    clock.advance(10**8)
    assert await cache.get("k") == "v"
    assert cache.remaining_ttl("k") == float("inf")


async def test_memory_evicts_the_least_recently_used_key_at_max_keys(clock: Clock) -> None:
    cache = MemoryCache(max_keys=3, clock=clock)
    for key in "abc":
        await cache.set(key, key.upper())
    assert await cache.get("a") == "A"  # a is now the most recently used
    await cache.set("d", "D")
    assert await cache.get("b") is None
    assert [await cache.get(key) for key in "acd"] == ["A", "C", "D"]
    assert len(cache) == 3
    assert cache.evictions == 1


async def test_memory_overwriting_a_key_does_not_evict(clock: Clock) -> None:
    cache = MemoryCache(max_keys=2, clock=clock)
    await cache.set("a", 1)
    await cache.set("b", 2)
    await cache.set("a", 3)
    assert (await cache.get("a"), await cache.get("b"), cache.evictions) == (3, 2, 0)


async def test_memory_dropping_an_expired_key_for_room_is_an_expiration(clock: Clock) -> None:
    cache = MemoryCache(max_keys=1, clock=clock)
    await cache.set("old", 1, ttl=5)
    clock.advance(6)
    await cache.set("new", 2)
    stats = cache.stats()
    assert (stats["evictions"], stats["expirations"], stats["keys"]) == (0, 1, 1)


async def test_memory_delete_and_delete_prefix() -> None:
    cache = MemoryCache()
    for key in ("user:1", "user:2", "user:10", "order:1"):
        await cache.set(key, key)
    assert await cache.delete("order:1") is True
    assert await cache.delete("order:1") is False
    assert await cache.delete_prefix("user:1") == 2
    assert [await cache.get(k) for k in ("user:1", "user:2", "user:10")] == [None, "user:2", None]
    await cache.clear()
    assert len(cache) == 0


async def test_memory_stats_count_hits_and_misses() -> None:
    cache = MemoryCache()
    await cache.set("a", 1)
    for key in ("a", "a", "a", "b"):
        await cache.get(key)
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (3, 1, 0.75)


@pytest.mark.parametrize(
    "options",
    [{"max_keys": 0}, {"max_keys": 1.5}, {"default_ttl": -1}],
)
def test_memory_refuses_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MemoryCache(**options)


async def test_memory_refuses_a_negative_ttl() -> None:
    with pytest.raises(ValueError, match="ttl"):
        await MemoryCache().set("k", 1, ttl=-1)


# -- RedisCache -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"city": "Madrid", "temperature": 21.5, "tags": ["a", "b"], "nested": {"ok": True}},
        [1, "two", 3.0, None],
        "text with ünïcode",
        42,
        0.0,
        False,
    ],
)
async def test_redis_round_trips_json_values(redis_cache: RedisCache, value: Any) -> None:
    await redis_cache.set("value", value, ttl=60)
    assert await redis_cache.get("value") == value


async def test_redis_applies_the_ttl(redis_cache: RedisCache) -> None:
    await redis_cache.set("short", 1, ttl=30)
    await redis_cache.set("forever", 1, ttl=0)
    value, left = await redis_cache.get_with_ttl("short")
    assert value == 1
    assert left is not None
    assert 25 < left <= 30
    assert await redis_cache.get_with_ttl("forever") == (1, None)
    assert await redis_cache.get_with_ttl("absent") == (None, None)


async def test_redis_add_stores_only_when_absent(redis_cache: RedisCache) -> None:
    assert await redis_cache.add("once", "first", ttl=30) is True
    assert await redis_cache.add("once", "second", ttl=30) is False
    value, left = await redis_cache.get_with_ttl("once")
    assert value == "first"
    assert left is not None
    assert 25 < left <= 30
    with pytest.raises(ValueError, match="ttl"):
        await redis_cache.add("forever", 1, ttl=0)
    assert await redis_cache.get("forever") is None


async def test_redis_delete_prefix_removes_only_matching_keys(redis_cache: RedisCache) -> None:
    for key in ("a*b:1", "a*b:2", "axb:1", "other"):
        await redis_cache.set(key, key, ttl=60)
    assert await redis_cache.delete_prefix("a*b:") == 2  # glob characters match literally
    assert await redis_cache.get("axb:1") == "axb:1"
    assert await redis_cache.delete("other") is True
    assert await redis_cache.delete("other") is False


async def test_redis_clear_stays_within_its_prefix(redis_cache: RedisCache) -> None:
    neighbour = RedisCache(shared_redis(), key_prefix=unique_prefix())
    try:
        await neighbour.set("mine", 1, ttl=60)
        await redis_cache.set("yours", 1, ttl=60)
        await redis_cache.clear()
        assert await redis_cache.get("yours") is None
        assert await neighbour.get("mine") == 1
    finally:
        await neighbour.clear()
        await neighbour.close()


async def test_redis_get_reads_the_stored_json_with_the_given_decoder(
    redis_cache: RedisCache, caplog: pytest.LogCaptureFixture
) -> None:
    entry = msgspec.json.Decoder(tuple[float, msgspec.Raw]).decode
    await redis_cache.set("entry", [1.5, {"b": 1, "a": [2]}], ttl=60)
    await redis_cache.set("other", {"not": "an entry"}, ttl=60)
    stamp, output = await redis_cache.get("entry", decode=entry)
    assert (stamp, bytes(output)) == (1.5, b'{"b":1,"a":[2]}')  # the stored bytes, as they are
    value, left = await redis_cache.get_with_ttl("entry", decode=entry)
    assert value[0] == 1.5
    assert left is not None
    with caplog.at_level(logging.WARNING, logger="ai_spine_tools.cache"):
        assert await redis_cache.get("other", decode=entry) is None  # rejected: a miss
    assert "cannot be read" in caplog.text
    assert (redis_cache.hits, redis_cache.misses) == (2, 1)


async def test_redis_waits_for_a_connection_only_while_all_are_in_use() -> None:
    cache = RedisCache(shared_redis(), key_prefix=unique_prefix(), max_connections=1)
    cache.pool.timeout = 0.2  # the wait for a free connection (command_timeout, 1 s, for the rest)
    try:
        await cache.set("k", "v", ttl=60)
        # 50 concurrent reads share the one connection: each waits for the one before it.
        assert await asyncio.gather(*(cache.get("k") for _ in range(50))) == ["v"] * 50

        async def hold() -> Any:
            return await cache.client.blpop([cache.key_prefix + "empty"], timeout=0.5)

        held = asyncio.create_task(hold())
        await asyncio.sleep(0.05)  # BLPOP holds the only connection for half a second
        with pytest.raises(CacheError, match="No connection available"):
            await cache.get("k")
        assert await held is None
        assert await cache.get("k") == "v"  # the connection is back, and free
    finally:
        await cache.clear()
        await cache.close()


async def test_the_redis_pool_leans_on_what_this_redis_py_has() -> None:
    """WaitingPool builds on redis-py internals: a redis-py that moves them fails here."""
    from ai_spine_tools.cache._redispool import WaitingPool, pool_class

    assert pool_class() is WaitingPool
    cache = RedisCache(shared_redis(), key_prefix=unique_prefix())
    try:
        assert type(cache.pool) is WaitingPool
    finally:
        await cache.close()


async def test_redis_failure_raises_cache_error() -> None:
    cache = unreachable()
    with pytest.raises(CacheError, match="Redis GET failed"):
        await cache.get("k")
    with pytest.raises(CacheError):
        await cache.set("k", 1)
    with pytest.raises(CacheError):
        await cache.add("k", 1, ttl=1)
    assert cache.errors == 3
    await cache.close()


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        ({"REDIS_URL": "redis://cache.internal:6380/2"}, "redis://cache.internal:6380/2"),
        ({"REDIS_HOST": "cache.internal"}, "redis://cache.internal:6379/0"),
        ({"REDIS_HOST": "cache.internal", "REDIS_PORT": "7000"}, "redis://cache.internal:7000/0"),
    ],
)
def test_redis_from_env_reads_the_variables(environ: dict[str, str], url: str) -> None:
    shared_redis()  # the package must be there to make a client
    cache = RedisCache.from_env(
        {
            **environ,
            "REDIS_MAX_CONNECTIONS": "4",
            "REDIS_COMMAND_TIMEOUT": "250",
            "REDIS_RETRY_DELAY": "50",
            "AI_SPINE_REDIS_PREFIX": "svc:",
        }
    )
    assert cache is not None
    assert (cache.url, cache.max_connections, cache.command_timeout) == (url, 4, 0.25)
    assert (cache.retry_delay, cache.key_prefix) == (0.05, "svc:")
    assert cache.pool.max_connections == 4


def test_redis_from_env_without_variables_is_none() -> None:
    assert RedisCache.from_env({}) is None


def test_redis_repr_hides_the_password() -> None:
    shared_redis()
    cache = RedisCache("redis://user:s3cret@cache.internal:6379/0")
    assert "s3cret" not in repr(cache)


# -- MultiLevelCache ------------------------------------------------------------------------------


@pytest.fixture
async def two_instances(clock: Clock) -> AsyncIterator[tuple[MultiLevelCache, MultiLevelCache]]:
    """Two instances' caches: their own memory, one shared Redis prefix."""
    prefix = unique_prefix()
    url = shared_redis()
    a, b = (
        MultiLevelCache(
            MemoryCache(clock=clock),
            RedisCache(url, key_prefix=prefix),
            backfill_ttl=60,
            clock=clock,
        )
        for _ in range(2)
    )
    yield a, b
    await a.clear()
    await a.close()
    await b.close()


async def test_multilevel_reads_l2_and_backfills_l1_for_a_shorter_time(
    two_instances: tuple[MultiLevelCache, MultiLevelCache], clock: Clock
) -> None:
    a, b = two_instances
    await a.set("forecast:madrid", {"temperature": 21.5}, ttl=600)
    assert await b.get("forecast:madrid") == {"temperature": 21.5}  # from Redis
    assert b.l1.remaining_ttl("forecast:madrid") == 60  # back-filled for backfill_ttl
    assert await b.get("forecast:madrid") == {"temperature": 21.5}  # from memory
    clock.advance(61)
    assert await b.get("forecast:madrid") == {"temperature": 21.5}  # memory expired: Redis
    stats = b.stats()
    assert (stats["l1"]["hits"], stats["l2"]["hits"], stats["hits"]) == (1, 2, 3)
    assert stats["misses"] == 0
    assert stats["hit_rate"] == 1.0


async def test_multilevel_backfill_never_outlives_the_l2_entry(
    two_instances: tuple[MultiLevelCache, MultiLevelCache],
) -> None:
    a, b = two_instances
    await a.set("soon", 1, ttl=5)
    assert await b.get("soon") == 1
    left = b.l1.remaining_ttl("soon")
    assert left is not None
    assert left <= 5


async def test_multilevel_caps_the_memory_ttl_of_writes(clock: Clock) -> None:
    cache = MultiLevelCache(MemoryCache(clock=clock), None, l1_ttl=300, clock=clock)
    await cache.set("long", 1, ttl=3600)
    await cache.set("short", 1, ttl=10)
    assert (cache.l1.remaining_ttl("long"), cache.l1.remaining_ttl("short")) == (300, 10)


async def test_multilevel_with_l1_ttl_0_keeps_nothing_in_memory(
    two_instances: tuple[MultiLevelCache, MultiLevelCache],
) -> None:
    a, b = two_instances
    for cache in (a, b):
        cache.l1_ttl = cache.backfill_ttl = 0
    await a.set("forecast:oslo", {"temperature": -3}, ttl=600)
    assert await b.get("forecast:oslo") == {"temperature": -3}  # from Redis
    assert await b.get("forecast:oslo") == {"temperature": -3}  # from Redis again
    assert (len(a.l1), len(b.l1)) == (0, 0)  # 0 never means "no expiry" here
    assert await a.delete("forecast:oslo") is True
    assert await b.get("forecast:oslo") is None  # seen at once by the other instance
    assert b.stats()["l2"]["hits"] == 2


async def test_multilevel_without_l2_keeps_values_in_memory_whatever_l1_ttl(clock: Clock) -> None:
    cache = MultiLevelCache(MemoryCache(clock=clock), None, l1_ttl=0, clock=clock)
    await cache.set("only", 1, ttl=30)
    assert cache.l1.remaining_ttl("only") == 30  # memory is the only level
    assert await cache.get("only") == 1


async def test_multilevel_serves_from_memory_when_redis_is_unreachable(clock: Clock) -> None:
    cache = MultiLevelCache(MemoryCache(clock=clock), unreachable(), clock=clock)
    await cache.set("k", "v", ttl=60)  # no exception: Redis failed, memory has it
    assert await cache.get("k") == "v"
    clock.advance(10)
    assert await cache.get("absent") is None
    stats = cache.stats()
    assert stats["degraded"] is True
    assert stats["redis_errors"] == 2
    assert "Redis" in str(stats["l2"]["last_error"])
    assert await cache.check() == "degraded"
    await cache.close()


async def test_multilevel_skips_redis_while_backing_off(clock: Clock) -> None:
    cache = MultiLevelCache(
        MemoryCache(clock=clock), unreachable(), retry_delay=1.0, max_retry_delay=4.0, clock=clock
    )
    await cache.get("a")  # fails: next try in 1 s
    for _ in range(5):
        await cache.get("a")
    assert (cache.l2_errors, cache.l2_skipped) == (1, 5)
    clock.advance(1.0)
    await cache.get("a")  # one probe, fails again: next try in 2 s
    clock.advance(1.0)
    await cache.get("a")
    assert (cache.l2_errors, cache.l2_skipped) == (2, 6)
    await cache.close()


async def test_multilevel_logs_a_failing_redis_once_per_interval(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    cache = MultiLevelCache(
        MemoryCache(clock=clock), unreachable(), retry_delay=0.1, log_interval=60, clock=clock
    )
    with caplog.at_level(logging.WARNING, logger="ai_spine_tools.cache"):
        for _ in range(5):
            await cache.get("k")
            clock.advance(5)  # past the back-off, within the interval
        clock.advance(60)
        await cache.get("k")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert cache.l2_errors == 6
    assert len(warnings) == 2
    await cache.close()


async def test_multilevel_invalidation_raises_when_redis_is_unreachable(clock: Clock) -> None:
    cache = MultiLevelCache(MemoryCache(clock=clock), unreachable(), clock=clock)
    await cache.set("k", 1)
    with pytest.raises(CacheError):
        await cache.delete("k")
    assert cache.l1.get_nowait("k") is None  # memory was cleared all the same
    with pytest.raises(CacheError):
        await cache.delete_prefix("k")
    await cache.close()


async def test_multilevel_uses_redis_again_once_it_is_back(tmp_path: Path, clock: Clock) -> None:
    with throwaway_redis(tmp_path) as server:
        l2 = RedisCache(server.url, command_timeout=0.5, retry_delay=0.01)
        cache = MultiLevelCache(MemoryCache(clock=clock), l2, retry_delay=1.0, clock=clock)
        try:
            await cache.set("before", 1, ttl=60)
            server.kill()
            await cache.set("during", 2, ttl=60)
            assert cache.degraded
            assert await cache.get("during") == 2  # memory still answers
            server.start()
            await cache.set("skipped", 3, ttl=60)  # still backing off: memory only
            clock.advance(1.0)
            await cache.set("after", 4, ttl=60)
            assert not cache.degraded
            assert await l2.get("after") == 4
            assert await l2.get("skipped") is None
            assert await l2.get("before") is None  # the killed server kept nothing
        finally:
            await cache.close()


async def test_multilevel_without_redis_settings_is_memory_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("REDIS_URL", "REDIS_HOST"):
        monkeypatch.delenv(name, raising=False)
    cache = MultiLevelCache()
    await cache.set("k", 1)
    assert await cache.get("k") == 1
    assert (cache.l2, cache.stats()["backend"], await cache.check()) == (None, "memory", "memory")


async def test_multilevel_like_the_guide_takes_redis_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", shared_redis())
    monkeypatch.setenv("AI_SPINE_REDIS_PREFIX", unique_prefix())
    cache = MultiLevelCache()
    other = MultiLevelCache()
    try:
        await cache.set("tool:weather:madrid", {"status": "success"}, 600)
        assert await other.get("tool:weather:madrid") == {"status": "success"}
        assert cache.stats()["backend"] == "memory+redis"
        assert await cache.check() == "ok"
    finally:
        await cache.clear()
        await cache.close()
        await other.close()


def test_without_the_redis_package_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ai_spine_tools import create_tool
    from ai_spine_tools._settings import ServerSettings
    from ai_spine_tools.exceptions import ServerConfigurationError
    from ai_spine_tools.server._app import ToolApp

    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError, match=r"ai-spine-tools\[redis\]"):
        RedisCache("redis://127.0.0.1:6379/0")
    made = create_tool(metadata={"name": "t", "version": "1.0.0", "description": "d"}, execute=dict)
    with pytest.raises(ServerConfigurationError, match="REDIS_URL"):
        ToolApp(made, ServerSettings(redis_url="redis://127.0.0.1:6379/0"))
