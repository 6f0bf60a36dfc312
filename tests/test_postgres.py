"""``PostgresPool`` and the database example, against the real PostgreSQL at 127.0.0.1:5432:
sizing from the environment, pool figures, 500 concurrent requests on 10 connections without a
leak, and a database that goes away and comes back (through a TCP proxy we stop and start)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ai_spine_tools import CircuitOpenError, ServerConfigurationError, ServiceUnavailableError
from ai_spine_tools.postgres import PostgresPool
from ai_spine_tools.testing._http1 import HTTP1Pool
from serverproc import EXAMPLES, free_port, running_server

try:
    import asyncpg
except ImportError:  # the [postgres] extra (part of [dev])
    if os.environ.get("AI_SPINE_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip(
        "asyncpg is not installed: pip install 'ai-spine-tools[postgres]'", allow_module_level=True
    )

ADMIN_DSN = os.environ.get("AI_SPINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
APP_NAME = "ai-spine-database-example"


@dataclass
class Database:
    """A throwaway schema with a ``users`` table; ``dsn`` selects it (via ``search_path``)."""

    schema: str
    port: int = 5432

    def dsn(self, port: int | None = None) -> str:
        return f"postgresql://postgres@127.0.0.1:{port or self.port}/test?search_path={self.schema}"


async def _reachable() -> str | None:
    try:
        connection = await asyncpg.connect(ADMIN_DSN, timeout=3)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    problem = await _reachable()
    if problem is not None:
        if os.environ.get("AI_SPINE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL is required but not reachable at {ADMIN_DSN}: {problem}")
        pytest.skip(f"PostgreSQL is not reachable at {ADMIN_DSN}: {problem}")
    schema = f"ai_spine_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        await admin.execute(
            f"CREATE TABLE {schema}.users (id serial PRIMARY KEY, name text, city text)"
        )
        await admin.executemany(
            f"INSERT INTO {schema}.users (name, city) VALUES ($1, $2)",
            [(f"user-{i}", ("Madrid", "Oslo", "Lima")[i % 3]) for i in range(30)],
        )
        yield Database(schema)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


async def _example_connections() -> int:
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        count: int = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", APP_NAME
        )
        return count
    finally:
        await admin.close()


# -- the pool on its own -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"DATABASE_URL": "postgresql://h/db"}, (5, 20, 30.0)),
        (
            {
                "DATABASE_URL": "postgresql://h/db",
                "DB_POOL_MIN": "2",
                "DB_POOL_MAX": "10",
                "DB_POOL_IDLE_TIMEOUT": "1500",
            },
            (2, 10, 1.5),
        ),
    ],
)
def test_from_env_sizes_the_pool(environ: dict[str, str], expected: tuple[int, int, float]) -> None:
    pool = PostgresPool.from_env(environ)
    assert (pool.min_size, pool.max_size, pool.idle_timeout) == expected
    assert pool.dsn == "postgresql://h/db"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://h/db", "DB_POOL_MAX": "many"}, "DB_POOL_MAX"),
        ({"DATABASE_URL": "postgresql://h/db", "DB_POOL_MIN": "-1"}, "DB_POOL_MIN"),
        ({"DATABASE_URL": "postgresql://h/db", "DB_POOL_MIN": "9", "DB_POOL_MAX": "3"}, "min 9"),
    ],
)
def test_from_env_names_a_bad_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ServerConfigurationError, match=variable):
        PostgresPool.from_env(environ)


async def test_pool_lends_connections_and_reports_figures(database: Database) -> None:
    async with PostgresPool(database.dsn(), min_size=2, max_size=4, name="pg-figures") as pool:
        assert await pool.fetchval("SELECT count(*) FROM users WHERE city = $1", "Oslo") == 10
        async with pool.acquire() as connection:
            assert await connection.fetchval("SELECT 1") == 1
            assert pool.stats()["in_use"] == 1
        rows = await asyncio.gather(*(pool.fetch("SELECT pg_sleep(0.02)") for _ in range(12)))
        assert len(rows) == 12
        stats = pool.stats()
        assert stats["state"] == "up"
        assert stats["in_use"] == 0
        assert stats["waiting"] == 0
        assert 2 <= stats["size"] <= 4
        assert stats["idle"] == stats["size"]
        assert stats["acquired"] == 14
        assert stats["acquire_wait_ms"]["max"] > 0  # 12 queries on 4 connections had to wait
        assert (await pool.check())["ready"] is True
    assert pool.stats()["size"] == 0


async def test_sql_errors_do_not_count_against_the_database(database: Database) -> None:
    async with PostgresPool(database.dsn(), min_size=1, max_size=2) as pool:
        for _ in range(3):
            with pytest.raises(asyncpg.UndefinedTableError):
                await pool.fetch("SELECT * FROM no_such_table")
        assert pool.breaker.state == "closed"
        assert await pool.fetchval("SELECT 1") == 1


async def test_an_unreachable_database_fails_fast_and_retryably() -> None:
    pool = PostgresPool(f"postgresql://postgres@127.0.0.1:{free_port()}/test", min_size=1)
    await pool.open()  # does not raise: the server may start and report itself not ready
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as first:
        await pool.fetchval("SELECT 1")
    with pytest.raises(CircuitOpenError) as second:
        await pool.fetchval("SELECT 1")
    assert time.monotonic() - started < 1.0
    assert first.value.retryable
    assert second.value.retryable
    assert first.value.status == second.value.status == 503
    health = await pool.check()
    assert health["ready"] is False
    assert health["postgres"]["state"] == "down"
    await pool.close()
    with pytest.raises(ServiceUnavailableError):
        await PostgresPool(f"postgresql://127.0.0.1:{free_port()}/x").open(require=True)


async def test_no_free_connection_within_acquire_timeout_is_a_retryable_503(
    database: Database,
) -> None:
    async with PostgresPool(database.dsn(), min_size=1, max_size=1, acquire_timeout=0.2) as pool:
        async with pool.acquire():
            started = time.monotonic()
            with pytest.raises(ServiceUnavailableError, match=r"free within 0\.2 s") as raised:
                await pool.fetchval("SELECT 1")
            assert 0.15 < time.monotonic() - started < 2.0
            assert pool.stats()["waiting"] == 0
        assert raised.value.retryable
        assert raised.value.status == 503
        assert await pool.fetchval("SELECT 2") == 2  # the place went back, the pool is up
        stats = pool.stats()
    assert stats["acquire_timeouts"] == 1
    assert stats["breaker"] == "closed"  # a busy pool is not a database outage
    assert (stats["in_use"], stats["waiting"], stats["acquired"]) == (0, 0, 2)
    assert stats["acquire_wait_ms"]["max"] >= 150


async def test_callers_queued_for_a_connection_are_served_in_turn(database: Database) -> None:
    async with PostgresPool(database.dsn(), min_size=2, max_size=2) as pool:
        order: list[int] = []

        async def call(n: int) -> None:
            if n % 2:
                await pool.fetchval("SELECT pg_sleep(0.01)")
                return
            async with pool.acquire() as connection:
                order.append(n)  # the order connections are lent in
                await connection.fetchval("SELECT pg_sleep(0.01)")

        tasks = [asyncio.create_task(call(n)) for n in range(20)]
        await asyncio.sleep(0)  # all twenty asked: two hold a connection, eighteen queue
        assert (pool.stats()["in_use"], pool.stats()["waiting"]) == (2, 18)
        await asyncio.gather(*tasks)
        stats = pool.stats()
    assert order == list(range(0, 20, 2))  # first come, first served
    assert (stats["in_use"], stats["waiting"], stats["acquired"]) == (0, 0, 20)
    assert stats["acquire_wait_ms"]["max"] > 0


async def test_a_caller_cancelled_while_queued_leaves_no_place_taken(database: Database) -> None:
    async with PostgresPool(database.dsn(), min_size=1, max_size=1) as pool:
        async with pool.acquire():
            queued = asyncio.create_task(pool.fetchval("SELECT 1"))
            await asyncio.sleep(0.05)
            assert pool.stats()["waiting"] == 1
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
        assert await asyncio.wait_for(pool.fetchval("SELECT 3"), 5) == 3
        stats = pool.stats()
    assert (stats["in_use"], stats["waiting"], stats["acquired"]) == (0, 0, 2)


async def _last_statement(pid: int) -> str:
    """What the backend ``pid`` ran last, as PostgreSQL itself reports it."""
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        query: str = await admin.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid)
        return query
    finally:
        await admin.close()


async def test_a_plain_read_skips_the_reset_query_and_acquire_does_not(database: Database) -> None:
    async with PostgresPool(database.dsn(), min_size=1, max_size=1) as pool:
        pid = await pool.fetchval("SELECT pg_backend_pid()")
        assert await _last_statement(pid) == "SELECT pg_backend_pid()"
        assert await pool.fetchval("SELECT count(*) FROM users WHERE city = $1", "Lima") == 10
        assert await _last_statement(pid) == "SELECT count(*) FROM users WHERE city = $1"
        async with pool.acquire() as connection:
            assert await connection.fetchval("SELECT pg_backend_pid()") == pid
        assert "RESET ALL" in await _last_statement(pid)
    async with PostgresPool(database.dsn(), min_size=1, max_size=1, reset="always") as pool:
        pid = await pool.fetchval("SELECT pg_backend_pid()")
        assert "RESET ALL" in await _last_statement(pid)


@pytest.mark.parametrize(
    ("change", "method"),
    [
        ("SET application_name = 'leaked'", "execute"),
        ("SELECT set_config('application_name', 'leaked', false)", "fetchval"),
        ("select pg_catalog.set_config('application_name', 'leaked', false)", "fetchval"),
        ("SELECT leak_setting()", "fetchval"),  # a function of the schema's, not a built-in
        ("SELECT 1; SET application_name = 'leaked'", "execute"),  # two statements at once
    ],
)
async def test_a_statement_that_changes_the_session_is_followed_by_the_reset(
    database: Database, change: str, method: str
) -> None:
    async with PostgresPool(database.dsn(), min_size=1, max_size=1) as pool:
        await pool.execute(
            "CREATE FUNCTION leak_setting() RETURNS text LANGUAGE sql "
            "AS $$ SELECT set_config('application_name', 'leaked', false) $$"
        )
        await getattr(pool, method)(change)
        assert await pool.fetchval("SELECT current_setting('application_name')") != "leaked"


async def test_a_session_advisory_lock_is_released_with_its_connection(database: Database) -> None:
    async with PostgresPool(database.dsn(), min_size=1, max_size=1) as pool:
        await pool.fetchval("SELECT pg_advisory_lock(424242)")
        held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 424242"
        assert await pool.fetchval(held) == 0


async def test_a_transaction_left_open_is_rolled_back(database: Database) -> None:
    async with PostgresPool(database.dsn(), min_size=1, max_size=1) as pool:
        await pool.execute("BEGIN; INSERT INTO users (name, city) VALUES ('ghost', 'Nowhere')")
        assert await pool.fetchval("SELECT count(*) FROM users WHERE name = 'ghost'") == 0


def test_reset_is_auto_or_always() -> None:
    with pytest.raises(ServerConfigurationError, match="'auto' or 'always'"):
        PostgresPool("postgresql://h/db", reset="never")  # type: ignore[arg-type]


async def test_a_statement_error_is_raised_unchanged_and_counted(database: Database) -> None:
    async with PostgresPool(database.dsn(), min_size=1, max_size=2) as pool:
        with pytest.raises(asyncpg.UndefinedColumnError):
            await pool.fetchrow("SELECT nope FROM users WHERE id = $1", 1)
        with pytest.raises(asyncpg.DataError):
            await pool.execute("SELECT $1::int", "not a number")
        row = await pool.fetchrow("SELECT name FROM users WHERE id = $1", 1)
        stats = pool.stats()
    assert row["name"] == "user-0"
    assert (stats["acquired"], stats["in_use"], stats["connect_failures"]) == (3, 0, 0)
    assert pool.breaker.stats()["failures"] == 0


async def test_connections_cut_under_the_pool_fail_fast_then_recover(
    database: Database, proxy: Proxy
) -> None:
    proxy.start()
    pool = PostgresPool(database.dsn(proxy.port), min_size=2, max_size=2, reconnect_interval=0.2)
    async with pool:
        assert await pool.fetchval("SELECT count(*) FROM users") == 30
        await asyncio.to_thread(proxy.stop)  # the open connections are cut
        with pytest.raises(ServiceUnavailableError) as lost:
            await pool.fetchval("SELECT 1")
        assert not isinstance(lost.value, CircuitOpenError)
        assert isinstance(lost.value.__cause__, OSError | asyncpg.PostgresConnectionError)
        with pytest.raises(CircuitOpenError):
            await pool.fetchval("SELECT 1")  # fails fast: not tried again yet
        stats = pool.stats()
        assert (stats["state"], stats["in_use"], stats["connect_failures"]) == ("down", 0, 1)
        await asyncio.to_thread(proxy.start)
        await asyncio.sleep(0.25)
        assert await pool.fetchval("SELECT 4") == 4  # the trial call succeeds: closed again
        assert pool.stats()["state"] == "up"


# -- the example, served -------------------------------------------------------------------------


async def test_example_serves_500_concurrent_requests_on_10_connections(
    database: Database,
) -> None:
    env = {"DATABASE_URL": database.dsn(), "DB_POOL_MIN": "2", "DB_POOL_MAX": "10"}
    with running_server(EXAMPLES / "database.py", env=env) as server:
        # The project's light client (one connection per concurrent request): httpx would
        # spend more time than the server on these 500 requests.
        client = HTTP1Pool(server.url, headers={"Content-Type": "application/json"}, timeout=60)
        try:
            cities = ("Madrid", "Oslo", "Lima", "Quito")
            responses = await asyncio.gather(
                *(
                    client.request(
                        "POST", "/api/execute", b'{"input_data": {"city": "%s"}}' % city.encode()
                    )
                    for city in (cities[i % 4] for i in range(500))
                )
            )
            assert [status for status, _ in responses] == [200] * 500
            counts = [json.loads(body)["output_data"]["count"] for _, body in responses]
            assert counts == [10, 10, 10, 0] * 125  # Quito has no users
            assert await _example_connections() <= 10
            pool = json.loads((await client.request("GET", "/metrics"))[1])["pools"]["postgres"]
        finally:
            await client.aclose()
        assert pool["acquired"] >= 500
        assert pool["in_use"] == 0  # every connection went back: no leak
        assert pool["waiting"] == 0
        assert 2 <= pool["size"] <= 10
        assert pool["idle"] == pool["size"]
        assert pool["max_size"] == 10
    assert await _example_connections() == 0  # cleanup closed them all


class Proxy:
    """A TCP proxy to PostgreSQL on its own port and thread: stop it to make the database
    unreachable (open connections are cut), start it again to bring it back."""

    def __init__(self, target: int = 5432) -> None:
        self.port = free_port()
        self.target = target
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(5)

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    proxy = Proxy()
    yield proxy
    proxy.close()


def _until(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if outcome or time.monotonic() > deadline:
            return outcome
        time.sleep(0.05)


def test_database_outage_fails_fast_then_recovers_without_restart(
    database: Database, proxy: Proxy
) -> None:
    env = {"DATABASE_URL": database.dsn(proxy.port), "DB_POOL_MIN": "1", "DB_POOL_MAX": "5"}
    body = {"input_data": {"city": "Lima"}}
    # Started while the database is unreachable: the server still starts, but is not ready.
    with (
        running_server(EXAMPLES / "database.py", env=env) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "dependencies unavailable"
        assert client.get("/health").status_code == 200  # alive: restarting would not help

        for _ in range(5):
            started = time.monotonic()
            response = client.post("/api/execute", json=body)
            assert time.monotonic() - started < 0.5
            assert response.status_code == 503
            assert response.json()["error_code"] in ("SERVICE_UNAVAILABLE", "CIRCUIT_OPEN")
            assert response.json()["retryable"] is True
            assert "retry-after" in response.headers

        for outage in range(2):
            proxy.start()  # the database comes back: no restart needed
            recovered = _until(lambda: client.post("/api/execute", json=body).status_code == 200)
            assert recovered, f"no recovery after outage {outage}"
            assert client.get("/ready").status_code == 200
            assert client.post("/api/execute", json=body).json()["output_data"]["count"] == 10

            proxy.stop()  # and goes away again, cutting the pooled connections
            failed = _until(lambda: client.post("/api/execute", json=body).status_code == 503)
            assert failed
            started = time.monotonic()
            response = client.post("/api/execute", json=body)
            assert time.monotonic() - started < 0.5
            assert response.json()["retryable"] is True
            assert _until(lambda: client.get("/ready").status_code == 503)
