"""The guarded HTTP protocol on a real server: head size, slow clients, idle and too many
connections. Each breach gets its documented answer, and the server keeps serving."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from _rawhttp import exchange, read_response, request_bytes
from serverproc import EXAMPLES, ServerProcess, running_server

pytestmark = pytest.mark.slow

READ_TIMEOUT = 2  # seconds; deadlines are checked once a second, so a cut comes within 3 s
HEAD_LIMIT = 4096
CONNECTIONS = 12


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {
        "AI_SPINE_READ_TIMEOUT": str(READ_TIMEOUT),
        "AI_SPINE_KEEP_ALIVE": "1",
        "AI_SPINE_MAX_HEADER_BYTES": str(HEAD_LIMIT),
        "AI_SPINE_MAX_CLIENT_CONNECTIONS": str(CONNECTIONS),
    }
    with running_server(EXAMPLES / "weather.py", env=env) as server:
        yield server


def healthy(server: ServerProcess) -> bool:
    return httpx.get(f"{server.url}/health", timeout=5).status_code == 200


EXECUTE = b'{"input_data": {"city": "Oslo"}}'


@pytest.mark.parametrize(
    ("label", "sent", "status"),
    [
        (
            "headers within the limit",
            request_bytes("GET", "/health", headers=[("X-Pad", "a" * 3000)]),
            200,
        ),
        (
            "one header past the limit",
            request_bytes("GET", "/health", headers=[("X-Pad", "a" * 5000)]),
            431,
        ),
        (
            "many small headers past the limit",
            request_bytes("GET", "/health", headers=[(f"X-H{i}", "v" * 20) for i in range(200)]),
            431,
        ),
        ("a long URL", request_bytes("GET", "/health?" + "q" * 5000), 431),
        ("a head that never ends", b"GET /health HTTP/1.1\r\nX-Endless: " + b"a" * 60_000, 431),
    ],
)
def test_head_size(server: ServerProcess, label: str, sent: bytes, status: int) -> None:
    response = exchange(server.port, [sent])
    assert response.status == status, label
    if status == 431:
        assert response.json()["error_code"] == "HEADERS_TOO_LARGE"
        assert response.json()["error_details"] == {"max_header_bytes": HEAD_LIMIT}
        assert response.header("connection") == "close"
        assert response.header("x-content-type-options") == "nosniff"
    assert healthy(server)


def test_headers_sent_a_line_at_a_time_are_cut_off(server: ServerProcess) -> None:
    lines = [b"POST /api/execute HTTP/1.1\r\n"] + [b"X-Slow: 1\r\n"] * 40
    response = exchange(server.port, lines, gap=0.25)
    assert response.status == 408
    assert response.json()["error_code"] == "REQUEST_TIMEOUT"
    assert response.header("connection") == "close"
    assert response.elapsed < READ_TIMEOUT + 2.5  # not the 10 s the client meant to take
    assert healthy(server)


def test_a_body_sent_a_byte_at_a_time_is_cut_off(server: ServerProcess) -> None:
    head = request_bytes("POST", "/api/execute", b"x" * 60)[:-60]
    response = exchange(server.port, [head, *[b" "] * 40], gap=0.25)
    assert response.status == 408
    assert response.json()["error_details"] == {"read_timeout_s": READ_TIMEOUT}
    assert response.elapsed < READ_TIMEOUT + 2.5
    assert healthy(server)


def test_a_slow_client_within_the_deadline_is_served(server: ServerProcess) -> None:
    request = request_bytes("POST", "/api/execute", EXECUTE)
    pieces = [request[i : i + 20] for i in range(0, len(request), 20)]
    response = exchange(server.port, pieces, gap=0.05)
    assert response.status == 200
    assert response.json()["output_data"]["city"] == "Oslo"


def test_a_connection_that_sends_nothing_is_closed(server: ServerProcess) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        assert sock.recv(1) == b""
    assert time.monotonic() - started < READ_TIMEOUT + 2


def test_an_idle_keep_alive_connection_is_closed(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request_bytes("GET", "/health", close=False))
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed after AI_SPINE_KEEP_ALIVE (1 s)
    assert time.monotonic() - started < 3


def test_past_the_connection_limit_the_answer_is_503_overloaded(server: ServerProcess) -> None:
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(CONNECTIONS)]
    try:
        response = exchange(server.port, [request_bytes("POST", "/api/execute", EXECUTE)])
        # A connection admitted within the limit is still served at it.
        held[0].sendall(request_bytes("POST", "/api/execute", EXECUTE, close=False))
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
