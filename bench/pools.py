"""What the SDK's PostgreSQL pool and Redis result cache cost against the bare clients, in-process.

Each pair runs on one uvloop event loop against the real services (PostgreSQL at
``AI_SPINE_TEST_POSTGRES``, Redis at ``REDIS_URL``, both on 127.0.0.1 by default), in rounds
where each side takes its turn in a rotating order. A ratio is ours' calls per second over the
bare side's (1.0: as fast; higher is better) from the process's CPU time (what a CPU-bound
server has to give; the services run in their own processes), and from wall time; it is the
median over rounds of the two sides' ratio in the same round, so a noisy machine's slow moments
fall on both.

- ``postgres_pool``: ``PostgresPool.fetchrow`` against asyncpg's own ``pool.fetchrow``, one
  ``SELECT ... WHERE id = $1`` a call, 8 concurrent callers on 10 connections;
  ``postgres_pool_busy``: 32 callers on the same 10 connections (calls wait their turn);
- ``postgres_tool``: ``POST /api/execute`` of a tool running that query through
  ``context.resources`` (a ``PostgresPool``), against a bare ASGI app running it on an asyncpg
  pool;
- ``redis_l2_hit``: ``POST /api/execute`` of a tool whose result is in Redis only
  (``cache={"ttl": 600, "l1_ttl": 0}``), against a bare ASGI app that decodes the body with
  msgspec, reads a key with redis-py (``Redis.from_url``) and sends the stored bytes in the
  success envelope.

The two HTTP pairs include the server: the request's bytes go into uvicorn's httptools protocol
(ours: the SDK's ``GuardedHTTPProtocol``, as ``ai-spine serve`` runs it) over 8 keep-alive
connections whose transport only collects what is written, so everything but the socket
system calls is measured.

    python -m bench.pools            # the full run (a minute or two)
    python -m bench.pools --smoke    # a few seconds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "pools.json"
sys.path.insert(0, str(ROOT / "examples"))

POSTGRES = os.environ.get("AI_SPINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
TABLE = "ai_spine_bench_pools"
QUERY = f"SELECT id, name, city FROM {TABLE} WHERE id = $1"
PREFIX = "ai-spine-bench-pools:"
CONNECTIONS = 8

Call = Callable[[int, int], Awaitable[Any]]  # (worker, call number)
ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def rounds(
    sides: Mapping[str, Call], *, calls: int, concurrency: int, count: int
) -> dict[str, list[tuple[float, float]]]:
    """Each side's (CPU µs, wall µs) per call in each round, the sides taking turns."""
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    names = list(sides)
    per_worker = calls // concurrency

    async def worker(call: Call, number: int) -> None:
        for i in range(per_worker):
            await call(number, i)

    for index in range(count):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(worker(sides[name], n) for n in range(concurrency)))
            done = per_worker * concurrency
            out[name].append(
                (
                    (time.process_time() - cpu) / done * 1e6,
                    (time.perf_counter() - wall) / done * 1e6,
                )
            )
    return out


def summary(samples: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    """Median µs per call of each side, and ours over bare (calls per second) by CPU and wall."""
    bare, ours = samples["bare"], samples["ours"]
    return {
        "cpu_us": {
            name: round(statistics.median(s[0] for s in v), 1) for name, v in samples.items()
        },
        "wall_us": {
            name: round(statistics.median(s[1] for s in v), 1) for name, v in samples.items()
        },
        "ratio_cpu": round(
            statistics.median(b[0] / o[0] for b, o in zip(bare, ours, strict=True)), 3
        ),
        "ratio_wall": round(
            statistics.median(b[1] / o[1] for b, o in zip(bare, ours, strict=True)), 3
        ),
    }


# -- a server without sockets ----------------------------------------------------------------------


class _Transport(asyncio.Transport):
    """Collects what the protocol writes and tells the connection when a response is whole."""

    def __init__(self, connection: Connection) -> None:
        super().__init__()
        self._connection = connection

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 3000)}.get(name)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._connection.written(bytes(data))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Connection:
    """One keep-alive HTTP/1.1 connection into a uvicorn protocol serving ``app``."""

    def __init__(self, app: ASGI, protocol: type[Any]) -> None:
        import uvicorn
        from uvicorn.server import ServerState

        config = uvicorn.Config(
            app, http=protocol, lifespan="off", access_log=False, log_level="warning"
        )
        config.load()
        self.protocol = protocol(config=config, server_state=ServerState(), app_state={})
        self.protocol.connection_made(_Transport(self))
        self._buffer = b""
        self._answer: asyncio.Future[bytes] | None = None

    async def post(self, body: bytes) -> bytes:
        """Send ``POST /api/execute`` with ``body``; return the response (head and body)."""
        self._answer = asyncio.get_running_loop().create_future()
        self.protocol.data_received(
            b"POST /api/execute HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        return await self._answer

    def written(self, data: bytes) -> None:
        self._buffer += data
        head, found, rest = self._buffer.partition(b"\r\n\r\n")
        if not found:
            return
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        if len(rest) >= length and self._answer is not None:
            self._buffer = b""
            self._answer.set_result(head + b"\r\n\r\n" + rest)

    def close(self) -> None:
        self.protocol.connection_lost(None)


def _served(ours: ASGI, bare: ASGI, bodies: list[bytes], expect: bytes) -> dict[str, Call]:
    """The two sides of an HTTP pair: each worker posts its body on its own connection."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from ai_spine_tools.server._protocol import GuardedHTTPProtocol

    def side(app: ASGI, protocol: type[Any]) -> Call:
        connections = [Connection(app, protocol) for _ in bodies]

        async def call(worker: int, i: int) -> bytes:
            answer = await connections[worker].post(bodies[worker])
            if not answer.startswith(b"HTTP/1.1 200") or expect not in answer:
                raise RuntimeError(f"unexpected answer: {answer[:300]!r}")
            return answer

        return call

    return {"bare": side(bare, HttpToolsProtocol), "ours": side(ours, GuardedHTTPProtocol)}


class _Input(msgspec.Struct):
    city: str = ""
    units: str = "celsius"
    id: int = 0


class _Envelope(msgspec.Struct):
    input_data: _Input
    config: dict[str, Any] | None = None
    execution_id: str | None = None


class _Success(msgspec.Struct):
    execution_id: str
    status: str
    output_data: Any
    execution_time_ms: float
    timestamp: str


def bare_app(lookup: Callable[[_Input], Awaitable[Any]]) -> ASGI:
    """A bare ASGI app: decode the body, ``lookup`` the output, send the success envelope with
    the headers the HTTP contract asks for (as ``bench/apps/baseline.py`` does)."""
    decode, encode = msgspec.json.Decoder(_Envelope).decode, msgspec.json.Encoder().encode
    counter = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal counter
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        started = time.perf_counter()
        output = await lookup(decode(body).input_data)
        counter += 1
        execution_id = f"00000000-0000-0000-0000-{counter:012x}"
        payload = encode(
            _Success(
                execution_id=execution_id,
                status="success",
                output_data=output,
                execution_time_ms=(time.perf_counter() - started) * 1000.0,
                timestamp=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            )
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", execution_id.encode()),
            (b"x-response-time", f"{(time.perf_counter() - started) * 1000:.3f}ms".encode()),
            (b"x-tool-version", b"1.0.0"),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return app


# -- PostgreSQL ----------------------------------------------------------------------------------


async def postgres(*, calls: int, count: int) -> dict[str, Any]:
    """The pool on its own, and a tool querying through it, against asyncpg's pool."""
    import asyncpg

    from ai_spine_tools import ToolContext, create_tool, integer_field
    from ai_spine_tools._settings import ServerSettings
    from ai_spine_tools.postgres import PostgresPool
    from ai_spine_tools.server._app import create_app
    from ai_spine_tools.server._inprocess import InProcessApp

    admin = await asyncpg.connect(POSTGRES)
    try:
        await admin.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id int PRIMARY KEY, name text, city text)"
        )
        await admin.execute(
            f"INSERT INTO {TABLE} SELECT i, 'user-' || i, 'Madrid' "
            "FROM generate_series(1, 100) i ON CONFLICT DO NOTHING"
        )
    finally:
        await admin.close()
    bare = await asyncpg.create_pool(POSTGRES, min_size=10, max_size=10)
    ours = await PostgresPool(POSTGRES, min_size=10, max_size=10, name="bench").open(require=True)

    async def query(
        input: dict[str, Any], config: dict[str, Any], context: ToolContext
    ) -> dict[str, Any]:
        row = await context.resources.fetchrow(QUERY, input["id"])
        return dict(row)

    async def open_pool(config: dict[str, Any]) -> PostgresPool:
        return await PostgresPool(POSTGRES, min_size=10, max_size=10, name="tool").open()

    async def close_pool(pool: PostgresPool) -> None:
        await pool.close()

    tool = create_tool(
        metadata={"name": "user-lookup", "version": "1.0.0", "description": "A user by id"},
        schema={"input": {"id": integer_field(required=True, min=1)}},
        execute=query,
        setup=open_pool,
        cleanup=close_pool,
    )
    runner = InProcessApp(create_app(tool, ServerSettings()))
    await runner.start()

    async def bare_row(data: _Input) -> dict[str, Any]:
        return dict(await bare.fetchrow(QUERY, data.id))

    results: dict[str, Any] = {}
    try:

        async def bare_call(worker: int, i: int) -> Any:
            return await bare.fetchrow(QUERY, i % 100 + 1)

        async def ours_call(worker: int, i: int) -> Any:
            return await ours.fetchrow(QUERY, i % 100 + 1)

        for name, concurrency in (("postgres_pool", 8), ("postgres_pool_busy", 32)):
            pair: dict[str, Call] = {"bare": bare_call, "ours": ours_call}
            results[name] = summary(
                await rounds(pair, calls=calls, concurrency=concurrency, count=count)
            )
        stats = ours.stats()
        if stats["in_use"] or stats["waiting"] or stats["breaker"] != "closed":
            raise RuntimeError(f"the pool did not settle: {stats}")
        bodies = [b'{"input_data": {"id": %d}}' % (n + 1) for n in range(CONNECTIONS)]
        sides = _served(runner.app, bare_app(bare_row), bodies, b'"name":"user-')
        results["postgres_tool"] = summary(
            await rounds(sides, calls=calls, concurrency=CONNECTIONS, count=count)
        )
    finally:
        await runner.stop()
        await ours.close()
        await bare.close()
    return results


# -- Redis ---------------------------------------------------------------------------------------


async def redis_l2_hit(*, calls: int, count: int) -> dict[str, Any]:
    """A result served from Redis by the tool's server against a bare app reading one key.

    Each connection asks for its own city, so no request waits for another's lookup."""
    import redis.asyncio as aioredis

    import weather
    from ai_spine_tools import create_tool
    from ai_spine_tools._settings import ServerSettings
    from ai_spine_tools.server._app import create_app
    from ai_spine_tools.server._inprocess import InProcessApp

    tool = create_tool(
        metadata=weather.tool.metadata.to_dict(),
        schema={"input": weather.tool.input_schema.fields, "config": weather.tool.config.fields},
        execute=weather.get_weather,
        cache={"ttl": 600, "l1_ttl": 0},
    )
    runner = InProcessApp(create_app(tool, ServerSettings(redis_url=REDIS, redis_prefix=PREFIX)))
    await runner.start()
    client = aioredis.Redis.from_url(REDIS, max_connections=CONNECTIONS)
    cities = [f"City {n}" for n in range(CONNECTIONS)]
    bodies = [msgspec.json.encode({"input_data": {"city": city}}) for city in cities]

    async def bare_get(data: _Input) -> msgspec.Raw:
        stored: Any = await client.get(f"{PREFIX}bare:{data.city}:{data.units}")
        return msgspec.Raw(stored)

    try:
        for city in cities:
            output = await weather.get_weather({"city": city, "units": "celsius"}, {}, None)  # type: ignore[arg-type]
            await client.set(f"{PREFIX}bare:{city}:celsius", msgspec.json.encode(output))
        sides = _served(runner.app, bare_app(bare_get), bodies, b'"temperature":')
        await sides["ours"](0, 0)  # the first request of each body is a miss: it stores it
        for worker in range(CONNECTIONS):
            await sides["ours"](worker, 0)
        samples = await rounds(sides, calls=calls, concurrency=CONNECTIONS, count=count)
        if tool.cache.memory.stats()["keys"]:
            raise RuntimeError("results were kept in memory with l1_ttl=0")
        if tool.cache.stats()["l2"]["hits"] < calls * count:
            raise RuntimeError(f"the hits were not read from Redis: {tool.cache.stats()}")
    finally:
        await tool.cache.invalidate_all()
        await client.delete(*(f"{PREFIX}bare:{city}:celsius" for city in cities))
        await client.aclose()
        await runner.stop()
    return {"redis_l2_hit": summary(samples)}


def run(*, calls: int, count: int) -> dict[str, Any]:
    """Run every pair on uvloop; return the results."""
    import uvloop

    async def both() -> dict[str, Any]:
        return {
            **await postgres(calls=calls, count=count),
            **await redis_l2_hit(calls=calls, count=count),
        }

    logging.getLogger("ai_spine_tools").setLevel(logging.ERROR)  # pool-pressure warnings
    results = uvloop.run(both())
    return {
        "machine": {"python": sys.version.split()[0], "cpus": os.cpu_count()},
        "settings": {"calls": calls, "rounds": count},
        **results,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, report and save."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="a few seconds")
    parser.add_argument("--calls", type=int, default=1600, help="calls per side per round")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, help=f"default: {RESULTS} (none with --smoke)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.calls, args.rounds = 160, 3
    results = run(calls=args.calls, count=args.rounds)
    for name in ("postgres_pool", "postgres_pool_busy", "postgres_tool", "redis_l2_hit"):
        figures = results[name]
        print(
            f"{name:20} ours/bare {figures['ratio_cpu']:.3f} by CPU, {figures['ratio_wall']:.3f} "
            f"by wall time; CPU µs a call {figures['cpu_us']}"
        )
    out = args.out or (None if args.smoke else RESULTS)
    if out is not None:
        out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
