"""``POST /api/execute`` served by the connection itself (``_protocol``), on a real uvicorn
server over real sockets: it never reaches ASGI, answers exactly as the ASGI path does, keeps
HTTP/1.1 right (pipelining, keep-alive, closing, bodies in pieces, clients gone), and runs the tool
once for 200 concurrent identical requests."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import pytest
import uvicorn
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from _rawhttp import RawResponse, exchange, request_bytes
from ai_spine_tools import create_tool, integer_field, number_field, string_field
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.core._loader import load_tool
from ai_spine_tools.server._app import ToolApp, with_middleware
from ai_spine_tools.server._direct_route import DirectRoute
from ai_spine_tools.server._protocol import GuardedHTTPProtocol
from ai_spine_tools.server._wire import Receive, Scope, Send
from ai_spine_tools.testing._http1 import HTTP1Pool
from serverproc import TOOLS, free_port

KEY = "direct-key-0123456789"
runs: Counter[str] = Counter()
OUTER: ContextVar[str] = ContextVar("outer")


async def execute(input: dict[str, Any]) -> dict[str, Any]:
    runs[input["q"]] += 1
    if input["pause"]:
        await asyncio.sleep(input["pause"])
    if input["pad"]:
        return {"q": input["q"], "run": runs[input["q"]], "pad": "x" * input["pad"]}
    return {"q": input["q"], "run": runs[input["q"]]}


def direct_tool() -> Any:
    return create_tool(
        metadata={"name": "direct-tool", "version": "1.2.3", "description": "Echoes, cached"},
        schema={
            "input": {
                "q": string_field(required=True, max_length=100),
                "pause": number_field(min=0, max=5, default=0),
                "pad": integer_field(min=0, max=5000, default=0),
            }
        },
        execute=execute,
        cache={"ttl": 600},
    )


class CountingApp(ToolApp):
    """The tool app, counting the HTTP requests that reach it through ASGI."""

    asgi_requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.asgi_requests += 1
        await super().__call__(scope, receive, send)


class Served:
    """A uvicorn server with the guarded protocol, in a thread, on a free loopback port."""

    def __init__(self, app: Any, *, outer: str | None = None, **config: Any) -> None:
        self.port = free_port()
        self.outer = outer  # a context variable's value in the thread that runs the server
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                http=GuardedHTTPProtocol,
                lifespan="on",
                log_level="warning",
                access_log=False,  # as ai-spine serves: an access log takes the ASGI path
                **config,
            )
        )
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self.outer is not None:
            OUTER.set(self.outer)
        self.server.run()

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture(scope="module")
def app() -> CountingApp:
    return CountingApp(direct_tool(), ServerSettings(api_keys=(KEY,)))


@pytest.fixture(scope="module")
def served(app: CountingApp) -> Iterator[Served]:
    with Served(app, timeout_keep_alive=1) as served:
        yield served


def execute_request(
    q: str,
    *extra: tuple[str, str],
    key: str = KEY,
    close: bool = True,
    pause: float = 0,
    pad: int = 0,
) -> bytes:
    body = json.dumps({"input_data": {"q": q, "pause": pause, "pad": pad}}).encode()
    headers = [("Content-Type", "application/json"), ("X-API-Key", key), *extra]
    return request_bytes("POST", "/api/execute", body, headers, close=close)


TEXT_BODY = request_bytes(
    "POST", "/api/execute", b'{"input_data": {"q": "hit"}}', [("Content-Type", "text/plain")]
)


def through_asgi(app: CountingApp, port: int, sent: bytes) -> RawResponse:
    """``sent`` with a header uvicorn's proxy-headers wrapper acts on: the ASGI path."""
    before = app.asgi_requests
    head, _, body = sent.partition(b"\r\n\r\n")
    response = exchange(port, [head + b"\r\nX-Forwarded-For: 10.1.2.3\r\n\r\n" + body])
    assert app.asgi_requests == before + 1
    return response


def directly(app: CountingApp, port: int, sent: bytes) -> RawResponse:
    before = app.asgi_requests
    response = exchange(port, [sent])
    assert app.asgi_requests == before, "the request went through ASGI"
    return response


def responses(port: int, sent: bytes, *, timeout: float = 10) -> list[RawResponse]:
    """Send ``sent`` on one connection and split what comes back until the server closes it
    (within ``timeout`` seconds) into responses."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(sent)
        while chunk := sock.recv(65536):
            received += chunk
    answers = []
    while received:
        head, _, rest = received.partition(b"\r\n\r\n")
        answer = RawResponse(int(head.split(b" ", 2)[1]), head, b"", True, 0.0)
        length = int(answer.header("content-length") or 0)
        answers.append(RawResponse(answer.status, head, rest[:length], True, 0.0))
        received = rest[length:]
    return answers


def shape(response: RawResponse) -> tuple[int, list[tuple[str, str]], Any]:
    """The status, headers and body of a response, without what differs between two answers
    (date, ids, timings, cache keys and ages, and the tool's output)."""
    varying = {"date", "x-request-id", "x-response-time", "content-length"}
    headers = []
    for line in response.head.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        name = name.lower()
        headers.append((name, "*" if name in varying else value.strip()))
    body = response.json()
    for field in ("execution_id", "timestamp", "execution_time_ms"):
        body[field] = "*"
    if "cache" in body:
        body["cache"].update(key="*", age_ms="*")
    if "output_data" in body:
        body["output_data"] = "*"
    return response.status, headers, body


@pytest.mark.parametrize(
    ("label", "direct", "asgi"),
    [
        ("a miss", execute_request("miss-1"), execute_request("miss-2")),
        ("a hit", execute_request("hit"), execute_request("hit")),
        (
            "a bypass of the cache",
            execute_request("hit", ("Cache-Control", "no-cache")),
            execute_request("hit", ("Cache-Control", "no-cache")),
        ),
        ("invalid input", execute_request("x" * 101), execute_request("y" * 101)),
        ("a wrong key", execute_request("hit", key="wrong"), execute_request("hit", key="wrong")),
        ("a body of another type", TEXT_BODY, TEXT_BODY),
        (
            "a body that is not JSON",
            request_bytes("POST", "/api/execute", b"{nope", [("X-API-Key", KEY)]),
            request_bytes("POST", "/api/execute", b"{nope", [("X-API-Key", KEY)]),
        ),
    ],
)
def test_answers_match_the_asgi_path(
    app: CountingApp, served: Served, label: str, direct: bytes, asgi: bytes
) -> None:
    exchange(served.port, [execute_request("hit")])  # "hit" is cached from here on
    first = directly(app, served.port, direct)
    second = through_asgi(app, served.port, asgi)
    assert shape(first) == shape(second), label
    assert first.header("connection") == "close"
    assert int(first.header("content-length") or 0) == len(first.body)


def test_a_hit_is_answered_from_the_cache_without_running_the_tool(
    app: CountingApp, served: Served
) -> None:
    first = directly(app, served.port, execute_request("once"))
    again = [directly(app, served.port, execute_request("once")) for _ in range(5)]
    assert first.header("x-cache") == "MISS"
    assert [r.header("x-cache") for r in again] == ["HIT"] * 5
    assert {r.json()["output_data"]["run"] for r in again} == {1}
    assert runs["once"] == 1
    ids = {r.json()["execution_id"] for r in [first, *again]}
    assert len(ids) == 6  # every answer is an execution of its own
    assert all(r.header("x-request-id") == r.json()["execution_id"] for r in again)


def test_other_routes_and_methods_take_the_asgi_path(app: CountingApp, served: Served) -> None:
    before = app.asgi_requests
    health = exchange(served.port, [request_bytes("GET", "/health")])
    wrong = exchange(served.port, [request_bytes("GET", "/api/execute")])
    query = exchange(served.port, [execute_request("q").replace(b"execute ", b"execute?x=1 ", 1)])
    assert (health.status, wrong.status, query.status) == (200, 405, 200)
    assert app.asgi_requests == before + 3


def test_pipelined_requests_are_answered_in_order(served: Served) -> None:
    sent = [
        execute_request("hit", ("X-Request-ID", "first"), close=False),
        execute_request("pipelined", ("X-Request-ID", "second"), close=False, pause=0.2),
        request_bytes("GET", "/health", headers=[("X-Request-ID", "third")], close=False),
        execute_request("hit", ("X-Request-ID", "fourth")),
    ]
    answers = responses(served.port, b"".join(sent))  # the last asks to close
    assert [r.header("x-request-id") for r in answers] == ["first", "second", "third", "fourth"]
    assert [r.status for r in answers] == [200] * 4


def test_keep_alive_outlives_a_request_slower_than_its_timeout(served: Served) -> None:
    # The hit arms the one-second keep-alive timer; the slow request pipelined behind it must
    # not be cut off by it, and the connection closes only once idle past the timeout.
    sent = execute_request("hit", close=False) + execute_request("slow", close=False, pause=1.5)
    started = time.monotonic()
    answers = responses(served.port, sent)
    assert [r.status for r in answers] == [200, 200]
    assert time.monotonic() - started >= 2.5


def test_http_1_0_gets_its_connection_closed(served: Served) -> None:
    sent = execute_request("hit", close=False).replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    (response,) = responses(served.port, sent, timeout=0.5)
    assert response.status == 200
    assert response.header("connection") == "close"


def test_a_body_in_pieces_is_served(app: CountingApp, served: Served) -> None:
    sent = execute_request("pieces")
    head, _, body = sent.partition(b"\r\n\r\n")
    pieces = [head + b"\r\n\r\n", body[:10], body[10:]]
    before = app.asgi_requests
    response = exchange(served.port, pieces, gap=0.1)
    assert response.status == 200
    assert response.json()["output_data"] == {"q": "pieces", "run": 1}
    assert app.asgi_requests == before


def test_a_client_gone_before_its_answer_leaves_the_server_serving(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(execute_request("abandoned", pause=0.3))
    time.sleep(0.5)
    assert runs["abandoned"] == 1  # it ran to its end; its answer went nowhere
    again = exchange(served.port, [execute_request("abandoned", pause=0.3)])
    assert again.header("x-cache") == "HIT"


def test_large_bodies_and_wrapped_apps_take_the_asgi_path() -> None:
    tool = direct_tool()
    settings = ServerSettings(compression=True, cors_origins=("https://a.example",))
    counting = CountingApp(tool, settings)
    with Served(with_middleware(counting, settings)) as served:
        plain = exchange(served.port, [execute_request("wrapped")])
        assert plain.status == 200
        assert counting.asgi_requests == 0  # no header a wrapper acts on: served directly
        for header in [("Accept-Encoding", "gzip"), ("Origin", "https://a.example")]:
            assert exchange(served.port, [execute_request("wrapped", header)]).status == 200
        large = json.dumps({"input_data": {"q": "big"}, "metadata": {"pad": "a" * 70_000}})
        sent = request_bytes("POST", "/api/execute", large.encode())
        assert exchange(served.port, [sent]).status == 200
        assert counting.asgi_requests == 3


def test_every_request_is_counted_once(app: CountingApp, served: Served) -> None:
    requests = sum(app.gate.requests_by_key.values())
    executions = app.tool.metrics.latency.count
    hits = app.tool.cache.hits
    for q in ["count-a", "count-a", "count-a", "count-b"]:
        assert exchange(served.port, [execute_request(q)]).status == 200
    assert sum(app.gate.requests_by_key.values()) == requests + 4
    assert app.tool.metrics.latency.count == executions + 4
    assert app.tool.cache.hits == hits + 2


class FailingApp(CountingApp):
    """An app whose direct answers fail as a bug of ours would."""

    def answer_from_cache(self, scope: Scope, body: bytes) -> Any:
        raise RuntimeError("a bug answering from the cache")

    async def respond(self, scope: Scope, body: bytes) -> Any:
        if b"respond-fails" in body:
            raise RuntimeError("a bug serving the request")
        return await super().respond(scope, body)


def test_a_failure_of_ours_is_a_logged_500_and_the_server_serves_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FailingApp(direct_tool(), ServerSettings())
    with Served(app) as served:
        hits = [exchange(served.port, [execute_request("fine")]) for _ in range(2)]
        failed = exchange(served.port, [execute_request("respond-fails")])
        after = exchange(served.port, [execute_request("fine")])
    assert [r.status for r in hits] == [200, 200]  # the hit took the long way
    assert hits[1].header("x-cache") == "HIT"
    assert failed.status == 500
    assert failed.json()["error_message"] == "Internal server error"
    assert "a bug" not in failed.body.decode()
    assert after.status == 200
    assert app.asgi_requests == 0
    logged = [r.getMessage() for r in caplog.records]
    assert "serving POST /api/execute failed" in logged
    assert "answering a cache hit failed; the request takes the long way" in logged


async def test_200_concurrent_identical_requests_run_the_tool_once(
    app: CountingApp, served: Served
) -> None:
    body = json.dumps({"input_data": {"q": "stampede", "pause": 0.1}}).encode()
    headers = {"Content-Type": "application/json", "X-API-Key": KEY}
    # The project's light client, one connection per request: httpx costs more than the server.
    client = HTTP1Pool(f"http://127.0.0.1:{served.port}", headers=headers, timeout=30)
    try:
        responses = await asyncio.gather(
            *(client.request("POST", "/api/execute", body) for _ in range(200))
        )
    finally:
        await client.aclose()
    answers = [json.loads(content) for _, content in responses]
    assert runs["stampede"] == 1
    assert [status for status, _ in responses] == [200] * 200
    assert sorted(a["cache"]["hit"] for a in answers) == [False] + [True] * 199
    assert {a["output_data"]["run"] for a in answers} == {1}
    assert len({a["execution_id"] for a in answers}) == 200


@pytest.mark.parametrize("pad", [0, 2000], ids=["a small answer", "an answer gzip would vary"])
def test_answers_match_the_asgi_path_with_the_wrappers_on(pad: int) -> None:
    # Issue 17, 4: gzip and CORS add Vary to every answer of theirs; so does the direct route.
    settings = ServerSettings(compression=True, cors_origins=("https://a.example",))
    counting = CountingApp(direct_tool(), settings)
    with Served(with_middleware(counting, settings)) as served:
        first = directly(counting, served.port, execute_request(f"vary-{pad}", pad=pad))
        second = through_asgi(counting, served.port, execute_request(f"vary2-{pad}", pad=pad))
    assert shape(first) == shape(second)
    expected = "Accept-Encoding, Origin" if pad else "Origin"
    assert first.header("vary") == second.header("vary") == expected


@pytest.mark.parametrize("reset", [True, False], ids=["reset_contextvars", "by default"])
def test_the_direct_route_keeps_uvicorns_reset_contextvars(reset: bool) -> None:
    # Issue 17, 6: with reset_contextvars, a request runs in a fresh context on either path.
    async def seen(input: dict[str, Any]) -> dict[str, Any]:
        return {"outer": OUTER.get("unset")}

    tool = create_tool(
        metadata={"name": "context-tool", "version": "1.0.0", "description": "Sees context"},
        schema={"input": {}},
        execute=seen,
    )
    app = CountingApp(tool, ServerSettings())
    sent = request_bytes("POST", "/api/execute", b"{}")
    with Served(app, outer="outer", reset_contextvars=reset) as served:
        direct = directly(app, served.port, sent)
        asgi = through_asgi(app, served.port, sent)
    assert direct.json()["output_data"] == asgi.json()["output_data"]
    if reset:
        assert direct.json()["output_data"] == {"outer": "unset"}


@pytest.mark.parametrize(
    ("wrappers", "found"),
    [
        ([], True),
        ([GZipMiddleware], True),
        ([CORSMiddleware], True),
        ([GZipMiddleware, CORSMiddleware], True),  # with_middleware's order: gzip inside
        ([CORSMiddleware, GZipMiddleware], False),  # CORS inside gzip: another Vary order
        ([ProxyHeadersMiddleware, GZipMiddleware], True),
    ],
)
def test_the_route_is_found_through_known_wrappers(wrappers: list[Any], found: bool) -> None:
    app: Any = ToolApp(direct_tool(), ServerSettings())
    for wrapper in wrappers:  # innermost first
        app = wrapper(app, allow_origins=["*"]) if wrapper is CORSMiddleware else wrapper(app)
    assert (DirectRoute.find(app) is not None) is found


def test_an_unknown_wrapper_or_a_streaming_tool_takes_the_asgi_path() -> None:
    class Unknown:
        def __init__(self, app: Any) -> None:
            self.app = app

    assert DirectRoute.find(Unknown(ToolApp(direct_tool(), ServerSettings()))) is None
    streaming = load_tool(str(TOOLS / "streamer.py"))
    assert DirectRoute.find(ToolApp(streaming, ServerSettings())) is None
