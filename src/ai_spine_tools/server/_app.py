"""The tool server as a plain ASGI application: route, authenticate, hand over, send.

A request is routed (the path as sent), authenticated on a protected route (``AuthGate``) and
handed to its handler: ``/api/execute`` to the execution pipeline (``_pipeline``, which the
connection's fast path, cache hits and MCP call as well), the other routes to ``_probes``,
``/mcp`` to ``MCPEndpoint.serve``. The answer goes out with the same headers whichever way it
was made (``Answers``, as a suite's root answers too). Everything derived from the
tool (routes, schemas, the OpenAPI document, static headers) is built once, when the app is
created; a ``ToolError`` from any step becomes the error envelope in one place.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING, Any

from ai_spine_tools._settings import PUBLIC_ROUTE_CHOICES, ServerSettings
from ai_spine_tools.cache import RedisCache
from ai_spine_tools.core._output import ENCODER
from ai_spine_tools.core._tool import Tool
from ai_spine_tools.exceptions import (
    EndpointNotFoundError,
    ExecutionError,
    MethodNotAllowedError,
    MissingExtraError,
    ToolError,
    ToolUnavailableError,
)
from ai_spine_tools.observability._diagnostics import Diagnostics
from ai_spine_tools.observability._instance import InstanceMetrics
from ai_spine_tools.security._ratelimit import RateLimiter
from ai_spine_tools.server import _lifecycle as lifecycle
from ai_spine_tools.server import _probes as probes
from ai_spine_tools.server._answers import Headers
from ai_spine_tools.server._guards import AuthGate, RateGate
from ai_spine_tools.server._pipeline import Pipeline
from ai_spine_tools.server._wire import (
    ASGIApp,
    Handler,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    _clip,
    _DisconnectedError,
    _no_more,
    _normalise,
)

if TYPE_CHECKING:
    from ai_spine_tools.observability._tracing import Tracing
    from ai_spine_tools.server._mcp import MCPEndpoint

__all__ = ["ToolApp", "create_app", "with_middleware"]

logger = logging.getLogger("ai_spine_tools.server")


_EXECUTE = "/api/execute"
_SWITCHED_OFF = {
    "/dashboard": (
        "AI_SPINE_DASHBOARD=true",
        ": the dashboard is off; set AI_SPINE_DASHBOARD=true to serve it here",
    ),
    "/mcp": (
        "AI_SPINE_MCP=true",
        ": MCP is off; set AI_SPINE_MCP=true (or run ai-spine serve --mcp) to serve it here",
    ),
}


class ToolApp:
    """The ASGI application serving one tool: its routes, and the way in and out of them.

    ``/api/execute`` is the execution pipeline (``_pipeline``); the other routes are probes
    (``_probes``); ``/mcp``, when on, the MCP endpoint (``_mcp``). Authentication on protected
    routes is ``AuthGate``'s; the lifespan is ``_lifecycle``'s.
    """

    def __init__(
        self,
        tool: Tool,
        settings: ServerSettings | None = None,
        *,
        redis: RedisCache | None = None,
        diagnostics: Diagnostics | None = None,
    ) -> None:
        self.tool = tool
        self.settings = settings = settings or ServerSettings.from_env()
        self.owns_redis = redis is None
        """Whether the Redis connection is this app's to close (not a suite's, shared)."""
        self.redis = shared_cache(settings) if redis is None else redis
        tool.cache.use_defaults(settings.cache_ttl_s)
        tool.cache.use_shared(self.redis)
        self.gate = AuthGate(settings, self.redis)
        """Who may call (API keys, request signatures), and who did."""
        self._protected = {"/api/execute", *PUBLIC_ROUTE_CHOICES} - set(settings.public_routes)
        self.limiter = (
            RateLimiter(settings.rate_limit, redis=self.redis) if settings.rate_limit else None
        )
        by_key = (settings.rate_limit_by or ("key" if self.gate.on else "ip")) == "key"
        self.pipeline = Pipeline(
            tool,
            settings,
            gate=self.gate,
            protected=_EXECUTE in self._protected,
            rate=(
                None
                if self.limiter is None or settings.rate_limit is None
                else RateGate(self.limiter, rate=settings.rate_limit, by_key=by_key)
            ),
            tracing=_tracing(tool) if settings.tracing else None,
        )
        """The execution pipeline every entry calls (see ``_pipeline``)."""
        self.answers = self.pipeline.answers
        """The answers of every route, and the headers they go out with."""
        self.admission = self.pipeline.admission
        tool.metrics.concurrency = self.pipeline.concurrency
        self.draining = False
        self.wrapped_signals: list[tuple[int, Any, Any]] = []
        self.started_at = time.monotonic()

        self.encoder = ENCODER
        self.openapi: bytes | None = None
        self.routes: dict[str, dict[str, Handler]] = {
            _EXECUTE: {"POST": self.pipeline.execute},
            "/health": {"GET": functools.partial(probes.health, self)},
            "/ready": {"GET": functools.partial(probes.ready, self)},
            "/schema": {"GET": functools.partial(probes.schema, self)},
            "/metrics": {"GET": functools.partial(probes.metrics, self)},
            "/": {"GET": functools.partial(probes.info, self)},
        }
        self.instance = InstanceMetrics.from_env(
            tool.metrics, functools.partial(probes.instance_figures, self), part=tool.name
        )
        """The other workers of this instance, when it runs several (see ``_instance``)."""
        self.diagnostics: Diagnostics | None = diagnostics
        """Event-loop lag and blocking, leak watch, pool waits (``AI_SPINE_DIAGNOSTICS``)."""
        self.owns_diagnostics = diagnostics is None
        """Whether this app starts and stops them (not a suite's, shared by its tools)."""
        if settings.diagnostics and diagnostics is None:
            admission = self.admission
            self.diagnostics = Diagnostics(tool, settings, busy=lambda: admission.in_flight > 0)
        if settings.dashboard:
            self.routes["/dashboard"] = {"GET": functools.partial(probes.dashboard, self)}
        self.mcp: MCPEndpoint | None = None
        """MCP over Streamable HTTP at ``/mcp`` (``AI_SPINE_MCP``); see ``_mcp``."""
        if settings.mcp:
            from ai_spine_tools.server._mcp import MCPEndpoint

            self.mcp = MCPEndpoint([self.pipeline], settings, gate=self.gate, answers=self.answers)
        self.serves_directly = not tool.streams
        """Whether the connection may serve ``POST /api/execute`` itself (``respond``): not for
        a streaming tool, whose body goes out as it is produced."""
        self.unavailable: str | None = None
        """Why the tool cannot serve (its setup failed in a suite), or ``None``."""

    def mark_unavailable(self, reason: str) -> None:
        """Answer executions with 503 ``TOOL_UNAVAILABLE`` from now on (``/ready`` says why)."""
        self.unavailable = reason
        self.serves_directly = False
        self.pipeline.unavailable = ToolUnavailableError(
            f"Tool {self.tool.name!r} is unavailable: its setup failed ({reason})",
            details={"tool": self.tool.name},
        )

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await lifecycle.lifespan(self, receive, send)
            return
        request = Request(scope, receive)
        path = scope["path"]
        raw = scope.get("raw_path")
        if raw is not None and b"%" in raw:
            # A path routes as sent: /api%2Fexecute is not /api/execute, or a proxy's rule on
            # the path as sent could be bypassed.
            path = raw.decode("latin-1")
        route = self.routes.get(path)
        if route is None:
            path = _normalise(path)
            route = self.routes.get(path)
            if route is None and path == "/mcp" and self.mcp is not None:
                await self.mcp.serve(request, send)
                return
        method = scope["method"]
        head = method == "HEAD"
        try:
            if route is None:
                off = _SWITCHED_OFF.get(path)
                details: dict[str, Any] = {"available_endpoints": probes.endpoints(self)}
                if off is not None:  # a route that exists once a setting turns it on
                    details["enable_with"] = off[0]
                raise EndpointNotFoundError(
                    f"No endpoint at {_clip(scope['path'])}" + ("" if off is None else off[1]),
                    details=details,
                )
            handler = route.get("GET" if head else method)
            if handler is None:
                allow = ", ".join(
                    [*route, "HEAD", "OPTIONS"] if "GET" in route else [*route, "OPTIONS"]
                )
                if method == "OPTIONS":
                    response = Response(204, b"", [(b"allow", allow.encode())])
                    await self.answers.send(send, request, response, head=True)
                    return
                request.extra_headers.append((b"allow", allow.encode()))
                raise MethodNotAllowedError(f"{method} is not allowed on {path}; use {allow}")
        except ToolError as exc:
            response = self.answers.error(request, exc, errors_as_200=path == _EXECUTE)
        else:
            handled = await self._handle(request, path, handler)
            if handled is None:
                return
            response = handled
        await self.answers.send(send, request, response, head=head)

    async def _handle(self, request: Request, path: str, handler: Handler) -> Response | None:
        """Authenticate (on a protected route) and run ``handler``, any error becoming its
        envelope; ``None`` when the client went away before its body was in."""
        try:
            gate = self.gate
            if gate.on and path in self._protected:
                gate.authenticate(request, path)
                if gate.signatures is not None and request.scope["method"] != "POST":
                    await gate.verify_signature(request)  # no body to wait for
            return await handler(request)
        except _DisconnectedError:
            return None
        except ToolError as exc:
            return self.answers.error(request, exc, errors_as_200=path == _EXECUTE)
        except Exception:
            scope = request.scope
            logger.exception(
                "unexpected error serving %s %s", scope["method"], _clip(scope["path"])
            )
            return self.answers.error(request, ExecutionError("Internal server error"))

    # -- the connection's own way in (``_protocol``) ------------------------------------------

    async def respond(self, scope: Scope, body: bytes) -> tuple[int, Headers, bytes]:
        """Serve a ``POST /api/execute`` whose body is wholly in, as ``__call__`` would but
        without ASGI: the status, headers and body of the response (see ``_protocol``)."""
        request = Request(scope, _no_more, body)
        response = await self._handle(request, _EXECUTE, self.pipeline.execute)
        assert response is not None  # the body is in: there is nothing left to wait for
        return response.status, self.answers.headers(request, response), response.body

    def answer_from_cache(self, scope: Scope, body: bytes) -> tuple[Headers, bytes] | None:
        """Answer a ``POST /api/execute`` that is a cache hit for a body seen before, without a
        task (``Pipeline.answer_from_cache``): its headers and body, or ``None``."""
        answered = self.pipeline.answer_from_cache(scope, body)
        if answered is None:
            return None
        request, response = answered
        return self.answers.headers(request, response), response.body


def _tracing(tool: Tool) -> Tracing:
    try:
        from ai_spine_tools.observability._tracing import Tracing
    except ImportError:
        raise MissingExtraError(
            "AI_SPINE_TRACING", "OpenTelemetry", "otel", variable="AI_SPINE_TRACING"
        ) from None
    return Tracing(tool.name)


def shared_cache(settings: ServerSettings) -> RedisCache | None:
    """The Redis behind the cache and the rate limits, when ``REDIS_URL``/``REDIS_HOST`` is set."""
    if settings.redis_url is None:
        return None
    try:
        return RedisCache.from_settings(settings)
    except ImportError:
        raise MissingExtraError(
            "REDIS_URL (or REDIS_HOST)", "the redis package", "redis", variable="REDIS_URL"
        ) from None


def create_app(tool: Tool, settings: ServerSettings | None = None, **overrides: Any) -> ASGIApp:
    """Return the ASGI application serving ``tool``, with compression and CORS when enabled."""
    settings = (settings or ServerSettings.from_env()).replace(**overrides)
    return with_middleware(ToolApp(tool, settings), settings)


def with_middleware(app: ASGIApp, settings: ServerSettings) -> ASGIApp:
    """Wrap ``app`` in gzip compression and CORS, when the settings ask for them."""
    if settings.compression:
        from starlette.middleware.gzip import GZipMiddleware

        app = GZipMiddleware(app, minimum_size=1024)
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app = CORSMiddleware(
            app,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "X-Response-Time", "X-Tool-Version", "X-Cache"],
        )
    return app
