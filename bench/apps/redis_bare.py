"""The ``redis_l2`` yardstick: bare ASGI + msgspec + redis-py's asyncio client (hiredis parser).

It reads the key ours caches the result under (one ``GET`` on a pooled connection, as many
connections as ours may use) and sends the cached output back as ours sends a hit.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import redis.asyncio as redis

from bench.apps._bare import Answer, CacheBlock, WeatherEnvelope, bare_app
from bench.apps._common import REDIS_CONNECTIONS, REDIS_PREFIX, REDIS_URL, result_key


class Entry(msgspec.Struct, array_like=True):
    """A cached result as ours stores it: ``[stored_at, output, metadata]``."""

    stored_at: float
    output: msgspec.Raw  # sent on as it is, never decoded
    metadata: Any


class Clients:
    """The app's clients, opened at start-up."""

    redis: redis.Redis


clients = Clients()
decoder = msgspec.json.Decoder(WeatherEnvelope)
entry_decoder = msgspec.json.Decoder(Entry)


async def execute(body: bytes) -> Answer:
    """Answer with the cached result of the request (a miss fails: it would be a bench bug)."""
    data = decoder.decode(body).input_data
    key = result_key(data.city, data.units)
    raw = await clients.redis.get(REDIS_PREFIX + key)
    if raw is None:
        raise LookupError(f"{key} is not in Redis: the benchmark did not fill it")
    entry = entry_decoder.decode(raw)
    age_ms = round(max(0.0, (time.time() - entry.stored_at) * 1000.0), 3)
    return Answer(entry.output, CacheBlock(hit=True, key=key, age_ms=age_ms))


async def startup() -> None:
    pool = redis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=REDIS_CONNECTIONS)
    clients.redis = redis.Redis(connection_pool=pool)


async def shutdown() -> None:
    await clients.redis.aclose()


app = bare_app(execute, startup=startup, shutdown=shutdown)
