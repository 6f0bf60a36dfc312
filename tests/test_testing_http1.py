"""The load generator's HTTP/1.1 client, against scripted servers on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from ai_spine_tools.testing._http1 import HTTP1Pool, HTTPConnectionError, HTTPTimeoutError
from serverproc import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """Run ``handler`` for each connection to a fresh loopback port; yield its base URL."""
    writers: list[asyncio.StreamWriter] = []

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(connected, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def answering(*responses: bytes, then_close: bool = False) -> Handler:
    """Answer each request on a connection with the next response."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for response in responses:
            await read_request(reader)
            writer.write(response)
            await writer.drain()
        if not then_close:
            await reader.read()

    return handler


@pytest.mark.parametrize(
    ("response", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nX-Trailer: 1\r\n\r\n",
            b"hello",
        ),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello", b"hello"),
        (b"HTTP/1.0 200 OK\r\n\r\nhello", b"hello"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ],
)
async def test_reads_each_framing(response: bytes, body: bytes) -> None:
    async with serving(answering(response, then_close=True)) as url:
        pool = HTTP1Pool(url)
        try:
            assert await pool.request("GET", "/") == (int(response[9:12]), body)
        finally:
            await pool.aclose()


async def test_keeps_the_connection_alive() -> None:
    connections = 0
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await answering(ok, ok, ok)(reader, writer)

    async with serving(handler) as url:
        pool = HTTP1Pool(url)
        for _ in range(3):
            assert await pool.request("POST", "/api/execute", b"{}") == (200, b"ok")
        await pool.aclose()
    assert connections == 1


async def test_sends_host_path_headers_and_body() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with serving(handler) as url:
        pool = HTTP1Pool(url + "/tools/", headers={"X-API-Key": "k1", "Host": "ignored"})
        await pool.request("POST", "/api/execute", b'{"a": 1}')
        await pool.aclose()
    head, body = seen[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /tools/api/execute HTTP/1.1"
    assert lines[1] == f"Host: {url.removeprefix('http://')}"
    assert "X-API-Key: k1" in lines
    assert "Host: ignored" not in lines
    assert body == b'{"a": 1}'


async def test_retries_once_when_an_idle_connection_was_closed() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with serving(answering(ok, then_close=True)) as url:  # one answer per connection
        pool = HTTP1Pool(url)
        assert await pool.request("GET", "/") == (200, b"ok")
        await asyncio.sleep(0.05)  # the server has closed the kept-alive connection by now
        assert await pool.request("GET", "/") == (200, b"ok")
        await pool.aclose()


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (b"", "the server closed the connection"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "IncompleteReadError"),
        (b"SMTP ready\r\n\r\n", "malformed response"),
    ],
)
async def test_broken_responses_are_connection_errors(response: bytes, message: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response)
        await writer.drain()

    async with serving(handler) as url:
        pool = HTTP1Pool(url)
        with pytest.raises(HTTPConnectionError, match=message):
            await pool.request("GET", "/")
        await pool.aclose()


async def test_times_out() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with serving(handler) as url:
        pool = HTTP1Pool(url, timeout=0.1)
        with pytest.raises(HTTPTimeoutError, match=r"no response within 0\.1 s"):
            await pool.request("GET", "/")
        await pool.aclose()


async def test_refused_connection_is_a_connection_error() -> None:
    pool = HTTP1Pool(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(HTTPConnectionError, match="cannot connect"):
        await pool.request("GET", "/")


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("ftp://127.0.0.1", {}),
        ("http://127.0.0.1", {"X-Bad": "a\r\nInjected: 1"}),
        ("http://127.0.0.1", {"Bad:Name": "v"}),
    ],
)
def test_bad_urls_and_headers_are_refused(url: str, headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        HTTP1Pool(url, headers=headers)
