"""The shared HTTP client's transport: httpx's own, behind ``max_connections`` slots, so that the
wait for a connection is measured.

httpcore queues a request that finds every connection busy, but says nothing of how long it
waited. Here a request first takes one of as many slots as the pool has connections (so httpcore
never has to queue it) and gives it back when its response is closed; the time spent getting the
slot is the pool wait, bounded by the request's pool timeout as httpcore's queue is
(``httpx.PoolTimeout``). It feeds ``pools.http`` in the metrics (``waiting``, ``acquired``,
``acquire_wait_ms``) and the pool-pressure warning through ``_poolwatch.AcquireWaits``, the
counts ``PostgresPool`` keeps too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from ai_spine_tools._poolwatch import AcquireWaits

__all__ = ["MeteredTransport"]


class MeteredTransport(httpx.AsyncBaseTransport):
    """``inner`` with at most ``slots`` requests at a time, and the waits for a slot counted."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        slots: int,
        stats: Callable[[], dict[str, Any] | None] | None = None,
    ) -> None:
        self._inner = inner
        self._slots = asyncio.Semaphore(slots)
        self.waits = AcquireWaits("http", stats)

    @property
    def inner(self) -> httpx.AsyncBaseTransport:
        """The transport that sends the requests (httpx's, with its connection pool)."""
        return self._inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool_timeout = request.extensions.get("timeout", {}).get("pool")
        try:
            with self.waits.measure():
                async with asyncio.timeout(pool_timeout):
                    await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout(
                f"no connection free within {pool_timeout} s", request=request
            ) from None
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:
            self._slots.release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Releasing(response.stream, self._slots.release)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Releasing(httpx.AsyncByteStream):
    """A response body that gives its slot back once, when it is closed."""

    __slots__ = ("_release", "_stream")

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        release, self._release = self._release, None
        try:
            await self._stream.aclose()
        finally:
            if release is not None:
                release()
