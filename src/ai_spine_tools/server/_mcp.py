"""The tool over the Model Context Protocol, with the official ``mcp`` SDK (the ``[mcp]`` extra).

Two transports serve the same MCP server:

- Streamable HTTP at ``/mcp`` on the tool server, when ``AI_SPINE_MCP`` is on (``ai-spine serve
  --mcp``), or at a suite's root. ``MCPEndpoint.serve`` checks the origin, authenticates the
  request as ``/api/execute`` is, reads the body within its limit (a signed one verified), and
  hands it to the SDK's session manager, for ``ToolApp`` and ``SuiteApp`` alike. Sessions are
  stateless, so any worker process (or instance) can answer any request, and answers are plain
  JSON.
- stdio (``ai-spine mcp path/to/tool.py``), for desktop agents that start the tool themselves.
  Every request read before the end of input is answered before the server exits (the SDK
  cancels the handlers still running when its input ends; ``_mcp_stdio`` holds that end back).

Either way, the server lists the tool (or every tool of a suite, ``_suite``) with
``tool.json_schema()`` as its ``inputSchema``, and a ``tools/call`` runs through
``execute_call``: the execution pipeline of that tool's ``/api/execute``,
with its overload limit, rate limits, validation, result cache, deadline, metrics and error
mapping. A success is the ``output_data`` as structured content (and as JSON text); an error is an
``isError`` result whose text is the error code and message, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ai_spine_tools._version import __version__
from ai_spine_tools.core._output import ENCODER
from ai_spine_tools.exceptions import MissingExtraError, ServerConfigurationError, ToolError
from ai_spine_tools.interop._export import mcp_tool
from ai_spine_tools.server._guards import check_origin
from ai_spine_tools.server._wire import _JSON, Message, Request, _DisconnectedError, _replay

if TYPE_CHECKING:
    import mcp_types as types
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel import Server

    from ai_spine_tools._settings import ServerSettings
    from ai_spine_tools.server._answers import Answers
    from ai_spine_tools.server._guards import AuthGate
    from ai_spine_tools.server._pipeline import Pipeline
    from ai_spine_tools.server._wire import Receive, Scope, Send

__all__ = ["MCPEndpoint", "execute_call", "mcp_server", "require_sdk", "tool_result"]


def require_sdk() -> None:
    try:
        import mcp.server.lowlevel  # noqa: F401
    except ImportError as exc:
        if (exc.name or "mcp").partition(".")[0] in ("mcp", "mcp_types"):
            raise MissingExtraError(
                "MCP", "the mcp package", "mcp", variable="AI_SPINE_MCP"
            ) from None
        raise ServerConfigurationError(
            f"MCP cannot start: importing the mcp package failed: {exc}",
            details={"variable": "AI_SPINE_MCP"},
        ) from None


def mcp_server(pipelines: Sequence[Pipeline]) -> Server[Any]:
    """Return the MCP server of the tools of ``pipelines`` (one tool's, or a suite's): each
    listed, each call run through its pipeline (``execute_call``)."""
    require_sdk()
    import mcp_types as types
    from mcp.server.lowlevel import Server
    from mcp.shared.exceptions import MCPError

    by_name = {pipeline.tool.name: pipeline for pipeline in pipelines}
    listed = [types.Tool.model_validate(mcp_tool(pipeline.tool)) for pipeline in pipelines]
    schemas = {tool.name: tool.input_schema for tool in listed}
    names = ", ".join(repr(name) for name in by_name)

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        pipeline = by_name.get(params.name)
        if pipeline is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool {params.name!r}; use {names}")
        carrier = ctx.request  # the HTTP request that carried the call (None over stdio)
        scope = getattr(carrier, "scope", None)
        status, body = await execute_call(pipeline, params.arguments or {}, scope=scope)
        return tool_result(body, streamed=pipeline.tool.streams and status == 200)

    if len(pipelines) == 1:
        tool = pipelines[0].tool
        name, version, description = tool.name, tool.version, tool.metadata.description
    else:
        name, version = "ai-spine-tools", __version__
        description = "Tools: " + ", ".join(by_name)
    return Server(
        name,
        version=version,
        description=description,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        # Header validation of modern tools/call requests reads the schema from here, rather than
        # running tools/list once per call.
        get_tool_input_schema=schemas.get,
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
    """The Streamable HTTP transport of the MCP server, mounted at ``/mcp`` by ``ToolApp`` (or
    ``SuiteApp``), which hands it the app's ``gate`` and ``answers`` (``serve``).

    Its session manager runs from the app's lifespan start-up to its shut-down (``start`` and
    ``stop``), or from the first request when the app is driven without a lifespan.
    """

    def __init__(
        self,
        pipelines: Sequence[Pipeline],
        settings: ServerSettings,
        *,
        gate: AuthGate,
        answers: Answers,
    ) -> None:
        require_sdk()
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        self.server = mcp_server(pipelines)
        # Stateless, with JSON answers: no session lives in one process, so several workers
        # and instances behind a load balancer serve one client; there is nothing to stream.
        self.sessions = StreamableHTTPSessionManager(
            self.server,
            stateless=True,
            json_response=True,
            max_request_body_size=settings.max_body_bytes,
        )
        self.settings = settings
        self.gate = gate
        self.answers = answers
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

    async def serve(self, request: Request, send: Send) -> None:
        """``/mcp``: the origin check MCP asks for, authentication as for ``/api/execute`` and
        the body read within its limit (a signed body verified); then the SDK answers, with the
        app's own headers added. A refusal is the app's error envelope."""
        scope = request.scope
        body: bytes | None = None
        try:
            check_origin(request, self.settings.cors_origins)
            if self.gate.on:
                self.gate.authenticate(request, "/mcp")
            if scope["method"] == "POST":
                body = await request.body(self.settings.max_body_bytes)
            await self.gate.verify_signature(request, body or b"")
        except _DisconnectedError:
            return
        except ToolError as exc:
            await self.answers.send(send, request, self.answers.error(request, exc), head=False)
            return
        extra = self.answers.fixed_headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        receive = request.receive if body is None else _replay(body, then=request.receive)
        await self(scope, receive, send_with_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._ready.is_set():
            await self.start()
        await self.sessions.handle_request(scope, receive, send)


async def execute_call(
    pipeline: Pipeline, arguments: Any, *, scope: Scope | None = None
) -> tuple[int, bytes]:
    """Run one execution for a protocol served beside ``/api/execute`` (MCP) down the execute
    corridor (overload, rate limit, validation, cache, deadline, metrics, error mapping) and
    return the status and body ``/api/execute`` answers; a streaming tool's whole NDJSON body.

    ``scope`` is the request that carried the call, if any: its peer, user agent, request id
    and authenticated key id become those of the execution. Authentication itself is the
    carrier's (``ToolApp``'s ``/mcp`` route, or the stdio client).
    """
    outer = scope or {}
    kept = (b"user-agent", b"x-request-id")
    inner: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/execute",
        "headers": [
            (b"content-type", _JSON),
            *((name, value) for name, value in outer.get("headers", ()) if name in kept),
        ],
        "client": outer.get("client") or ("local", 0),
    }
    if outer.get("ai_spine.key_id") is not None:
        inner["ai_spine.key_id"] = outer["ai_spine.key_id"]
    body = ENCODER.encode({"input_data": arguments})
    response = await pipeline.execute(Request(inner, _replay(body)))
    stream = response.stream
    if stream is None:
        return response.status, response.body
    chunks: list[bytes] = []

    async def collect(message: Message) -> None:
        chunks.append(message.get("body", b""))

    await stream.send(collect, _replay(b""))
    return response.status, b"".join(chunks)
