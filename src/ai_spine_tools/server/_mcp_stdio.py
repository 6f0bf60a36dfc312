"""The MCP server on stdin and stdout (``ai-spine mcp path/to/tool.py``), for desktop agents
that start the tool themselves.

Every request read before the end of input is answered before the server exits: the SDK cancels
the handlers still running when its input ends, so ``_Draining`` holds that end back until
``_Answers`` has seen an answer to each request it gave.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ai_spine_tools.core._tool import Tool
from ai_spine_tools.server._app import ToolApp
from ai_spine_tools.server._inprocess import InProcessApp
from ai_spine_tools.server._mcp import mcp_server, require_sdk
from ai_spine_tools.server._suite import SuiteApp

if TYPE_CHECKING:
    from ai_spine_tools._settings import ServerSettings

__all__ = ["serve_stdio"]

_DRAIN_GRACE_S = 5.0  # past an execution's deadline, for its answer to be written


async def serve_stdio(tool: Tool | Sequence[Tool], settings: ServerSettings) -> None:
    """Serve ``tool`` (or several, listed together) over MCP on stdin and stdout until the
    client closes stdin or the process gets SIGTERM; ``setup`` runs first and ``cleanup`` last,
    either way (a suite's tools: each, and a failed setup stops the start-up).

    Calls go through the same corridor as over HTTP, minus authentication: the client is the
    local process that started this one. While the protocol runs, the SDK points the process's
    stdout at stderr, so stray prints of the tool cannot corrupt it. On SIGTERM the process exits
    (0) right after ``cleanup``: closing the protocol's streams would wait for a read of stdin
    that only ends when the client writes or closes it.
    """
    require_sdk()
    from mcp.server.stdio import stdio_server

    # No /mcp endpoint of its own; and no authentication: that is the HTTP door's.
    own = settings.replace(mcp=False)
    app: ToolApp | SuiteApp
    if isinstance(tool, Tool):
        app = ToolApp(tool, own)
        pipelines = [app.pipeline]
    else:  # a tool whose setup fails stops the start-up: an agent sees the error at once
        app = SuiteApp(tool, own, strict_startup=True)
        pipelines = [one.pipeline for one in app.apps.values()]
    server = mcp_server(pipelines)
    host = InProcessApp(app)  # runs the app's lifespan: setup, shared cache, cleanup
    with contextlib.redirect_stdout(sys.stderr):  # what setup and cleanup print, too
        await host.start()  # RuntimeError naming why, if setup fails
    try:
        async with stdio_server() as (read, write):
            options = server.create_initialization_options()
            longest_ms = max(pipeline.timeout_ms for pipeline in pipelines)
            answers = _Answers(grace_s=longest_ms / 1000.0 + _DRAIN_GRACE_S)
            running = asyncio.ensure_future(
                server.run(_Draining(read, answers), _Answering(write, answers), options)
            )
            terminated = _cancel_on_sigterm(running)
            with contextlib.suppress(asyncio.CancelledError):
                await running
            if terminated.is_set():
                with contextlib.redirect_stdout(sys.stderr):
                    await host.stop()
                sys.stderr.flush()
                os._exit(0)
    finally:
        with contextlib.redirect_stdout(sys.stderr):
            await host.stop()


class _Answers:
    """The ids of the requests read from stdin and not yet answered."""

    def __init__(self, *, grace_s: float) -> None:
        self.pending: set[Any] = set()
        self.grace_s = grace_s
        self._settled = asyncio.Event()
        self._settled.set()

    def expect(self, request_id: Any) -> None:
        self.pending.add(request_id)
        self._settled.clear()

    def answered(self, request_id: Any) -> None:
        self.pending.discard(request_id)
        if not self.pending:
            self._settled.set()

    async def all_answered(self) -> None:
        """Wait until every request read has its answer (at most ``grace_s``: an execution's
        deadline bounds each, so this only ends a request the client cancelled)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), self.grace_s)


class _Draining:
    """The stdio read stream, whose end (stdin closed) comes only once every request it gave
    has been answered."""

    def __init__(self, inner: Any, answers: _Answers) -> None:
        self._inner = inner
        self._answers = answers

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        import anyio
        import mcp_types as types

        try:
            item = await self._inner.receive()
        except anyio.EndOfStream:
            await self._answers.all_answered()
            raise
        message = getattr(item, "message", None)
        if isinstance(message, types.JSONRPCRequest):
            self._answers.expect(message.id)
        elif isinstance(message, types.JSONRPCNotification) and (
            message.method == "notifications/cancelled"
        ):  # a cancelled request gets no answer
            self._answers.answered((message.params or {}).get("requestId"))
        return item

    def __aiter__(self) -> _Draining:
        return self

    async def __anext__(self) -> Any:
        import anyio

        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _Draining:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _Answering:
    """The stdio write stream, noting each request answered."""

    def __init__(self, inner: Any, answers: _Answers) -> None:
        self._inner = inner
        self._answers = answers

    async def send(self, item: Any, /) -> None:
        await self._inner.send(item)
        message = getattr(item, "message", None)
        request_id = getattr(message, "id", None)
        if request_id is not None and not hasattr(message, "method"):  # a response or an error
            self._answers.answered(request_id)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _Answering:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _cancel_on_sigterm(task: asyncio.Future[Any]) -> asyncio.Event:
    """Cancel ``task`` on SIGTERM; the event tells that it happened."""
    terminated = asyncio.Event()

    def stop() -> None:
        terminated.set()
        task.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals (Windows, a thread)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop)
    return terminated
