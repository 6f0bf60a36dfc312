"""Several tools in one server, each with the whole HTTP contract under its own name.

``SuiteApp`` routes ``/<tool name>/...`` to that tool's ``ToolApp`` (its execute route, probes,
schema, metrics and dashboard, exactly as a server of its own answers them at ``/...``) and
answers the server's own routes at the root:

- ``GET /``: the tools and their endpoints;
- ``GET /health``: every tool's health in one answer, ``degraded`` when one is, 503 when one is
  unhealthy;
- ``GET /ready``: 503 while any tool is not ready (its reason named);
- ``GET /metrics``: every tool's metrics, under ``tools`` in JSON and labelled by ``tool`` in
  Prometheus text;
- ``POST /mcp`` (``AI_SPINE_MCP``): one MCP server listing and calling every tool.

Shared by the tools: the settings, the process's HTTP client and process pool, and one Redis
connection pool. Each tool keeps its own timeouts, admission limit, result cache, rate limits,
circuit breakers, metrics and ``setup``/``cleanup``. A tool whose ``setup`` fails is marked
unavailable (its ``/ready`` and executions answer 503 ``TOOL_UNAVAILABLE``) while the others
serve, unless ``strict_startup`` asks that start-up fail instead.

API keys are the server's (``AI_SPINE_API_KEYS``) unless a tool has keys of its own:
``AI_SPINE_API_KEYS_<NAME>`` (the name upper-cased, ``-`` and ``.`` as ``_``) or ``api_keys=``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from ai_spine_tools._settings import ServerSettings
from ai_spine_tools._version import __version__
from ai_spine_tools.core._output import ENCODER
from ai_spine_tools.core._tool import Tool
from ai_spine_tools.exceptions import (
    EndpointNotFoundError,
    MethodNotAllowedError,
    ToolDefinitionError,
    ToolError,
)
from ai_spine_tools.observability._diagnostics import Diagnostics
from ai_spine_tools.server import _probes as probes
from ai_spine_tools.server._answers import Answers
from ai_spine_tools.server._app import ToolApp, shared_cache
from ai_spine_tools.server._guards import AuthGate
from ai_spine_tools.server._wire import (
    Message,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    _clip,
    _DisconnectedError,
    _normalise,
    _now_iso,
)

if TYPE_CHECKING:
    from ai_spine_tools.server._mcp import MCPEndpoint

__all__ = ["RESERVED_NAMES", "SuiteApp", "check_names", "tool_keys_variable"]

logger = logging.getLogger("ai_spine_tools.server")

RESERVED_NAMES = frozenset({"api", "dashboard", "health", "mcp", "metrics", "ready", "schema"})
"""Names a tool in a suite cannot take: the root's own routes (and ``/api``)."""
_ROOT_ROUTES = ("/", "/health", "/ready", "/metrics")
_UNSAFE = re.compile(r"[^A-Za-z0-9]")


def tool_keys_variable(name: str) -> str:
    """The variable holding the API keys of the tool called ``name`` in a suite."""
    return "AI_SPINE_API_KEYS_" + _UNSAFE.sub("_", name).upper()


class SuiteApp:
    """The ASGI application serving several tools, each under ``/<tool name>``."""

    def __init__(
        self,
        tools: Sequence[Tool],
        settings: ServerSettings | None = None,
        *,
        api_keys: Mapping[str, Sequence[str]] | None = None,
        strict_startup: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings = settings or ServerSettings.from_env()
        check_names(tools)
        environ = os.environ if environ is None else environ
        keys = dict(api_keys or {})
        unknown = sorted(set(keys) - {tool.name for tool in tools})
        if unknown:
            raise ToolDefinitionError(
                f"api_keys names tools the suite does not serve: {', '.join(unknown)}"
            )
        self.strict_startup = strict_startup
        self.redis = shared_cache(settings)
        own = settings.replace(mcp=False)  # one /mcp for the suite, at the root
        self.apps: dict[str, ToolApp] = {}
        self.diagnostics = (
            Diagnostics(tools, settings, busy=self._busy) if settings.diagnostics else None
        )
        """One set of watches for the process (the loop and memory are the tools' to share)."""
        for tool in tools:
            tool_keys = keys.get(tool.name)
            if tool_keys is None:
                raw = environ.get(tool_keys_variable(tool.name), "")
                tool_keys = [key.strip() for key in raw.split(",") if key.strip()]
            tool_settings = own.replace(api_keys=tuple(tool_keys)) if tool_keys else own
            self.apps[tool.name] = ToolApp(
                tool, tool_settings, redis=self.redis, diagnostics=self.diagnostics
            )
        self.gate = AuthGate(settings, self.redis)
        """Who may read the root's metrics and call ``/mcp`` (the server's keys)."""
        self._protected = {"/metrics"} - set(settings.public_routes)
        self.answers = Answers(settings)
        """The root's answers: its errors, and the headers every answer goes out with (those of a
        tool's, less a tool's version)."""
        self.mcp: MCPEndpoint | None = None
        if settings.mcp:
            from ai_spine_tools.server._mcp import MCPEndpoint

            self.mcp = MCPEndpoint(
                [app.pipeline for app in self.apps.values()],
                settings,
                gate=self.gate,
                answers=self.answers,
            )
        self.started_at = time.monotonic()
        self._lifespans: list[tuple[asyncio.Queue[Message], asyncio.Task[None]]] = []

    def _busy(self) -> bool:
        return any(app.admission.in_flight > 0 for app in self.apps.values())

    def direct_routes(self) -> dict[bytes, ToolApp]:
        """The execute path of each tool (for the connection's own way in, ``_protocol``)."""
        return {f"/{name}/api/execute".encode(): app for name, app in self.apps.items()}

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        path: str = scope["path"]
        raw = scope.get("raw_path")
        routed = raw.decode("latin-1") if raw is not None and b"%" in raw else path
        name = routed[1:].partition("/")[0]
        app = self.apps.get(name)
        if app is not None:
            prefix = "/" + name
            child = dict(scope)
            child["path"] = path[len(prefix) :] or "/"
            if raw is not None:
                child["raw_path"] = raw[len(prefix) :] or b"/"
            child["root_path"] = scope.get("root_path", "") + prefix
            await app(child, receive, send)
            return
        await self._root(scope, receive, send)

    async def _root(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        path = _normalise(scope["path"])
        method = scope["method"]
        try:
            if path == "/mcp" and self.mcp is not None:
                await self.mcp.serve(request, send)
                return
            if path not in _ROOT_ROUTES:
                names = ", ".join(self.apps)
                raise EndpointNotFoundError(
                    f"No endpoint at {_clip(scope['path'])}: this server serves several tools, "
                    f"each under its name (POST /<name>/api/execute; tools: {names})",
                    details={"available_endpoints": self.endpoints(), "tools": list(self.apps)},
                )
            if method not in ("GET", "HEAD"):
                request.extra_headers.append((b"allow", b"GET, HEAD"))
                raise MethodNotAllowedError(f"{method} is not allowed on {path}; use GET")
            if self.gate.on and path in self._protected:
                self.gate.authenticate(request, path)
                if self.gate.signatures is not None:
                    await self.gate.verify_signature(request)
            if path == "/":
                response = self._info()
            elif path == "/health":
                response = await self._health(request)
            elif path == "/ready":
                response = await self._ready(request)
            else:
                response = await self._metrics(request)
        except _DisconnectedError:
            return
        except ToolError as exc:
            response = self.answers.error(request, exc)
        await self.answers.send(send, request, response, head=method == "HEAD")

    # -- the root's routes -------------------------------------------------------------------

    def endpoints(self) -> list[str]:
        """``METHOD /path`` of the root's routes."""
        routes = [f"GET {path}" for path in _ROOT_ROUTES]
        return routes if self.mcp is None else [*routes, "POST /mcp"]

    def _info(self) -> Response:
        tools = []
        for name, app in self.apps.items():
            prefix = "/" + name
            tools.append(
                {
                    "name": name,
                    "version": app.tool.version,
                    "description": app.tool.metadata.description,
                    "available": app.unavailable is None,
                    "endpoints": [
                        f"{endpoint.split(' ', 1)[0]} {prefix}{endpoint.split(' ', 1)[1]}"
                        for endpoint in probes.endpoints(app)
                    ],
                }
            )
        body = {
            "sdk": f"ai-spine-tools/{__version__}",
            "endpoints": self.endpoints(),
            "tools": tools,
        }
        return Response(200, ENCODER.encode(body), [])

    async def _health(self, request: Request) -> Response:
        answers = await asyncio.gather(*(probes.health(app, request) for app in self.apps.values()))
        tools = {
            name: msgspec.json.decode(answer.body)
            for name, answer in zip(self.apps, answers, strict=True)
        }
        states = {tool["status"] for tool in tools.values()}
        state = (
            "unhealthy"
            if "unhealthy" in states
            else "degraded"
            if "degraded" in states
            else "healthy"
        )
        body = {
            "status": state,
            "sdk": f"ai-spine-tools/{__version__}",
            "uptime_seconds": round(time.monotonic() - self.started_at, 3),
            "timestamp": _now_iso(),
            "tools": tools,
        }
        return Response(503 if state == "unhealthy" else 200, ENCODER.encode(body), [])

    async def _ready(self, request: Request) -> Response:
        answers = await asyncio.gather(*(probes.ready(app, request) for app in self.apps.values()))
        waiting = {
            name: msgspec.json.decode(answer.body).get("reason", "not ready")
            for name, answer in zip(self.apps, answers, strict=True)
            if answer.status != 200
        }
        body: dict[str, Any] = {"ready": not waiting, "timestamp": _now_iso()}
        if waiting:
            body["reason"] = "; ".join(f"{name}: {reason}" for name, reason in waiting.items())
            body["tools"] = waiting
        return Response(200 if not waiting else 503, ENCODER.encode(body), [])

    async def _metrics(self, request: Request) -> Response:
        accept = probes.exposition(request.scope)
        if accept is not None:
            from ai_spine_tools.observability._prometheus import render_many

            text, content_type = render_many(
                [probes.exposition_part(app) for app in self.apps.values()], accept=accept
            )
            return Response(200, text, [], content_type=content_type.encode())
        tools = {}
        for name, app in self.apps.items():
            answer = await probes.metrics(app, request)
            tools[name] = msgspec.json.decode(answer.body)
        return Response(200, ENCODER.encode({"tools": tools}), [])

    # -- lifespan ----------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Start every tool (each through its own app's lifespan, in order); stop them in the
        reverse order. A tool whose start-up fails is unavailable, or fails the start-up
        (``strict_startup``), after the ones already started are stopped again."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.diagnostics is not None:
                    self.diagnostics.start()
                failed = await self._start_all()
                if failed and self.strict_startup:
                    await self._stop_all()
                    if self.diagnostics is not None:
                        await self.diagnostics.stop()
                    reasons = "; ".join(f"{name}: {reason}" for name, reason in failed.items())
                    await send({"type": "lifespan.startup.failed", "message": reasons})
                    return
                if self.mcp is not None:
                    await self.mcp.start()
                self.started_at = time.monotonic()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.mcp is not None:
                    await self.mcp.stop()
                await self._stop_all()
                if self.diagnostics is not None:
                    await self.diagnostics.stop()
                if self.redis is not None:
                    await self.redis.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start_all(self) -> dict[str, str]:
        failed: dict[str, str] = {}
        for name, app in self.apps.items():
            inbox: asyncio.Queue[Message] = asyncio.Queue()
            outbox: asyncio.Queue[Message] = asyncio.Queue()
            task = asyncio.create_task(app(_LIFESPAN, inbox.get, outbox.put))
            await inbox.put({"type": "lifespan.startup"})
            answer = await outbox.get()
            if answer["type"] == "lifespan.startup.failed":
                await task
                reason = str(answer.get("message") or "setup failed")
                app.mark_unavailable(reason)
                failed[name] = reason
                if not self.strict_startup:
                    logger.warning(
                        "tool %s is unavailable (its executions answer 503 TOOL_UNAVAILABLE); "
                        "the other tools serve. Fix its setup and restart, or set "
                        "AI_SPINE_STRICT_STARTUP=true to stop the start-up instead",
                        name,
                    )
            else:
                self._lifespans.append((inbox, task))
        return failed

    async def _stop_all(self) -> None:
        while self._lifespans:
            inbox, task = self._lifespans.pop()
            await inbox.put({"type": "lifespan.shutdown"})
            await task


_LIFESPAN: Scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}


def check_names(tools: Sequence[Tool]) -> None:
    """Refuse a suite that is empty, names a tool twice, or uses a name of the root's routes."""
    if not tools:
        raise ToolDefinitionError("a suite needs at least one tool")
    seen: set[str] = set()
    for tool in tools:
        if not isinstance(tool, Tool):
            raise ToolDefinitionError(f"a suite holds tools, not {type(tool).__name__}")
        if tool.name in seen:
            raise ToolDefinitionError(
                f"two tools are called {tool.name!r}: each tool in a suite is served at "
                f"/<name>, so names must differ"
            )
        if tool.name.lower() in RESERVED_NAMES:
            raise ToolDefinitionError(
                f"a tool in a suite cannot be called {tool.name!r}: /{tool.name} is the "
                f"server's own route (reserved: {', '.join(sorted(RESERVED_NAMES))})"
            )
        seen.add(tool.name)
