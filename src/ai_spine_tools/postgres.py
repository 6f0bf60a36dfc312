"""A PostgreSQL connection pool for tools: asyncpg, sized from the environment, with stats.

::

    from ai_spine_tools.postgres import PostgresPool

    async def setup(config):
        return await PostgresPool.from_env().open()     # DATABASE_URL, DB_POOL_MIN/MAX/IDLE_TIMEOUT

    async def execute(input, config, context):
        rows = await context.resources.fetch("SELECT * FROM users WHERE city = $1", input["city"])

    async def cleanup(pool):
        await pool.close()

A database that cannot be reached does not stop the server from starting: the pool reports itself
down (``check()`` says not ready, so ``/ready`` answers 503), calls fail at once with a retryable
503 (``SERVICE_UNAVAILABLE``, or ``CIRCUIT_OPEN`` while its breaker waits to probe again), and the
first call after ``reconnect_interval`` seconds tries again, so the pool recovers by itself when
the database returns. Only connection failures count against it; a failing SQL statement is the
statement's problem and raises asyncpg's error unchanged. Needs the ``[postgres]`` extra.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

from ai_spine_tools.exceptions import ServerConfigurationError, ServiceUnavailableError
from ai_spine_tools.outbound._pools import register_pool, unregister_pool
from ai_spine_tools.outbound._poolwatch import AcquireWaits, Places
from ai_spine_tools.outbound._sql_session import leaves_session_alone
from ai_spine_tools.resilience._breaker import CircuitBreaker

__all__ = ["PostgresPool"]

logger = logging.getLogger("ai_spine_tools.postgres")


class PostgresPool:
    """A pooled asyncpg connection source with fail-fast outages and figures for metrics.

    Sizes: ``min_size`` connections are kept open, at most ``max_size``; a connection idle for
    ``idle_timeout`` seconds is closed. ``acquire_timeout`` bounds the wait for a free connection,
    ``connect_timeout`` each new connection; ``command_timeout`` each statement.

    ``reset`` says when a connection given back has its session reset (asyncpg's reset query:
    advisory locks released, cursors closed, ``UNLISTEN *``, ``RESET ALL``): ``"auto"`` after
    everything but a single read or write (``fetch``/``fetchrow``/``fetchval``/``execute``) that
    calls only built-in functions, ``"always"`` after everything, as asyncpg's own pool does. An
    open transaction is rolled back either way. Choose ``"always"`` when triggers, views or
    operators of the schema change session settings or take session advisory locks.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        min_size: int = 5,
        max_size: int = 20,
        idle_timeout: float = 30.0,
        acquire_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        command_timeout: float | None = None,
        reconnect_interval: float = 1.0,
        name: str = "postgres",
        reset: Literal["auto", "always"] = "auto",
        **connect_kwargs: Any,
    ) -> None:
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ServerConfigurationError(
                f"PostgreSQL pool sizes need 0 <= min <= max and max >= 1 "
                f"(got min {min_size}, max {max_size})"
            )
        if reset not in ("auto", "always"):
            raise ServerConfigurationError(
                f"PostgreSQL pool reset must be 'auto' or 'always' (got {reset!r})"
            )
        self.reset = reset
        self.dsn = dsn
        self.name = name
        self.min_size, self.max_size = min_size, max_size
        self.idle_timeout = idle_timeout
        self.acquire_timeout = acquire_timeout
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._connect_kwargs = connect_kwargs
        self.breaker = CircuitBreaker(
            1, reconnect_interval, name=f"{name}-connection", _register=False
        )
        self._pool: Any = None
        self._opening: asyncio.Lock | None = None
        self._closed = False
        self._waits = AcquireWaits(name, self.stats)
        self._places = Places(max_size, self._waits)  # connections lent, or being opened
        self.acquire_timeouts = 0
        self.connect_failures = 0
        self.last_error: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> PostgresPool:
        """Build a pool from ``DATABASE_URL``, ``DB_POOL_MIN`` (5), ``DB_POOL_MAX`` (20) and
        ``DB_POOL_IDLE_TIMEOUT`` (ms, 30000); ``options`` win over the environment."""
        env = os.environ if environ is None else environ
        dsn = options.pop("dsn", None) or env.get("DATABASE_URL", "").strip()
        if not dsn:
            raise ServerConfigurationError(
                "DATABASE_URL is not set: it should name the PostgreSQL database, "
                "e.g. postgresql://user@127.0.0.1:5432/dbname",
                details={"variable": "DATABASE_URL"},
            )
        options.setdefault("min_size", _env_int(env, "DB_POOL_MIN", 5))
        options.setdefault("max_size", _env_int(env, "DB_POOL_MAX", 20))
        options.setdefault("idle_timeout", _env_int(env, "DB_POOL_IDLE_TIMEOUT", 30_000) / 1000)
        return cls(dsn, **options)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self, *, require: bool = False) -> PostgresPool:
        """Open the pool (``min_size`` connections). An unreachable database is logged and
        retried on use, unless ``require`` makes it fail start-up instead. Returns the pool."""
        self._closed = False
        register_pool(self.name, self)
        try:
            await self._connect()
        except ServiceUnavailableError:
            if require:
                raise
            logger.warning(
                "PostgreSQL pool %s starts without a database: %s", self.name, self.last_error
            )
        return self

    async def close(self) -> None:
        """Close every connection (waiting for those in use to be released, up to 10 s)."""
        self._closed = True
        unregister_pool(self.name, self)
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10.0)
            except TimeoutError:
                pool.terminate()

    async def __aenter__(self) -> PostgresPool:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _connect(self) -> Any:
        import asyncpg

        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is not None:
                return self._pool
            try:
                self._pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=self.min_size,
                    max_size=self.max_size,
                    max_inactive_connection_lifetime=self.idle_timeout,
                    timeout=self.connect_timeout,
                    command_timeout=self.command_timeout,
                    **{"reset": self._reset, **self._connect_kwargs},
                )
            except Exception as exc:
                raise self._unavailable(exc) from exc
            self.last_error = None
            size = self._pool.get_size()
            logger.info("PostgreSQL pool %s open (%d connections)", self.name, size)
            return self._pool

    def _unavailable(self, exc: BaseException) -> ServiceUnavailableError:
        self.connect_failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:200]
        retry_ms = max(1, int(self.breaker.recovery_timeout * 1000))
        return ServiceUnavailableError(
            "The database is unreachable; retry shortly",
            retry_after_ms=retry_ms,
            details={"dependency": self.name},
        )

    # -- use ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        """Lend a connection for the block and take it back after, whatever happens.

        Raises a retryable ``ServiceUnavailableError`` when the database cannot be reached or
        no connection frees up within ``acquire_timeout``, and ``CircuitOpenError`` while
        connecting is suspended after a failure.
        """
        epoch, pool, connection = await self._lend()
        try:
            try:
                yield connection
            finally:
                await pool.release(connection)
        except BaseException as exc:
            self._give_back()
            raised = self._failed(epoch, exc)
            if raised is exc:
                raise
            raise raised from exc
        self._give_back()
        self.breaker._settle(epoch, None)

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        """Run ``query`` and return every row."""
        rows: list[Any] = await self._run("fetch", query, args)
        return rows

    async def fetchrow(self, query: str, *args: Any) -> Any:
        """Run ``query`` and return its first row (or ``None``)."""
        return await self._run("fetchrow", query, args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        """Run ``query`` and return the first column of its first row."""
        return await self._run("fetchval", query, args)

    async def execute(self, query: str, *args: Any) -> str:
        """Run a statement and return its status (``"INSERT 0 1"``)."""
        status: str = await self._run("execute", query, args)
        return status

    async def _run(self, method: str, query: str, args: tuple[Any, ...]) -> Any:
        """Run one statement on a pooled connection, as ``acquire()`` does, without the
        generator-based context manager (written out: it cost 2 µs a call)."""
        epoch, pool, connection = await self._lend()
        try:
            try:
                result = await getattr(connection, method)(query, *args)
            finally:
                if self.reset == "auto" and leaves_session_alone(query):
                    token = _untouched.set(True)
                    try:
                        await pool.release(connection)
                    finally:
                        _untouched.reset(token)
                else:
                    await pool.release(connection)
        except BaseException as exc:
            self._give_back()
            raised = self._failed(epoch, exc)
            if raised is exc:
                raise
            raise raised from exc
        self._give_back()
        self.breaker._settle(epoch, None)
        return result

    # -- the reset on release ----------------------------------------------------------------
    #
    # asyncpg resets every connection given back to its pool: it rolls back an open transaction,
    # then runs the reset query (advisory locks released, cursors closed, UNLISTEN, RESET ALL) in
    # a round trip of its own, as long as the statement itself. After one statement that cannot
    # have changed the session (``leaves_session_alone``) the query has nothing to undo, so the
    # pool skips it: ``python -m bench.pools`` measures PostgresPool.fetchrow at 41.5 µs of CPU a
    # call against 49.0 for asyncpg's pool.fetchrow (52.3 against 52.0 with the reset), and the
    # database does half the work. A connection lent by ``acquire()`` may have done anything
    # with it and is always reset in full.

    async def _reset(self, connection: Any) -> None:
        """What asyncpg runs on release, after rolling back any open transaction."""
        if _untouched.get():
            return
        query = connection.get_reset_query()
        if query:
            await connection.execute(query)

    # -- places: at most max_size callers hold (or are getting) a connection ------------------
    #
    # Callers take a place before asking asyncpg for a connection, so asyncpg always has one
    # free and is asked without its acquire timeout: an asyncio.timeout costs 5-7 µs under
    # uvloop, and the release inherits it, which made PostgresPool.fetchrow 0.75 of asyncpg's
    # own pool.fetchrow (CPU per call). When every place is taken, callers queue for one (first
    # come, first served) with one timer each; a caller done with its connection hands its place
    # to the first in the queue. With places, ``python -m bench.pools`` measures fetchrow at
    # 0.96-0.98 of asyncpg's pool.fetchrow (0.77-0.81 before), and at 0.89 with 32 callers on
    # 10 connections (0.75-0.78 before).

    async def _lend(self) -> tuple[int, Any, Any]:
        """Admit a caller through the breaker, take a place (waiting up to ``acquire_timeout``
        for one) and a connection: the breaker's epoch, the pool and the connection."""
        if self._closed:
            raise ServiceUnavailableError("The database pool is closed", retry_after_ms=1000)
        epoch = self.breaker._admit()
        try:
            pool = self._pool
            if pool is None:
                pool = await self._connect()
            places = self._places
            if not places.take() and not await places.wait(self.acquire_timeout):
                self.acquire_timeouts += 1
                raise ServiceUnavailableError(
                    f"No database connection was free within {self.acquire_timeout} s",
                    retry_after_ms=1000,
                    details={"dependency": self.name},
                )
            try:
                connection = await pool.acquire()
            except BaseException:
                places.give_back()
                raise
        except BaseException as exc:
            raised = self._failed(epoch, exc, opening=True)
            if raised is exc:
                raise
            raise raised from exc
        return epoch, pool, connection

    @property
    def in_use(self) -> int:
        """Places taken: connections lent, or being opened for a caller."""
        return self._places.taken

    def _give_back(self) -> None:
        self._places.give_back()

    def _failed(self, epoch: int, exc: BaseException, *, opening: bool = False) -> BaseException:
        """Tell the breaker how a call that raised ``exc`` went; return what to raise instead.

        Only a lost connection counts against the database (it becomes a retryable 503); a
        failing statement means the database answered, and is raised unchanged. ``opening``:
        ``exc`` came from opening the pool or getting a connection, where a 503 may already
        carry the connection error as its cause.
        """
        breaker = self.breaker
        if not isinstance(exc, Exception):  # cancelled: the breaker counts a deadline's cut only
            breaker._settle(epoch, exc)
            return exc
        if opening and isinstance(exc, ServiceUnavailableError):
            breaker._settle(epoch, exc.__cause__)  # None for an acquire timeout: not a failure
            return exc
        if _is_connection_error(exc):
            breaker._settle(epoch, exc)
            return self._unavailable(exc)
        breaker._settle(epoch, None)
        return exc

    # -- health and figures ------------------------------------------------------------------

    async def check(self, *, within: float = 2.0) -> dict[str, Any]:
        """Probe the database with ``SELECT 1``; return a health-check result for the tool.

        ``{"status": "healthy", "ready": True, ...}`` when it answers; otherwise
        ``"degraded"`` and ``"ready": False``, so ``/ready`` answers 503 (take the instance out
        of rotation) while ``/health`` stays 200 (restarting would not bring the database back).
        """
        try:
            async with asyncio.timeout(within):
                await self.fetchval("SELECT 1")
        except Exception as exc:
            error = getattr(exc, "message", None) or type(exc).__name__
            return {
                "status": "degraded",
                "ready": False,
                self.name: {**self.stats(), "error": error},
            }
        return {"status": "healthy", "ready": True, self.name: self.stats()}

    def stats(self) -> dict[str, Any]:
        """Pool figures: size, idle, in use, waiting, acquire wait and failures."""
        pool = self._pool
        size = pool.get_size() if pool is not None else 0
        idle = pool.get_idle_size() if pool is not None else 0
        return {
            "state": "up" if pool is not None and self.breaker.state == "closed" else "down",
            "size": size,
            "idle": idle,
            "in_use": self.in_use,
            "min_size": self.min_size,
            "max_size": self.max_size,
            **self._waits.figures(),
            "acquire_timeouts": self.acquire_timeouts,
            "connect_failures": self.connect_failures,
            "breaker": self.breaker.state,
            **({"last_error": self.last_error} if self.last_error else {}),
        }


# True while a connection is given back after a session-neutral statement: asyncpg hands its
# reset callback the bare connection, not the proxy the statement ran on, so the fact travels in
# the context (asyncpg's release runs in a task of its own, which starts from a copy of it).
_untouched: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "ai_spine_pg_untouched", default=False
)


def _is_connection_error(exc: BaseException) -> bool:
    import asyncpg

    return isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.InterfaceError,
    )


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ServerConfigurationError(
            f"Environment variable {name} is invalid: expected a whole number (got {raw[:60]!r})",
            details={"variable": name},
        )
    return int(raw)
