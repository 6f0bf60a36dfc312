"""``context.http``: one pooled client per process (per loop), keep-alive, bounded, its waits
measured, closed on shutdown."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ai_spine_tools import (
    HTTPTimeout,
    ToolContext,
    UpstreamConnectionError,
    UpstreamTimeoutError,
    create_tool,
)
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.outbound import _poolwatch
from ai_spine_tools.outbound._http import (
    HTTPSettings,
    close_shared_client,
    configure_http,
    http_stats,
    shared_client,
)
from ai_spine_tools.outbound._poolwatch import configure_pool_watch
from ai_spine_tools.testing import AsyncToolTestClient


class Upstream:
    """A tiny keep-alive HTTP/1.1 server on loopback that counts its connections."""

    def __init__(self, delay: float = 0.0) -> None:
        self.connections = 0
        self.open = 0
        self.peak_open = 0
        self.delay = delay
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(self.delay)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    yield server
    await close_shared_client()  # its keep-alive connections first: wait_closed waits for them
    server.server.close()
    await server.server.wait_closed()


@pytest.fixture(autouse=True)
async def fresh_client() -> AsyncIterator[None]:
    yield
    await close_shared_client()
    configure_http()


async def test_one_shared_client_per_process_loop() -> None:
    one = ToolContext(execution_id="a", tool_id="t", tool_version="1")
    two = ToolContext(execution_id="b", tool_id="t", tool_version="1")
    assert one.http is two.http
    await one.http.aclose()
    assert not one.http.is_closed  # a closed client is replaced


async def test_keep_alive_reuses_one_connection(upstream: Upstream) -> None:
    client = shared_client()
    for _ in range(20):
        assert (await client.get(upstream.url)).text == "ok"
    assert upstream.connections == 1


async def test_connections_are_bounded_by_max_connections(upstream: Upstream) -> None:
    configure_http(max_connections=5)
    upstream.delay = 0.01
    client = shared_client()
    responses = await asyncio.gather(*(client.get(upstream.url) for _ in range(50)))
    assert all(r.status_code == 200 for r in responses)
    assert upstream.peak_open <= 5


@pytest.fixture
def watch_waits() -> Iterator[None]:
    """Warn about waits over 50 ms, from a clean slate; the default again afterwards."""
    _poolwatch._last_warned.clear()
    configure_pool_watch(50)
    yield
    configure_pool_watch(100)
    _poolwatch._last_warned.clear()


async def test_waits_for_a_connection_are_measured_and_warned_about(
    upstream: Upstream, watch_waits: None, caplog: pytest.LogCaptureFixture
) -> None:
    configure_http(max_connections=1)
    upstream.delay = 0.2
    client = shared_client()
    with caplog.at_level(logging.WARNING, "ai_spine_tools.diagnostics"):
        responses = await asyncio.gather(client.get(upstream.url), client.get(upstream.url))
    assert [r.text for r in responses] == ["ok", "ok"]
    stats = http_stats()
    assert stats is not None
    assert (stats["acquired"], stats["waiting"], upstream.peak_open) == (2, 0, 1)
    assert stats["acquire_wait_ms"]["max"] >= 150  # the second waited for the first's answer
    assert 0 < stats["acquire_wait_ms"]["avg"] < stats["acquire_wait_ms"]["max"]
    assert "for a connection from pool 'http'" in caplog.text


async def test_a_streamed_response_holds_its_connection_until_closed(upstream: Upstream) -> None:
    configure_http(max_connections=1)
    client = shared_client()
    async with client.stream("GET", upstream.url) as streamed:
        second = asyncio.create_task(client.get(upstream.url))
        await asyncio.sleep(0.1)
        stats = http_stats()
        assert stats is not None
        assert not second.done()
        assert stats["waiting"] == 1
        assert await streamed.aread() == b"ok"
    assert (await asyncio.wait_for(second, 5)).text == "ok"  # closing the stream let it by


async def test_a_wait_past_the_pool_timeout_is_a_pool_timeout(upstream: Upstream) -> None:
    configure_http(max_connections=1)
    client = shared_client()
    async with client.stream("GET", upstream.url) as streamed:
        with pytest.raises(UpstreamTimeoutError, match="no outbound connection was free"):
            await client.get(upstream.url, timeout=HTTPTimeout(5, pool=0.1))
        await streamed.aread()
    stats = http_stats()
    assert stats is not None
    assert stats["waiting"] == 0
    assert (await client.get(upstream.url)).text == "ok"  # the slot it never got is not lost


async def test_a_failed_request_gives_its_connection_back() -> None:
    configure_http(max_connections=1)
    client = shared_client()
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    for _ in range(3):
        with pytest.raises(UpstreamConnectionError, match="cannot connect"):
            await client.get(dead)
    stats = http_stats()
    assert stats is not None
    assert (stats["acquired"], stats["waiting"]) == (3, 0)


async def test_the_server_sizes_the_pool_and_closes_it_on_shutdown(upstream: Upstream) -> None:
    seen: list[Any] = []

    async def execute(input: dict[str, Any], config: dict[str, Any], context: ToolContext) -> Any:
        seen.append(context.http)
        response = await context.http.get(upstream.url)
        return {"status": response.status_code}

    tool = create_tool(
        metadata={"name": "fetcher", "version": "1.0.0", "description": "d", "capabilities": ["x"]},
        execute=execute,
    )
    async with AsyncToolTestClient(tool, ServerSettings(max_connections=7)) as client:
        assert (await client.execute({})).output_data == {"status": 200}
        await client.execute({})
        pools = (await client.get("/metrics")).json["pools"]
        assert pools["http"]["max_connections"] == 7
        assert pools["http"]["open"] == 1
    assert seen[0] is seen[1]
    assert seen[0].is_closed  # the tool's shutdown closed it


def test_settings_have_sane_defaults() -> None:
    settings = HTTPSettings()
    assert settings.max_connections == 100
    assert settings.timeout > settings.connect_timeout > 0


async def test_pool_figures_count_idle_and_open_connections(upstream: Upstream) -> None:
    """``idle`` comes from aiohttp's pool (a private attribute): this fails if it moves."""
    client = shared_client()
    for _ in range(3):
        await client.get(upstream.url)
    stats = http_stats()
    assert stats is not None
    assert (stats["open"], stats["idle"], stats["in_use"], stats["acquired"]) == (1, 1, 0, 3)


def test_the_client_is_made_without_importing_aiohttp() -> None:
    """aiohttp is imported on the first request, in a thread, not when the client is made."""
    code = (
        "import asyncio, sys\n"
        "from ai_spine_tools.outbound._http import shared_client\n"
        "async def main():\n"
        "    shared_client()\n"
        "    print('aiohttp' in sys.modules)\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
