"""The services the workloads call, set up by the benchmark and left as it found them.

- the upstream JSON API: a process of its own for the length of the workload;
- PostgreSQL: the ``ai_spine_bench`` database (``BENCH_DATABASE_URL``) and its ``bench_users``
  table, created and filled when absent, kept for the next run; nothing else is touched;
- Redis: database ``BENCH_REDIS_DB`` (13) under a prefix of this run's own, filled with results
  before the workload and emptied of those keys after it (they expire in 10 minutes anyway).

A service that cannot be reached raises ``ServiceMissingError``: the workload is skipped, with
the reason.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from bench.harness import API_KEY, App, Probe, Server

UPSTREAM = App("upstream", "bench.apps.upstream:app")
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/ai_spine_bench"
)
USERS = 10_000
POOL_SIZE = 10
REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('BENCH_REDIS_DB', '13')}"


class ServiceMissingError(Exception):
    """A service a workload needs cannot be reached."""


@contextmanager
def upstream() -> Iterator[dict[str, str]]:
    """Serve the upstream API; yield the environment that points the apps at it."""
    server = Server(UPSTREAM, Probe(None, "/weather?q=Madrid"))
    try:
        yield {"BENCH_UPSTREAM_URL": server.url}
    finally:
        server.stop()


@contextmanager
def postgres() -> Iterator[dict[str, str]]:
    """Make sure the benchmark's table is there and full; yield the apps' database settings."""
    try:
        asyncio.run(_prepare_database(DATABASE_URL))
    except OSError as exc:
        raise ServiceMissingError(f"PostgreSQL is unreachable ({exc})") from exc
    size = str(POOL_SIZE)
    yield {"DATABASE_URL": DATABASE_URL, "DB_POOL_MIN": size, "DB_POOL_MAX": size}


async def _prepare_database(url: str) -> None:
    import asyncpg

    server, _, name = url.rpartition("/")
    admin = await asyncpg.connect(f"{server}/postgres", timeout=5)
    try:
        # Another run (a test, say) may be preparing at the same moment: take turns.
        await admin.execute("SELECT pg_advisory_lock(hashtext('ai-spine-bench'))")
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name}"')
        connection = await asyncpg.connect(url, timeout=5)
        try:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS bench_users (id integer PRIMARY KEY, "
                "name text NOT NULL, city text NOT NULL, score integer NOT NULL)"
            )
            await connection.execute(
                "INSERT INTO bench_users SELECT i, 'user ' || i, "
                "(ARRAY['Madrid', 'Lisbon', 'Paris', 'Berlin', 'Rome', 'Oslo'])[1 + i % 6], "
                "(i * 37) % 1000 FROM generate_series(1, $1) AS i ON CONFLICT (id) DO NOTHING",
                USERS,
            )
        finally:
            await connection.close()
    finally:
        await admin.close()  # and with it the advisory lock


@contextmanager
def redis_results(ours: App, bodies: list[bytes]) -> Iterator[dict[str, str]]:
    """Fill Redis with ours' results of ``bodies``, computed by a server of its own that then
    stops, so the servers measured hold none in memory; yield the apps' Redis settings."""
    import redis

    env = {"REDIS_URL": REDIS_URL, "AI_SPINE_REDIS_PREFIX": f"ai-spine-bench:{os.getpid()}:"}
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        client.close()
        raise ServiceMissingError(f"Redis is unreachable ({exc})") from exc
    try:
        _fill(ours, bodies, env)
        stored = sum(1 for _ in client.scan_iter(f"{env['AI_SPINE_REDIS_PREFIX']}result:*"))
        if stored != len(set(bodies)):
            raise RuntimeError(f"Redis holds {stored} results, not {len(set(bodies))}")
        yield env
    finally:
        own = list(client.scan_iter(env["AI_SPINE_REDIS_PREFIX"] + "*", count=1000))
        for start in range(0, len(own), 500):
            client.unlink(*own[start : start + 500])
        client.close()


def _fill(ours: App, bodies: list[bytes], env: dict[str, str]) -> None:
    server = Server(ours, Probe(bodies[0]), env)
    headers = {"content-type": "application/json", "x-api-key": API_KEY}
    try:
        with httpx.Client(base_url=server.url, headers=headers) as client:
            for body in bodies:
                client.post("/api/execute", content=body).raise_for_status()
    finally:
        server.stop()
