"""The guarded HTTP protocol on a real server, probed over raw sockets as a hostile client would:
pipelining, heads split at awkward places, smuggling, chunked bodies, ``Expect``, HTTP/1.0,
slow clients, clients that leave or never read, too many connections.

Each probe runs against our server (``ai-spine serve``) and against stock uvicorn serving the same
``tool.asgi()``, the reference: every answer is the same, or better where the table says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import pytest
import uvicorn
from uvicorn.lifespan.on import LifespanOn
from uvicorn.server import ServerState

from _rawhttp import (
    Conversation,
    RawResponse,
    converse,
    exchange,
    read_response,
    request_bytes,
    split_responses,
)
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.core._loader import load_tool
from ai_spine_tools.server._app import ToolApp
from ai_spine_tools.server._protocol import GuardedHTTPProtocol
from serverproc import TOOLS, ServerProcess, running_server, running_stock_uvicorn

pytestmark = pytest.mark.slow

READ_TIMEOUT = 2  # seconds; deadlines are checked once a second, so a cut comes within 3 s
HEAD_LIMIT = 16_384  # the default
CONNECTIONS = 12
TOOL = TOOLS / "slow.py"
ENV = {
    "AI_SPINE_READ_TIMEOUT": str(READ_TIMEOUT),
    "AI_SPINE_KEEP_ALIVE": "1",
    "AI_SPINE_MAX_CLIENT_CONNECTIONS": str(CONNECTIONS),
}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server(TOOL, env=ENV) as server:
        yield server


@pytest.fixture(scope="module")
def stock() -> Iterator[ServerProcess]:
    with running_stock_uvicorn(TOOL, env=ENV) as server:
        yield server


def healthy(server: ServerProcess) -> bool:
    return httpx.get(f"{server.url}/health", timeout=5).status_code == 200


def execute(
    seconds: float = 0, *, rid: str | None = None, close: bool = False, pad: int = 0
) -> bytes:
    envelope: dict[str, object] = {"input_data": {"seconds": seconds}}
    if pad:
        envelope["metadata"] = {"pad": "a" * pad}
    headers = [("Content-Type", "application/json")]
    if rid is not None:
        headers.append(("X-Request-ID", rid))
    return request_bytes(
        "POST", "/api/execute", json.dumps(envelope).encode(), headers, close=close
    )


def health(*, rid: str | None = None, close: bool = False, pad: int = 0) -> bytes:
    headers = [("X-Request-ID", rid)] if rid is not None else []
    if pad:
        headers.append(("X-Pad", "p" * pad))
    return request_bytes("GET", "/health", headers=headers, close=close)


def sized_health(size: int) -> bytes:
    """A ``GET /health`` whose request line and headers are ``size`` bytes in all."""
    bare = len(health(pad=1, close=True)) - 1
    return health(pad=size - bare, close=True)


def cut(data: bytes, *offsets: int) -> tuple[bytes, ...]:
    """``data`` in pieces, cut at each offset."""
    edges = [0, *offsets, len(data)]
    return tuple(data[a:b] for a, b in itertools.pairwise(edges))


THREE = execute(rid="a") + health(rid="b") + execute(rid="c", close=True)
FIRST_HEAD = THREE.index(b"\r\n\r\n")
SECOND = len(execute(rid="a"))
MANY = b"".join(execute(rid=str(i)) for i in range(1999)) + execute(rid="1999", close=True)
LATE_BODY = execute(rid="b", close=True)
CHUNKED_HEAD = (
    b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
)
BODY = b'{"input_data": {"seconds": 0}}'
SMUGGLED = b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"


@dataclass(frozen=True)
class Probe:
    """What a client sends, what our server answers, and what stock uvicorn answers where that
    differs (``why`` says why ours is better)."""

    name: str
    pieces: tuple[bytes, ...]
    ours: tuple[int, ...]
    stock: tuple[int, ...] | None = None
    why: str = ""
    gap: float = 0.0
    budget: float = 4.0
    wait_for: int | None = None
    ids: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.name


PROBES = [
    # -- pipelining ------------------------------------------------------------------------
    Probe("two executes in one write", (THREE,), (200, 200, 200), ids=("a", "b", "c")),
    Probe(
        "2000 executes in two writes cut inside a head",
        cut(MANY, MANY.index(b"X-Request-ID: 1000") + 5),
        (200,) * 2000,
        gap=0.05,
        budget=20,
        ids=tuple(str(i) for i in range(2000)),
    ),
    Probe(
        "a 20 KB body, then a head cut before its blank line (issue 17, 1)",
        (execute(rid="a", pad=20_000) + health(rid="b", close=True)[:-2], b"\r\n"),
        (200, 200),
        gap=0.3,
        ids=("a", "b"),
    ),
    Probe(
        "two 9 KB heads, the second cut before its blank line",
        (health(rid="a", pad=9000) + health(rid="b", pad=9000, close=True)[:-2], b"\r\n"),
        (200, 200),
        gap=0.3,
        ids=("a", "b"),
    ),
    *[
        Probe(f"three requests cut {where}", cut(THREE, offset), (200, 200, 200), gap=0.05)
        for where, offset in [
            ("inside the request line", 7),
            ("between CR and LF", THREE.index(b"\r\n") + 1),
            ("inside a header name", THREE.index(b"Content-Type") + 4),
            ("inside the blank line", FIRST_HEAD + 2),
            ("before the body", FIRST_HEAD + 4),
            ("inside the body", FIRST_HEAD + 10),
            ("between two requests", SECOND),
            ("one byte into the second request", SECOND + 1),
        ]
    ],
    Probe(
        "three requests, seven bytes at a time",
        cut(THREE, *range(7, len(THREE), 7)),
        (200, 200, 200),
    ),
    # -- head size: per head, whatever the reads ----------------------------------------------
    Probe("a head at the limit", (sized_health(HEAD_LIMIT),), (200,)),
    Probe("a head at the limit, split", cut(sized_health(HEAD_LIMIT), 16_380), (200,), gap=0.2),
    Probe(
        "a head one byte past the limit",
        (sized_health(HEAD_LIMIT + 1),),
        (431,),
        stock=(200,),
        why="stock uvicorn bounds no head",
    ),
    Probe(
        "a head one byte past the limit, split",
        cut(sized_health(HEAD_LIMIT + 1), 16_380),
        (431,),
        stock=(200,),
        why="stock uvicorn bounds no head",
        gap=0.2,
    ),
    Probe(
        "a head that never ends",
        (b"GET /health HTTP/1.1\r\nX-Endless: " + b"a" * 60_000,),
        (431,),
        stock=(),
        why="stock uvicorn buffers it for as long as it comes",
        budget=2,
    ),
    Probe(
        "a head past the limit behind a slower answer",
        (execute(1, rid="a") + health(pad=20_000),),
        (200, 431),
        stock=(200, 200),
        why="stock uvicorn bounds no head; ours refuses it after the earlier answer",
        ids=("a",),
    ),
    # -- smuggling ---------------------------------------------------------------------------
    Probe(
        "Content-Length and Transfer-Encoding",
        (
            b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        ),
        (400,),
    ),
    Probe(
        "two different Content-Lengths",
        (
            b"POST /api/execute HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
        ),
        (400,),
    ),
    Probe(
        "the same Content-Length twice",
        (
            b"POST /api/execute HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        ),
        (400,),
    ),
    Probe(
        "an obs-folded header",
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\nConnection: close\r\n\r\n",),
        (400,),
    ),
    Probe(
        "bare LF line ends",
        (b"GET /health HTTP/1.1\nHost: x\nConnection: close\n\n",),
        (400,),
    ),
    Probe(
        "a Transfer-Encoding that is not chunked last",
        (b"POST /api/execute HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",),
        (400,),
    ),
    Probe(
        "a request hidden in a body",
        (
            b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % len(SMUGGLED)
            + SMUGGLED,
        ),
        (200,),
    ),
    Probe(
        "an encoded slash in the path", (execute(close=True).replace(b"/api/", b"/api%2F"),), (404,)
    ),
    # -- chunked bodies ----------------------------------------------------------------------
    Probe(
        "a chunked body",
        (CHUNKED_HEAD + b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY),),
        (200,),
    ),
    Probe(
        "a chunked body in pieces, with an extension",
        (
            CHUNKED_HEAD,
            b"5;x=1\r\n" + BODY[:5] + b"\r\n",
            b"%x\r\n%s\r\n" % (len(BODY) - 5, BODY[5:]),
            b"0\r\n\r\n",
        ),
        (200,),
        gap=0.05,
    ),
    Probe("a chunk size that is not hex", (CHUNKED_HEAD + b"zz\r\n{}\r\n0\r\n\r\n",), (400,)),
    # -- Expect, HTTP/1.0 --------------------------------------------------------------------
    Probe(
        "Expect: 100-continue",
        cut(
            execute(close=True).replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n", 1),
            execute(close=True).index(b"\r\n\r\n") + 28,
        ),
        (100, 200),
        wait_for=1,
    ),
    Probe("HTTP/1.0", (execute().replace(b"HTTP/1.1", b"HTTP/1.0", 1),), (200,)),
    Probe(
        "HTTP/1.0 asking for keep-alive is answered and closed",
        (
            health()
            .replace(b"HTTP/1.1", b"HTTP/1.0", 1)
            .replace(b"\r\n\r\n", b"\r\nConnection: keep-alive\r\n\r\n"),
            health(close=True),
        ),
        (200,),
        gap=0.2,
    ),
    # -- slow clients ------------------------------------------------------------------------
    Probe(
        "a head a line at a time",
        (b"POST /api/execute HTTP/1.1\r\n", *[b"X-Slow: 1\r\n"] * 40),
        (408,),
        stock=(),
        why="stock uvicorn waits for as long as the client takes",
        gap=0.25,
        budget=4,
    ),
    Probe(
        "a body a byte at a time",
        cut(execute(close=True), *range(len(execute(close=True)) - 25, len(execute(close=True)))),
        (408,),
        stock=(),
        why="stock uvicorn waits for as long as the client takes",
        gap=0.25,
        budget=4,
    ),
    Probe(
        "a body's end late behind an execution slower than the read timeout (issue 17, 2)",
        (execute(3, rid="a") + LATE_BODY[:-5], LATE_BODY[-5:]),
        (200, 200),
        gap=0.3,
        budget=8,
        ids=("a", "b"),
    ),
    Probe(
        "a head's end late behind an execution slower than the read timeout",
        (execute(3, rid="a") + health(rid="b", close=True)[:-2], b"\r\n"),
        (200, 200),
        gap=0.3,
        budget=8,
        ids=("a", "b"),
    ),
    Probe(
        "a head a line at a time behind a slower execution",
        (execute(1, rid="a") + b"GET /health HTTP/1.1\r\n", *[b"X-Slow: 1\r\n"] * 16, b"\r\n"),
        (200, 408),
        stock=(200, 200),
        why="stock uvicorn waits for as long as the client takes; ours answers the first request"
        " and then refuses the slow one",
        gap=0.25,
        budget=6,
        ids=("a",),
    ),
]


def both(probe: Probe, server: ServerProcess, stock: ServerProcess) -> tuple[Conversation, ...]:
    def talk(port: int, expected: tuple[int, ...]) -> Conversation:
        # Read until the server closes, except after a last 200 (kept alive).
        count = len(expected) if expected and expected[-1] == 200 else None
        return converse(
            port,
            probe.pieces,
            gap=probe.gap,
            budget=probe.budget,
            wait_for=probe.wait_for,
            count=count,
        )

    reference = probe.stock if probe.stock is not None else probe.ours
    with ThreadPoolExecutor(2) as pool:
        return tuple(pool.map(talk, [server.port, stock.port], [probe.ours, reference]))


@pytest.mark.parametrize("probe", PROBES, ids=str)
def test_probe(server: ServerProcess, stock: ServerProcess, probe: Probe) -> None:
    ours, reference = both(probe, server, stock)
    assert ours.statuses == probe.ours, probe.name
    if probe.ids:
        assert ours.ids()[: len(probe.ids)] == list(probe.ids), "answers out of order"
    refusal = next((r for r in ours.responses if r.status >= 400), None)
    if refusal is not None:  # a refusal is the last answer, and the connection closes
        assert ours.responses[-1] is refusal
        assert refusal.header("connection") == "close"
        assert ours.closed
    expected = probe.stock if probe.stock is not None else probe.ours
    assert reference.statuses == expected, f"stock uvicorn now answers {reference.statuses}"
    assert healthy(server)


def test_a_refused_head_says_why(server: ServerProcess) -> None:
    (refusal,) = converse(server.port, [sized_health(HEAD_LIMIT + 1)]).responses
    assert refusal.json()["error_code"] == "HEADERS_TOO_LARGE"
    assert refusal.json()["error_details"] == {"max_header_bytes": HEAD_LIMIT}
    assert refusal.header("x-content-type-options") == "nosniff"


def test_a_slow_client_is_cut_off_with_408(server: ServerProcess) -> None:
    lines = [b"POST /api/execute HTTP/1.1\r\n"] + [b"X-Slow: 1\r\n"] * 40
    response = exchange(server.port, lines, gap=0.25)
    assert response.status == 408
    assert response.json()["error_code"] == "REQUEST_TIMEOUT"
    assert response.json()["error_details"] == {"read_timeout_s": READ_TIMEOUT}
    assert response.elapsed < READ_TIMEOUT + 2.5  # not the 10 s the client meant to take


def test_a_slow_client_within_the_deadline_is_served(server: ServerProcess) -> None:
    request = execute(close=True)
    pieces = [request[i : i + 20] for i in range(0, len(request), 20)]
    response = exchange(server.port, pieces, gap=0.05)
    assert response.status == 200


def test_a_connection_that_sends_nothing_is_closed(server: ServerProcess) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        assert sock.recv(1) == b""
    assert time.monotonic() - started < READ_TIMEOUT + 2


def test_an_idle_keep_alive_connection_is_closed(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(health())
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed after AI_SPINE_KEEP_ALIVE (1 s)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("sent", [b"", b"x" * 10], ids=["after its head", "mid-body"])
def test_a_client_that_leaves_mid_request_leaves_the_server_serving(
    server: ServerProcess, sent: bytes
) -> None:
    head = execute(close=True).partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head + sent)
    assert healthy(server)


def test_a_client_that_leaves_behind_a_slow_request_leaves_no_error(
    server: ServerProcess,
) -> None:
    # Issue 17, 5: the answer to the slow request must not be written to the closed connection.
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(execute(0.5) + health())
    time.sleep(1)
    assert healthy(server)


def test_a_client_that_never_reads_costs_bounded_memory() -> None:
    # Issue 17, 3: four connections pipelining for 2 s without reading a byte. Stock uvicorn
    # grew by about 275 MB doing this, ours by about 2 MB: reading stops once answers are unread.
    with running_server(TOOL, env=ENV) as server:
        process = psutil.Process(server.process.pid)
        for _ in range(20):
            exchange(server.port, [execute(close=True)])  # warm up
        before = process.memory_info().rss
        batch = execute() * 200
        sockets = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
        for sock in sockets:
            sock.setblocking(False)
        unsent = [memoryview(batch)] * len(sockets)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            for index, sock in enumerate(sockets):
                try:
                    sent = sock.send(unsent[index])
                except BlockingIOError:  # TCP holds the client back: the server reads no more
                    continue
                unsent[index] = unsent[index][sent:] or memoryview(batch)
            time.sleep(0.001)
        grown = process.memory_info().rss - before
        for sock in sockets:
            sock.close()
        assert healthy(server)
    assert grown < 40 * 2**20, f"grew by {grown / 2**20:.0f} MB"


def test_past_the_connection_limit_the_answer_is_503_overloaded(server: ServerProcess) -> None:
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(CONNECTIONS)]
    try:
        response = exchange(server.port, [execute(close=True)])
        # A connection admitted within the limit is still served at it.
        held[0].sendall(execute())
        admitted = read_response(held[0])
    finally:
        for sock in held:
            sock.close()
    assert admitted.startswith(b"HTTP/1.1 200 ")
    assert response.status == 503
    body = response.json()
    assert body["error_code"] == "OVERLOADED"
    assert body["retryable"] is True
    assert response.header("retry-after") == "1"
    deadline = time.monotonic() + 5
    while not healthy(server):  # the held connections are gone: it serves again
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_the_log_holds_no_traceback_and_no_431_as_malformed(server: ServerProcess) -> None:
    # Last in the module: it stops the server to read what it logged while probed.
    converse(server.port, [sized_health(HEAD_LIMIT + 1)])
    server.stop()
    log = server.output()
    assert "Task exception was never retrieved" not in log  # issue 17, 5
    assert "Traceback" not in log
    malformed = sum(
        1 for probe in PROBES if probe.ours == (400,)
    )  # each logged once, as uvicorn does; a 431 or 408 is not malformed
    assert log.count("Invalid HTTP request received.") <= malformed


# -- every boundary, in-process ------------------------------------------------------------


class Transport(asyncio.Transport):
    """A connection's socket, in memory: what is written, whether reading is paused."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closing, "written after close"
        self.written += data

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name)


@pytest.fixture(scope="module")
def config() -> uvicorn.Config:
    app = ToolApp(load_tool(str(TOOL)), ServerSettings())
    config = uvicorn.Config(app, http=GuardedHTTPProtocol, log_config=None, lifespan="on")
    config.load()
    return config


@contextlib.asynccontextmanager
async def started(config: uvicorn.Config) -> AsyncIterator[None]:
    """The app's lifespan (its setup done, so that it serves) around the block."""
    lifespan = LifespanOn(config)
    await lifespan.startup()
    try:
        yield
    finally:
        await lifespan.shutdown()


async def served_in_memory(
    config: uvicorn.Config, pieces: tuple[bytes, ...], count: int
) -> list[RawResponse]:
    """Feed ``pieces`` to one connection (each once it reads), until ``count`` answers."""
    transport = Transport()
    protocol = GuardedHTTPProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    protocol.connection_made(transport)
    answers: list[RawResponse] = []
    deadline = time.monotonic() + 5
    for piece in pieces:
        while not transport.reading:
            assert time.monotonic() < deadline, "the connection stopped reading for good"
            await asyncio.sleep(0.001)
        protocol.data_received(piece)
    while len(answers) < count and not transport.closing:
        assert time.monotonic() < deadline, f"{len(answers)} answers of {count}"
        await asyncio.sleep(0.001)
        answers, _ = split_responses(bytes(transport.written))
    protocol.connection_lost(None)
    return answers


async def test_three_requests_split_at_every_byte(config: uvicorn.Config) -> None:
    async with started(config):
        for offset in range(1, len(THREE)):
            answers = await served_in_memory(config, cut(THREE, offset), 3)
            assert [a.status for a in answers] == [200, 200, 200], offset
            assert [a.header("x-request-id") for a in answers] == ["a", "b", "c"], offset


async def test_a_body_and_a_head_split_anywhere_are_never_refused(config: uvicorn.Config) -> None:
    # Issue 17, 1: earlier requests and their bodies do not count towards a later head.
    sent = execute(rid="a", pad=20_000) + health(rid="b", pad=9000) + health(rid="c", pad=9000)
    async with started(config):
        for offset in range(1, len(sent), 97):
            answers = await served_in_memory(config, cut(sent, offset), 3)
            assert [a.status for a in answers] == [200, 200, 200], offset


async def test_a_head_past_the_limit_is_refused_wherever_it_is_split(
    config: uvicorn.Config,
) -> None:
    sent = health(rid="a") + sized_health(HEAD_LIMIT + 1)
    async with started(config):
        for offset in range(1, len(sent), 61):
            answers = await served_in_memory(config, cut(sent, offset), 2)
            assert [a.status for a in answers] == [200, 431], offset
