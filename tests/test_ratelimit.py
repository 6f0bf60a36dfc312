"""Rate limits: per key in memory, shared through real Redis, and the fallback when it fails."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ai_spine_tools.cache import RedisCache
from ai_spine_tools.security._ratelimit import RateLimiter
from redisproc import closed_port, shared_redis, throwaway_redis, unique_prefix


class Clock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def shared_prefix() -> AsyncIterator[str]:
    prefix = unique_prefix()
    yield prefix
    cleaner = RedisCache(shared_redis(), key_prefix=prefix)
    await cleaner.clear()
    await cleaner.close()


async def test_memory_limit_counts_each_key_on_its_own() -> None:
    limiter = RateLimiter("3/minute")
    decisions = [await limiter.hit("alice") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert (await limiter.hit("bob")).allowed
    assert limiter.status() == "local"


@pytest.mark.parametrize(("limit", "extra"), [(5, 1), (8, 4)])
async def test_redis_limit_holds_across_limiters(
    shared_prefix: str, limit: int, extra: int
) -> None:
    caches = [RedisCache(shared_redis(), key_prefix=shared_prefix) for _ in range(2)]
    limiters = [RateLimiter(f"{limit}/minute", redis=cache) for cache in caches]
    try:
        decisions = [await limiters[n % 2].hit("ip:10.0.0.1") for n in range(limit + extra)]
        assert [limiter.status() for limiter in limiters] == ["shared", "shared"]
    finally:
        for cache in caches:
            await cache.close()
    assert sum(not d.allowed for d in decisions) == extra
    assert all(d.allowed for d in decisions[:limit])


async def test_falls_back_to_this_process_when_redis_is_unreachable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared_redis()
    clock = Clock()
    cache = RedisCache(f"redis://127.0.0.1:{closed_port()}/0", command_timeout=0.3)
    limiter = RateLimiter("3/minute", redis=cache, retry_delay=1.0, clock=clock)
    decisions = []
    with caplog.at_level(logging.WARNING, logger="ai_spine_tools.server"):
        for _ in range(5):
            decisions.append(await limiter.hit("key:1"))
            clock.now += 2.0  # past the longest back-off: each request tries Redis again
    await cache.close()
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert (limiter.status(), limiter.degraded, limiter.errors) == ("degraded", True, 5)
    assert len([r for r in caplog.records if "fall back" in r.getMessage()]) == 1


async def test_returns_to_redis_once_it_answers_again(tmp_path: Path) -> None:
    clock = Clock()
    with throwaway_redis(tmp_path) as server:
        cache = RedisCache(server.url, command_timeout=0.5, retry_delay=0.01)
        limiter = RateLimiter("2/minute", redis=cache, retry_delay=1.0, clock=clock)
        assert (await limiter.hit("k")).allowed
        server.kill()
        assert (await limiter.hit("k")).allowed  # counted in memory now
        assert limiter.status() == "degraded"
        server.start()
        clock.now += 1.0
        try:
            allowed = [(await limiter.hit("k")).allowed for _ in range(3)]
            assert limiter.status() == "shared"
        finally:
            await cache.close()
    assert allowed == [True, True, False]  # Redis again, counting afresh as it restarted empty
