"""An event loop on a background thread, so synchronous code can drive async apps.

The tool's app, its lifespan task and its resources all live on the portal's loop for as long as
the portal runs; callers on any thread (with or without a loop of their own) hand it coroutines
and wait for the results. This is what lets a plain ``def test_...`` use a tool whose ``setup``
opened pools bound to a loop: the loop outlives each call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["Portal"]

T = TypeVar("T")


class Portal:
    """Runs an asyncio loop on a daemon thread between ``start()`` and ``stop()``."""

    def __init__(self, name: str = "ai-spine-portal") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._loop is not None

    def start(self) -> None:
        """Start the loop thread (a second call does nothing)."""
        if self._loop is not None:
            return
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name=self.name, daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the portal's loop and block until it returns (or raises)."""
        loop = self._require(coro)
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a portal cannot wait for itself: await the coroutine instead")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    async def acall(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the portal's loop and await its result from another loop."""
        loop = self._require(coro)
        if asyncio.get_running_loop() is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def stop(self) -> None:
        """Cancel what is still running on the loop, close it and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        asyncio.run_coroutine_threadsafe(_finish(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def _require(self, coro: Coroutine[Any, Any, Any]) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            coro.close()  # never awaited: close it so no "was never awaited" warning fires
            raise RuntimeError(f"{self.name} is not running; start it first")
        return self._loop


async def _finish() -> None:
    current = asyncio.current_task()
    leftovers = [task for task in asyncio.all_tasks() if task is not current]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)
    loop = asyncio.get_running_loop()
    await loop.shutdown_asyncgens()
    await loop.shutdown_default_executor()
