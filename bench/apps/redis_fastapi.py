"""The ``redis_l2`` workload in FastAPI: the same key read with redis-py (hiredis), as usual."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import redis.asyncio as redis
from fastapi import FastAPI, Header, Response

from bench.apps._common import REDIS_CONNECTIONS, REDIS_PREFIX, REDIS_URL, result_key
from bench.apps._fastapi import (
    CacheBlock,
    CachedSuccess,
    WeatherEnvelope,
    add_health,
    cached_success,
    check_key,
)


class Clients:
    """The app's clients, opened in the lifespan."""

    redis: redis.Redis


clients = Clients()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the Redis pool and close it at shutdown."""
    pool = redis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=REDIS_CONNECTIONS)
    clients.redis = redis.Redis(connection_pool=pool)
    yield
    await clients.redis.aclose()


app = FastAPI(lifespan=lifespan)
add_health(app)


@app.post("/api/execute")
async def execute(
    envelope: WeatherEnvelope,
    response: Response,
    x_api_key: Annotated[str | None, Header()] = None,
) -> CachedSuccess:
    """Answer with the cached result of the request."""
    check_key(x_api_key)
    started = time.perf_counter()
    data = envelope.input_data
    key = result_key(data.city, data.units)
    raw = await clients.redis.get(REDIS_PREFIX + key)
    if raw is None:
        raise LookupError(f"{key} is not in Redis: the benchmark did not fill it")
    stored_at, output, _ = json.loads(raw)
    age_ms = round(max(0.0, (time.time() - stored_at) * 1000.0), 3)
    return cached_success(response, output, started, CacheBlock(hit=True, key=key, age_ms=age_ms))
