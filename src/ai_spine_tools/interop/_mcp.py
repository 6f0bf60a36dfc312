"""The tool over the Model Context Protocol, with the official ``mcp`` SDK (the ``[mcp]`` extra).

Two transports serve the same MCP server:

- Streamable HTTP at ``/mcp`` on the tool server, when ``AI_SPINE_MCP`` is on (``ai-spine serve
  --mcp``). ``ToolApp`` authenticates the request as it does ``/api/execute`` and hands it to
  ``MCPEndpoint``. Sessions are stateless, so any worker process (or instance) can answer any
  request, and answers are plain JSON.
- stdio (``ai-spine mcp path/to/tool.py``), for desktop agents that start the tool themselves.
  Every request read before the end of input is answered before the server exits (the SDK
  cancels the handlers still running when its input ends; ``_Draining`` holds that end back).

Either way, the server lists one tool whose ``inputSchema`` is ``tool.json_schema()``, and a
``tools/call`` runs through ``ToolApp.execute_call``: the execute corridor of ``/api/execute``,
with its overload limit, rate limits, validation, result cache, deadline, metrics and error
mapping. A success is the ``output_data`` as structured content (and as JSON text); an error is an
``isError`` result whose text is the error code and message, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from ai_spine_tools.exceptions import ServerConfigurationError
from ai_spine_tools.interop._export import mcp_tool

if TYPE_CHECKING:
    import mcp_types as types
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel import Server

    from ai_spine_tools.core._settings import ServerSettings
    from ai_spine_tools.core._tool import Tool
    from ai_spine_tools.server._app import ToolApp
    from ai_spine_tools.server._wire import Receive, Scope, Send

__all__ = ["MCPEndpoint", "mcp_server", "serve_stdio"]

_DRAIN_GRACE_S = 5.0  # past an execution's deadline, for its answer to be written

_MISSING_SDK = (
    "MCP needs the mcp package, which is not installed: pip install 'ai-spine-tools[mcp]'"
)


def _require_sdk() -> None:
    try:
        import mcp.server.lowlevel  # noqa: F401
    except ImportError as exc:
        missing = (exc.name or "mcp").partition(".")[0] in ("mcp", "mcp_types")
        raise ServerConfigurationError(
            _MISSING_SDK
            if missing
            else f"MCP cannot start: importing the mcp package failed: {exc}",
            details={"variable": "AI_SPINE_MCP"},
        ) from None


def mcp_server(app: ToolApp) -> Server[Any]:
    """Return the MCP server of ``app``'s tool: one tool, called through ``app.execute_call``."""
    _require_sdk()
    import mcp_types as types
    from mcp.server.lowlevel import Server
    from mcp.shared.exceptions import MCPError

    tool = app.tool
    listed = types.Tool.model_validate(mcp_tool(tool))
    schema = listed.input_schema

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[listed])

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        if params.name != tool.name:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool {params.name!r}; use {tool.name!r}")
        carrier = ctx.request  # the HTTP request that carried the call (None over stdio)
        scope = getattr(carrier, "scope", None)
        status, body = await app.execute_call(params.arguments or {}, scope=scope)
        return tool_result(body, streamed=tool.streams and status == 200)

    return Server(
        tool.name,
        version=tool.version,
        description=tool.metadata.description,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        # Header validation of modern tools/call requests reads the schema from here, rather than
        # running tools/list once per call.
        get_tool_input_schema=lambda name: schema if name == tool.name else None,
    )


def tool_result(body: bytes, *, streamed: bool = False) -> types.CallToolResult:
    """Turn what ``/api/execute`` answered into an MCP tool result.

    A success carries ``output_data`` as structured content and as JSON text; an error is an
    ``isError`` result with ``CODE: message`` as text and the error fields as structured content.
    A streamed body (NDJSON) becomes ``{"items": [...]}``, as ``tool.run`` collects it.
    """
    import mcp_types as types

    if streamed:
        records = [json.loads(line) for line in body.splitlines() if line.strip()]
        envelope = records[-1]
        items = [record["data"] for record in records if record.get("type") == "item"]
        if envelope.get("status") == "success":
            envelope = {**envelope, "output_data": {"items": items}}
    else:
        envelope = json.loads(body)
    meta = {
        key: envelope[key]
        for key in ("execution_id", "execution_time_ms", "cache")
        if envelope.get(key) is not None
    }
    if envelope.get("status") == "success":
        data = envelope["output_data"]
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(data, ensure_ascii=False))],
            structured_content=data,
            is_error=False,
            _meta={"ai_spine": meta},
        )
    error = {
        key: envelope[key]
        for key in (
            "error_code",
            "error_message",
            "error_type",
            "error_details",
            "retryable",
            "retry_after_ms",
        )
        if key in envelope
    }
    text = f"{error.get('error_code', 'EXECUTION_ERROR')}: {error.get('error_message', '')}"
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=error,
        is_error=True,
        _meta={"ai_spine": meta},
    )


class MCPEndpoint:
    """The Streamable HTTP transport of the MCP server, mounted at ``/mcp`` by ``ToolApp``.

    Its session manager runs from the app's lifespan start-up to its shut-down (``start`` and
    ``stop``), or from the first request when the app is driven without a lifespan.
    """

    def __init__(self, app: ToolApp) -> None:
        _require_sdk()
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        self.server = mcp_server(app)
        # Stateless, with JSON answers: no session lives in one process, so several workers
        # and instances behind a load balancer serve one client; there is nothing to stream.
        self.sessions = StreamableHTTPSessionManager(
            self.server,
            stateless=True,
            json_response=True,
            max_request_body_size=app.settings.max_body_bytes,
        )
        self._running: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Run the session manager in a task of its own until ``stop``; wait until it runs."""
        if self._running is None:

            async def run() -> None:
                async with self.sessions.run():
                    self._ready.set()
                    await self._stopping.wait()

            self._running = asyncio.create_task(run(), name="ai-spine-mcp")
        if self._ready.is_set():
            return
        running = self._running
        waiter = asyncio.ensure_future(self._ready.wait())
        await asyncio.wait({waiter, running}, return_when=asyncio.FIRST_COMPLETED)
        if not self._ready.is_set():
            waiter.cancel()
            running.result()  # raises why it could not start

    async def stop(self) -> None:
        """Close the session manager (the requests it still serves are cancelled)."""
        running, self._running = self._running, None
        if running is None:
            return
        self._stopping.set()
        with contextlib.suppress(Exception):
            await running

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._ready.is_set():
            await self.start()
        await self.sessions.handle_request(scope, receive, send)


async def serve_stdio(tool: Tool, settings: ServerSettings) -> None:
    """Serve ``tool`` over MCP on stdin and stdout until the client closes stdin or the process
    gets SIGTERM; the tool's ``setup`` runs first and its ``cleanup`` last, either way.

    Calls go through the same corridor as over HTTP, minus authentication: the client is the
    local process that started this one. While the protocol runs, the SDK points the process's
    stdout at stderr, so stray prints of the tool cannot corrupt it. On SIGTERM the process exits
    (0) right after ``cleanup``: closing the protocol's streams would wait for a read of stdin
    that only ends when the client writes or closes it.
    """
    _require_sdk()
    from mcp.server.stdio import stdio_server

    from ai_spine_tools.server._app import ToolApp
    from ai_spine_tools.server._inprocess import InProcessApp

    # No /mcp endpoint of its own; and no authentication: that is the HTTP door's.
    app = ToolApp(tool, settings.replace(mcp=False))
    server = mcp_server(app)
    host = InProcessApp(app)  # runs the app's lifespan: setup, shared cache, cleanup
    with contextlib.redirect_stdout(sys.stderr):  # what setup and cleanup print, too
        await host.start()  # RuntimeError naming why, if setup fails
    try:
        async with stdio_server() as (read, write):
            options = server.create_initialization_options()
            answers = _Answers(grace_s=app.timeout_ms / 1000.0 + _DRAIN_GRACE_S)
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
