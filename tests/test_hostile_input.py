"""Hostile input over real HTTP, against one server process: each request gets a 4xx with a clear
error, the server answers a health check after each, its memory stays bounded, catastrophic
patterns cannot stall it, and its logs never hold the secrets it was sent.

Duplicate keys in a JSON object: the last one wins, as with ``JSON.parse`` and Python's ``json``
(msgspec decodes them so, at no cost; refusing them would take a second pass over every body).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import httpx
import msgspec
import psutil
import pytest

from _rawhttp import RawResponse, exchange, request_bytes
from serverproc import TOOLS, ServerProcess, running_server
from tools.guarded import CATASTROPHIC

pytestmark = pytest.mark.slow

PLANTED = "Pl4nted-h0stile-secret-42"
MEMORY: dict[str, int] = {}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {"AI_SPINE_LOG_LEVEL": "debug", "AI_SPINE_CONFIG_TOKEN": PLANTED}
    with running_server(TOOLS / "guarded.py", env=env) as server:
        assert post(server, {"input_data": {"name": "warm-up"}}).status == 200
        MEMORY["before"] = psutil.Process(server.process.pid).memory_info().rss
        yield server
        server.stop()
        output = server.output()
        assert PLANTED not in output  # not in the debug log, the access log, or a traceback


def post(server: ServerProcess, body: object) -> RawResponse:
    return exchange(server.port, [request_bytes("POST", "/api/execute", msgspec.json.encode(body))])


def healthy(server: ServerProcess) -> bool:
    return httpx.get(f"{server.url}/health", timeout=10).status_code == 200


def execute(body: bytes, content_type: str = "application/json") -> Callable[[], bytes]:
    return lambda: request_bytes("POST", "/api/execute", body, [("Content-Type", content_type)])


def raw(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def nest(depth: int) -> bytes:
    return b'{"input_data": {"extra": ' + b"[" * depth + b"]" * depth + b"}}"


def nest_objects(depth: int) -> bytes:
    return b'{"input_data": {"extra": ' + b'{"a":' * depth + b"1" + b"}" * depth + b"}}"


TEN_MB = 10_000_000
HOSTILE: list[tuple[str, Callable[[], bytes], int, str | None]] = [
    # malformed JSON, of many kinds
    ("not JSON", execute(b"{not json"), 400, "INVALID_JSON"),
    ("empty body", execute(b""), 400, "INVALID_JSON"),
    ("whitespace body", execute(b" \n\t "), 400, "INVALID_JSON"),
    ("truncated", execute(b'{"input_data": {"name": "x"'), 400, "INVALID_JSON"),
    ("trailing garbage", execute(b'{"input_data": {}} {}'), 400, "INVALID_JSON"),
    ("trailing comma", execute(b'{"input_data": {"count": 1,}}'), 400, "INVALID_JSON"),
    ("single quotes", execute(b"{'input_data': {}}"), 400, "INVALID_JSON"),
    ("comment", execute(b'{"input_data": {} /* hi */}'), 400, "INVALID_JSON"),
    ("leading zero", execute(b'{"input_data": {"count": 01}}'), 400, "INVALID_JSON"),
    ("NaN literal", execute(b'{"input_data": {"ratio": NaN}}'), 400, "INVALID_JSON"),
    ("Infinity literal", execute(b'{"input_data": {"ratio": Infinity}}'), 400, "INVALID_JSON"),
    ("bad escape", execute(b'{"input_data": {"name": "\\x41"}}'), 400, "INVALID_JSON"),
    ("raw newline in a string", execute(b'{"input_data": {"name": "a\nb"}}'), 400, "INVALID_JSON"),
    ("byte order mark", execute(b'\xef\xbb\xbf{"input_data": {}}'), 400, "INVALID_JSON"),
    ("lone surrogate", execute(b'{"input_data": {"name": "\\ud800"}}'), 400, "INVALID_JSON"),
    ("body is an array", execute(b"[1, 2]"), 400, "VALIDATION_ERROR"),
    ("body is a string", execute(b'"input_data"'), 400, "VALIDATION_ERROR"),
    ("body is null", execute(b"null"), 400, "VALIDATION_ERROR"),
    ("input is an array", execute(b'{"input_data": [1]}'), 400, "VALIDATION_ERROR"),
    ("config is a string", execute(b'{"config": "x"}'), 400, "CONFIGURATION_ERROR"),
    # encodings
    ("invalid UTF-8", execute(b'{"input_data": {"name": "\xff\xfe"}}'), 400, "INVALID_JSON"),
    ("overlong slash", execute(b'{"input_data": {"name": "\xc0\xaf"}}'), 400, "INVALID_JSON"),
    ("overlong 3-byte", execute(b'{"input_data": {"name": "\xe0\x80\xaf"}}'), 400, "INVALID_JSON"),
    (
        "encoded surrogate",
        execute(b'{"input_data": {"name": "\xed\xa0\x80"}}'),
        400,
        "INVALID_JSON",
    ),
    ("invalid UTF-8 in a key", execute(b'{"input_data": {"\xc3\x28": 1}}'), 400, "INVALID_JSON"),
    ("raw NUL byte", execute(b'{"input_data": {"name": "a\x00b"}}'), 400, "INVALID_JSON"),
    ("escaped NUL", execute(b'{"input_data": {"code": "\\u0000"}}'), 400, "VALIDATION_ERROR"),
    # sizes and shapes
    ("100 levels of arrays", execute(nest(100)), 400, "INVALID_JSON"),
    ("100 levels of objects", execute(nest_objects(100)), 400, "INVALID_JSON"),
    ("100,000 levels", execute(nest(100_000)), 400, "INVALID_JSON"),
    (
        "10 MB string",
        execute(b'{"input_data": {"name": "' + b"x" * TEN_MB + b'"}}'),
        400,
        "VALIDATION_ERROR",
    ),
    (
        "10 MB string in a pattern field",
        execute(b'{"input_data": {"code": "' + b"A" * TEN_MB + b'"}}'),
        400,
        "VALIDATION_ERROR",
    ),
    (
        "11 MB body",
        execute(b'{"input_data": {"name": "' + b"x" * 11_000_000 + b'"}}'),
        413,
        "PAYLOAD_TOO_LARGE",
    ),
    (
        "a million-item array",
        execute(b'{"input_data": {"extra": [' + b"0," * 999_999 + b"0]}}"),
        413,
        "PAYLOAD_TOO_LARGE",
    ),
    (
        "a million empty objects",
        execute(b'{"input_data": {"extra": [' + b"{}," * 999_999 + b"{}]}}"),
        413,
        "PAYLOAD_TOO_LARGE",
    ),
    (
        "a million keys",
        execute(
            b'{"input_data": {"extra": {'
            + b",".join(b'"k%d":0' % i for i in range(1_000_000))
            + b"}}}"
        ),
        413,
        "PAYLOAD_TOO_LARGE",
    ),
    (
        "many unknown fields",
        execute(msgspec.json.encode({"input_data": {f"u{i}": i for i in range(5000)}})),
        400,
        "VALIDATION_ERROR",
    ),
    # numbers
    ("beyond float range", execute(b'{"input_data": {"ratio": 1e400}}'), 400, "INVALID_JSON"),
    ("below float range", execute(b'{"input_data": {"ratio": -1e400}}'), 400, "INVALID_JSON"),
    (
        "400-digit integer",
        execute(b'{"input_data": {"count": 1' + b"0" * 400 + b"}}"),
        400,
        "VALIDATION_ERROR",
    ),
    # duplicate keys: the last wins
    (
        "duplicate key, last valid",
        execute(b'{"input_data": {"count": "x", "count": 5}}'),
        200,
        None,
    ),
    (
        "duplicate key, last invalid",
        execute(b'{"input_data": {"count": 5, "count": "x"}}'),
        400,
        "VALIDATION_ERROR",
    ),
    # content types
    ("text/plain", execute(b'{"input_data": {}}', "text/plain"), 415, "INVALID_CONTENT_TYPE"),
    ("form", execute(b"name=x", "application/x-www-form-urlencoded"), 415, "INVALID_CONTENT_TYPE"),
    (
        "multipart",
        execute(b"--b--", "multipart/form-data; boundary=b"),
        415,
        "INVALID_CONTENT_TYPE",
    ),
    ("xml", execute(b"<input/>", "application/xml"), 415, "INVALID_CONTENT_TYPE"),
    ("json look-alike", execute(b"{}", "application/jsonp"), 415, "INVALID_CONTENT_TYPE"),
    (
        "latin-1 declared",
        execute(b'{"input_data": {"name": "\xe9"}}', "application/json; charset=latin-1"),
        400,
        "INVALID_JSON",
    ),
    # HTTP itself
    ("unknown method", raw(b"FOO /health HTTP/1.1\r\nHost: x\r\n\r\n"), 400, None),
    (
        "Content-Length and chunked together",
        raw(
            b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ),
        400,
        None,
    ),
    (
        "bad chunk size",
        raw(b"POST /api/execute HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        400,
        None,
    ),
    (
        "a 20 KB header",
        raw(request_bytes("GET", "/health", headers=[("X-Pad", "p" * 20_000)])),
        431,
        "HEADERS_TOO_LARGE",
    ),
    # header injection
    (
        "CR LF in a header value",
        raw(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\rb\r\n\r\n"),
        400,
        None,
    ),
    (
        "bare LF in a header value",
        raw(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\nSet-Cookie: x=1\r\n\r\n"),
        400,
        None,
    ),
    # path traversal
    ("dot-dot", raw(request_bytes("GET", "/../../etc/passwd")), 404, "ENDPOINT_NOT_FOUND"),
    (
        "encoded dot-dot",
        raw(request_bytes("GET", "/%2e%2e/%2e%2e/etc/passwd")),
        404,
        "ENDPOINT_NOT_FOUND",
    ),
    (
        "encoded slashes",
        raw(request_bytes("GET", "/api/execute/..%2f..%2f..%2fetc%2fpasswd")),
        404,
        "ENDPOINT_NOT_FOUND",
    ),
    (
        "backslashes",
        raw(request_bytes("GET", "/..\\..\\windows\\win.ini")),
        404,
        "ENDPOINT_NOT_FOUND",
    ),
    (
        "through a route",
        raw(request_bytes("GET", "/dashboard/../../../etc/passwd")),
        404,
        "ENDPOINT_NOT_FOUND",
    ),
    ("NUL in the path", raw(request_bytes("GET", "/health%00.json")), 404, "ENDPOINT_NOT_FOUND"),
]


@pytest.mark.parametrize(
    ("label", "build", "status", "code"), HOSTILE, ids=[case[0] for case in HOSTILE]
)
def test_hostile_request_gets_a_clear_4xx_and_the_server_keeps_serving(
    server: ServerProcess,
    label: str,
    build: Callable[[], bytes],
    status: int,
    code: str | None,
) -> None:
    response = exchange(server.port, [build()])
    assert response.status == status, (label, response.head, response.body[:300])
    if code is not None:
        body = response.json()
        assert body["status"] == "error"
        assert body["error_code"] == code
        assert body["error_message"]
        assert b"root:" not in response.body  # nothing was read from the file system
        if status == 404:
            assert "POST /api/execute" in body["error_details"]["available_endpoints"]
    elif status == 400:
        assert response.body  # uvicorn's own parser refusal says why, in plain text
    assert healthy(server)


def test_a_request_id_carrying_a_header_is_not_echoed(server: ServerProcess) -> None:
    # On the wire this is two headers: the second is a request header, never a response one.
    injected = request_bytes(
        "GET", "/health", headers=[("X-Request-ID", "a\r\nSet-Cookie: pwned=1")]
    )
    response = exchange(server.port, [injected])
    assert response.status == 200
    assert response.header("set-cookie") is None


@pytest.mark.parametrize(
    "request_id",
    ["a" * 5000, "a b", "a;b=c", "<script>", "é", "../../etc"],
)
def test_an_insane_request_id_is_replaced(server: ServerProcess, request_id: str) -> None:
    sent = request_bytes("GET", "/health", headers=[("X-Request-ID", request_id)])
    response = exchange(server.port, [sent.decode("latin-1").encode("utf-8")])
    assert response.status == 200
    echoed = response.header("x-request-id")
    assert echoed is not None
    assert echoed != request_id
    assert len(echoed) == 36


def test_an_execution_id_is_never_used_as_a_header_unless_sane(server: ServerProcess) -> None:
    response = post(server, {"input_data": {}, "execution_id": "run-1\r\nSet-Cookie: pwned=1"})
    assert response.status == 200
    assert response.header("set-cookie") is None
    assert response.json()["execution_id"] == "run-1\r\nSet-Cookie: pwned=1"  # in JSON, escaped
    assert len(response.header("x-request-id") or "") == 36


@pytest.mark.parametrize("field", sorted(CATASTROPHIC))
def test_a_catastrophic_pattern_cannot_stall_the_server(server: ServerProcess, field: str) -> None:
    evil = {
        "nested_plus": "a" * 50_000 + "!",
        "nested_star": "a" * 50_000,
        "alternation": "a" * 50_000 + "!",
        "overlap": "a" * 50_000 + "!",
        "words": "a " * 25_000 + "!",
        "double": "x" * 50_000,
    }[field]

    async def together() -> tuple[httpx.Response, list[float], float]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            started = time.monotonic()
            call = asyncio.ensure_future(
                client.post("/api/execute", json={"input_data": {field: evil}})
            )
            probes = []
            while not call.done():  # the server answers others while it matches
                probe = time.monotonic()
                assert (await client.get("/health")).status_code == 200
                probes.append(time.monotonic() - probe)
            return await call, probes, time.monotonic() - started

    response, probes, took = asyncio.run(together())
    assert response.status_code == 400
    assert response.json()["error_details"]["errors"][0] == {
        "path": field,
        "code": "pattern",
        "message": response.json()["error_details"]["errors"][0]["message"],
    }
    assert took < 5  # a backtracking engine would take longer than the universe has left
    assert max(probes, default=0.0) < 2


def test_memory_stays_bounded(server: ServerProcess) -> None:
    # After the whole suite (10 MB strings, million-item arrays, 100,000-level nesting).
    for _ in range(3):  # and a few more of the largest
        exchange(server.port, [execute(b'{"input_data": {"name": "' + b"x" * TEN_MB + b'"}}')()])
    after = psutil.Process(server.process.pid).memory_info().rss
    before = MEMORY.get("before", after)
    assert after - before < 150 * 1024 * 1024, (before, after)
    assert healthy(server)
