"""The tool server as a plain ASGI application.

One request walks one corridor: route → read headers → authenticate → rate-limit → read the body
(bounded) → decode the envelope → validate input and config → execute under a deadline → encode →
send. Everything derived from the tool (routes, schemas, the OpenAPI document, static headers) is
built once, when the app is created. Each step raises a ``ToolError`` on failure; ``__call__``
turns any of them into the error envelope in one place.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import msgspec

from ai_spine_tools._settings import PUBLIC_ROUTE_CHOICES, ServerSettings
from ai_spine_tools.cache import CacheOutcome, RedisCache
from ai_spine_tools.core._context import SecurityContext, ToolContext, new_execution_id
from ai_spine_tools.core._output import ENCODER, check_finite, unserializable
from ai_spine_tools.core._tool import DEFAULT_TIMEOUT_MS, Tool
from ai_spine_tools.exceptions import (
    ConfigurationError,
    EndpointNotFoundError,
    ExecutionError,
    ExecutionTimeoutError,
    MethodNotAllowedError,
    MissingExtraError,
    ToolError,
    ValidationError,
    ValidationIssue,
)
from ai_spine_tools.fields._schema import invalid_json
from ai_spine_tools.observability._diagnostics import Diagnostics
from ai_spine_tools.observability._instance import InstanceMetrics
from ai_spine_tools.observability._logging import log_execution
from ai_spine_tools.security._auth import APIKeyAuth, SharedReplays, SignatureAuth
from ai_spine_tools.security._headers import API_SECURITY_HEADERS, page_security_headers
from ai_spine_tools.security._limits import JSONLimits, has_open_fields
from ai_spine_tools.security._ratelimit import RateLimiter
from ai_spine_tools.server import _guards as guards
from ai_spine_tools.server import _lifecycle as lifecycle
from ai_spine_tools.server import _probes as probes
from ai_spine_tools.server._streaming import ResultStream, wants_sse
from ai_spine_tools.server._wire import (
    _JSON,
    _SANE_REQUEST_ID,
    _X_CACHE_HIT,
    _X_CACHE_MISS,
    ASGIApp,
    Handler,
    Message,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    _CacheBlock,
    _CachedSuccess,
    _clip,
    _DisconnectedError,
    _Envelope,
    _normalise,
    _now_iso,
    _replay,
    _Success,
    error_envelope,
)

if TYPE_CHECKING:
    from ai_spine_tools.observability._tracing import Tracing
    from ai_spine_tools.server._mcp import MCPEndpoint

__all__ = ["ToolApp", "create_app", "with_middleware"]

logger = logging.getLogger("ai_spine_tools.server")


# JSON answers load nothing: the strictest policy. HTML pages get the page policy (_headers).
_SECURITY_HEADERS = API_SECURITY_HEADERS
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
_OVERRUN_SLACK_MS = 50  # past the deadline's 10 ms slot, what loop latency alone can add
Headers = list[tuple[bytes, bytes]]


class ToolApp:
    """The ASGI application serving one tool."""

    def __init__(self, tool: Tool, settings: ServerSettings | None = None) -> None:
        self.tool = tool
        self.settings = settings or ServerSettings.from_env()
        self.auth = (
            APIKeyAuth(self.settings.api_keys, key_file=self.settings.api_keys_file)
            if self.settings.api_keys or self.settings.api_keys_file
            else None
        )
        self.signatures = (
            SignatureAuth(
                self.settings.signing_secrets,
                secrets_file=self.settings.signing_secrets_file,
                tolerance_s=self.settings.signature_tolerance_s,
            )
            if self.settings.signing_secrets or self.settings.signing_secrets_file
            else None
        )
        self.auth_on = self.auth is not None or self.signatures is not None
        self.auth_rejected = 0  # requests refused with 401
        self.requests_by_key: dict[str, int] = {}  # by key id, never by key
        self.redis = _shared_cache(self.settings)
        self.replays = (
            SharedReplays(self.redis, self.settings.signature_tolerance_s)
            if self.signatures is not None and self.redis is not None
            else None
        )
        tool.cache.use_defaults(self.settings.cache_ttl_s)
        tool.cache.use_shared(self.redis)
        self.results = tool.cache if tool.cache.enabled else None
        self.limiter = (
            RateLimiter(self.settings.rate_limit, redis=self.redis)
            if self.settings.rate_limit
            else None
        )
        self._limit_by_key = (
            self.settings.rate_limit_by or ("key" if self.auth_on else "ip")
        ) == "key"
        self.timeout_ms = tool.timeout_ms or self.settings.request_timeout_ms or DEFAULT_TIMEOUT_MS
        # An execution that ends this long after it began outlived its deadline uncancelled:
        # its async execute blocked the loop (a cancelled one ends within a 10 ms slot of it).
        self._overrun_ms = self.timeout_ms + _OVERRUN_SLACK_MS
        self.overruns = 0  # such executions, for /metrics
        self.draining = False
        self._wrapped_signals: list[tuple[int, Any, Any]] = []
        self.in_flight = 0
        self.max_in_flight = self.settings.max_concurrent_executions
        self.overloaded = 0  # executions refused with 503 OVERLOADED
        self._waiters: deque[asyncio.Future[None]] = deque()  # the bounded queue for a slot
        tool.metrics.concurrency = functools.partial(guards.concurrency, self)
        self.started_at = time.monotonic()

        self._version = tool.version.encode()
        self._envelope = msgspec.json.Decoder(_Envelope)
        self._encoder = ENCODER
        self._openapi: bytes | None = None
        self._routes: dict[str, dict[str, Handler]] = {
            _EXECUTE: {"POST": self.execute},
            "/health": {"GET": functools.partial(probes.health, self)},
            "/ready": {"GET": functools.partial(probes.ready, self)},
            "/schema": {"GET": functools.partial(probes.schema, self)},
            "/metrics": {"GET": functools.partial(probes.metrics, self)},
            "/": {"GET": functools.partial(probes.info, self)},
        }
        self._protected = {"/api/execute", *PUBLIC_ROUTE_CHOICES} - set(self.settings.public_routes)
        self._limits = JSONLimits(
            max_depth=self.settings.max_json_depth, max_items=self.settings.max_json_items
        )
        self._open_input = has_open_fields(tool.input_schema.fields)
        self._log_level = logging.INFO if self.settings.log_requests else logging.DEBUG
        self._log_requests = logger.isEnabledFor(self._log_level)
        self._warn_none = self.settings.debug  # on in ai-spine dev
        self._metrics_on = self.settings.metrics
        self.instance = InstanceMetrics.from_env(
            tool.metrics, functools.partial(probes.instance_figures, self)
        )
        """The other workers of this instance, when it runs several (see ``_instance``)."""
        self.diagnostics: Diagnostics | None = None
        """Event-loop lag and blocking, leak watch, pool waits (``AI_SPINE_DIAGNOSTICS``)."""
        if self.settings.diagnostics:
            self.diagnostics = Diagnostics(tool, self.settings, busy=lambda: self.in_flight > 0)
        self._tracing: Tracing | None = _tracing(tool) if self.settings.tracing else None
        if self.settings.dashboard:
            self._routes["/dashboard"] = {"GET": functools.partial(probes.dashboard, self)}
        self.mcp: MCPEndpoint | None = None
        """MCP over Streamable HTTP at ``/mcp`` (``AI_SPINE_MCP``); see ``_mcp``."""
        if self.settings.mcp:
            from ai_spine_tools.server._mcp import MCPEndpoint

            self.mcp = MCPEndpoint(self)
        self.serves_directly = not tool.streams
        """Whether the connection may serve ``POST /api/execute`` itself (``respond``): not for
        a streaming tool, whose body goes out as it is produced."""
        self.answers_from_cache = (
            self.results is not None
            and self.results.in_memory
            and self.limiter is None
            and self.signatures is None
            and self._tracing is None
        )
        """Whether the connection may answer a cache hit without a task (``answer_from_cache``):
        not when results are read from Redis each time, nor when a step it skips is on (a rate
        limit, which waits on its store; request signatures; trace spans)."""

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
        route = self._routes.get(path)
        if route is None:
            path = _normalise(path)
            route = self._routes.get(path)
            if route is None and path == "/mcp" and self.mcp is not None:
                await self._serve_mcp(request, send)
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
                    await self._send(send, request, response, head=True)
                    return
                request.extra_headers.append((b"allow", allow.encode()))
                raise MethodNotAllowedError(f"{method} is not allowed on {path}; use {allow}")
        except ToolError as exc:
            response = self._error(request, exc, errors_as_200=path == _EXECUTE)
        else:
            handled = await self._handle(request, path, handler)
            if handled is None:
                return
            response = handled
        await self._send(send, request, response, head=head)

    async def _handle(self, request: Request, path: str, handler: Handler) -> Response | None:
        """Authenticate (on a protected route) and run ``handler``, any error becoming its
        envelope; ``None`` when the client went away before its body was in."""
        try:
            if self.auth_on and path in self._protected:
                guards.authenticate(self, request, path)
                if self.signatures is not None and request.scope["method"] != "POST":
                    await guards.verify_signature(self, request)  # no body to wait for
            return await handler(request)
        except _DisconnectedError:
            return None
        except ToolError as exc:
            return self._error(request, exc, errors_as_200=path == _EXECUTE)
        except Exception:
            scope = request.scope
            logger.exception(
                "unexpected error serving %s %s", scope["method"], _clip(scope["path"])
            )
            return self._error(request, ExecutionError("Internal server error"))

    async def respond(self, scope: Scope, body: bytes) -> tuple[int, Headers, bytes]:
        """Serve a ``POST /api/execute`` whose body is wholly in, as ``__call__`` would but
        without ASGI: the status, headers and body of the response (see ``_protocol``)."""
        request = Request(scope, _replay(body))
        response = await self._handle(request, _EXECUTE, self.execute)
        assert response is not None  # the body is in: there is nothing left to wait for
        return response.status, self._headers(request, response), response.body

    async def _send(self, send: Send, request: Request, response: Response, *, head: bool) -> None:
        headers = self._headers(request, response)
        stream = response.stream
        if stream is not None:
            del headers[1]  # no content-length: the body goes out as it is produced
            try:
                await send({"type": "http.response.start", "status": 200, "headers": headers})
            except BaseException:
                await stream.abort()
                raise
            await stream.send(send, request.receive)
            return
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else response.body})

    def _headers(self, request: Request, response: Response) -> Headers:
        """The headers of ``response``: content type and length first, then ours, then its own."""
        elapsed_ms = (time.perf_counter() - request.started) * 1000.0
        return [
            (b"content-type", response.content_type),
            (b"content-length", str(len(response.body)).encode()),
            (b"x-request-id", request.request_id or new_execution_id().encode()),
            (b"x-response-time", f"{elapsed_ms:.3f}ms".encode()),
            (b"x-tool-version", self._version),
            *(
                _SECURITY_HEADERS
                if response.content_type is _JSON
                or not response.content_type.startswith(b"text/html")
                else page_security_headers(self.settings.content_security_policy, response.body)
            ),
            *request.extra_headers,
            *response.headers,
        ]

    # -- the execute corridor ----------------------------------------------------------------

    async def execute(self, request: Request) -> Response:
        """``POST /api/execute``: validate, run the tool, and answer with the result envelope."""
        execution_id: str | None = None
        code: str | None = None
        streaming = False
        # The overload step: one comparison while under the limit; past it, a short bounded wait.
        if self.in_flight < self.max_in_flight:
            self.in_flight += 1
        elif not await guards.wait_for_slot(self):
            return guards.overloaded(self, request)
        span = None
        try:
            if self._tracing is not None:  # AI_SPINE_TRACING: a span, and one per phase
                span = self._tracing.begin(request)
            guards.check_content_type(self, request)
            if self.limiter is not None:
                await guards.rate_limit(self, request)
            body = await request.body(self.settings.max_body_bytes)
            if self.signatures is not None:
                await guards.verify_signature(self, request, body)
            if len(body) > self._limits.scan_above:  # only so long a body can hold too many items
                self._limits.scan(body)
            elif self._open_input:
                self._limits.check_depth(body)
            if self.results is not None and not request.cache_directives:
                seen = (
                    self._seen_before(request, body)
                    if self.results.in_memory
                    else await self._seen_in_redis(request, body)
                )
                if seen is not None:
                    execution_id, response = seen
                    return response
            envelope = self._decode_envelope(body)
            if (envelope.config or envelope.metadata) and len(body) <= self._limits.scan_above:
                self._limits.check_depth(body)  # open parts: only they can nest to any depth
            execution_id = envelope.execution_id
            if execution_id is None:
                execution_id = new_execution_id()
                if request.request_id is None:
                    request.request_id = execution_id.encode()
            elif request.request_id is None and _SANE_REQUEST_ID.match(
                own := execution_id.encode()
            ):
                request.request_id = own
            tool = self.tool
            raw_input = envelope.input_data
            if len(raw_input) == 4 and bytes(raw_input) == b"null":
                raw_input = msgspec.Raw(b"{}")
            values = tool.input_schema.decode_json(raw_input)
            config = tool.config.for_request(envelope.config)
            if span is not None:
                span.phase("execute")
            if tool.streams:
                response = await self._stream(request, execution_id, envelope, values, config)
                streaming = True  # the stream frees the slot and records metrics when it ends
            elif self.results is not None:
                response = await self._cached(request, execution_id, envelope, values, config, body)
            else:
                context = self._context(request, execution_id, envelope)
                begun = time.perf_counter()
                result = await tool.invoke(values, config, context)
                took_ms = (time.perf_counter() - begun) * 1000.0
                if took_ms > self._overrun_ms:
                    self._overran(took_ms, result.failure)
                if result.failure is not None:
                    raise result.failure
                if span is not None:
                    span.phase("encode")
                response = self._success(execution_id, result.data, result.metadata, took_ms)
        except ToolError as exc:
            code = exc.code
            response = self._error(request, exc, execution_id=execution_id, errors_as_200=True)
        finally:
            if not streaming:
                if self._waiters:
                    guards.hand_over(self)
                else:
                    self.in_flight -= 1
                self.count_execution(request, code)
            if span is not None:
                span.end(execution_id, request.request_id, code)
            if self._log_requests:  # AI_SPINE_LOG_REQUESTS (or log level debug): one line each
                self._log_execution(request, execution_id, code)
        return response

    def _seen_before(self, request: Request, body: bytes) -> tuple[str, Response] | None:
        """The cached answer for the same bytes as an earlier cached request, if still there."""
        assert self.results is not None
        return self._seen_answer(request, self.results.hit_for_body(body))

    async def _seen_in_redis(self, request: Request, body: bytes) -> tuple[str, Response] | None:
        """As ``_seen_before``, the result read from Redis (results are not kept in memory)."""
        assert self.results is not None
        return self._seen_answer(request, await self.results.shared_hit_for_body(body))

    def _seen_answer(
        self, request: Request, seen: tuple[CacheOutcome, str | None] | None
    ) -> tuple[str, Response] | None:
        if seen is None:
            return None
        outcome, execution_id = seen
        execution_id = execution_id or new_execution_id()
        if request.request_id is None:
            request.request_id = execution_id.encode()
        return execution_id, self._cache_answer(execution_id, outcome, 0.0)

    def answer_from_cache(self, scope: Scope, body: bytes) -> tuple[Headers, bytes] | None:
        """Answer a ``POST /api/execute`` that is a cache hit for a body seen before, without a
        task: the response's headers and body, or ``None`` to leave it to ``respond``.

        The connection calls this once an execute request is wholly in (``_protocol``). It takes
        the steps ``execute`` takes for such a hit (content type, API key, cache, metrics, log)
        and declines, changing nothing, whenever one would refuse or the body is not a known
        one: ``respond`` then serves the request, errors included.
        """
        if not self.answers_from_cache or self.in_flight >= self.max_in_flight:
            return None
        request = Request(scope, _nothing_to_receive)
        if request.cache_directives:
            return None
        try:
            guards.check_content_type(self, request)
        except ToolError:
            return None
        key_id = None
        if self.auth is not None and _EXECUTE in self._protected:
            key_id = self.auth.identify(request.api_key, request.authorization)
            if key_id is None:
                return None
        seen = self._seen_before(request, body)
        if seen is None:
            return None
        if key_id is not None:
            guards.admit(self, request, key_id)
        execution_id, response = seen
        self.count_execution(request, None)
        if self._log_requests:
            self._log_execution(request, execution_id, None)
        return self._headers(request, response), response.body

    def _overran(self, took_ms: float, failure: ToolError | None) -> None:
        """An execution ran ``took_ms``, past its deadline, and was not stopped: count it and
        say why (a timeout answered on time is no overrun)."""
        if isinstance(failure, ExecutionTimeoutError):
            return
        self.overruns += 1
        logger.warning(
            "tool %r: an execution ran %.0f ms, past its %d ms deadline, and could not be "
            "stopped: its async execute blocked the event loop (or swallowed the cancellation), "
            "and a deadline can only cancel code at an await. Make the slow call async, or "
            "declare execute with a plain def so it runs in the thread pool (README: Deadlines).",
            self.tool.name,
            took_ms,
            self.timeout_ms,
        )

    def count_execution(self, request: Request, code: str | None) -> None:
        """Count a finished execution (``code``: its error, if any) in the built-in metrics."""
        if self._metrics_on:
            now = time.perf_counter()
            self.tool.metrics.record((now - request.started) * 1000.0, code, now)

    def _log_execution(self, request: Request, execution_id: str | None, code: str | None) -> None:
        request_id = request.request_id
        log_execution(
            logger,
            self._log_level,
            tool=self.tool.name,
            execution_id=execution_id,
            request_id=None if request_id is None else request_id.decode("latin-1"),
            code=code,
            duration_ms=(time.perf_counter() - request.started) * 1000.0,
            key_id=request.scope.get("ai_spine.key_id"),
        )

    async def execute_call(
        self, arguments: Any, *, scope: Scope | None = None
    ) -> tuple[int, bytes]:
        """Run one execution for a protocol served beside ``/api/execute`` (MCP) down the execute
        corridor (overload, rate limit, validation, cache, deadline, metrics, error mapping) and
        return the status and body ``/api/execute`` answers; a streaming tool's whole NDJSON body.

        ``scope`` is the request that carried the call, if any: its peer, user agent, request id
        and authenticated key id become those of the execution. Authentication itself is the
        carrier's (``_serve_mcp``).
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
        body = self._encoder.encode({"input_data": arguments})
        response = await self.execute(Request(inner, _replay(body)))
        stream = response.stream
        if stream is None:
            return response.status, response.body
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            chunks.append(message.get("body", b""))

        await stream.send(collect, _replay(b""))
        return response.status, b"".join(chunks)

    async def _serve_mcp(self, request: Request, send: Send) -> None:
        """``/mcp``: the origin check MCP asks for, authentication as for ``/api/execute`` and the
        body read within its limit (a signed body verified), then the MCP endpoint answers."""
        scope = request.scope
        body: bytes | None = None
        try:
            origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
            if origin is not None and origin.decode("latin-1") not in self.settings.cors_origins:
                raise ToolError(
                    "Origin not allowed: list it in AI_SPINE_CORS_ORIGINS",
                    code="FORBIDDEN_ORIGIN",
                    status=403,
                    type="authentication_error",
                )
            if self.auth_on:
                guards.authenticate(self, request, "/mcp")
            if scope["method"] == "POST":
                body = await request.body(self.settings.max_body_bytes)
            await guards.verify_signature(self, request, body or b"")
        except _DisconnectedError:
            return
        except ToolError as exc:
            await self._send(send, request, self._error(request, exc), head=False)
            return
        assert self.mcp is not None
        extra = [(b"x-tool-version", self._version), *_SECURITY_HEADERS]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        receive = request.receive if body is None else _replay(body, then=request.receive)
        await self.mcp(scope, receive, send_with_headers)

    async def _stream(
        self,
        request: Request,
        execution_id: str,
        envelope: _Envelope,
        values: dict[str, Any],
        config: dict[str, Any],
    ) -> Response:
        """The streaming step: run the tool's generator up to its first item, then answer
        with a body that sends each record as it comes (see ``_streaming``)."""
        tool = self.tool
        context = self._context(request, execution_id, envelope)

        def finish(code: str | None) -> None:
            guards.free_slot(self)
            self.count_execution(request, code)

        stream = ResultStream(
            tool.open_stream(values, config, context),
            execution_id=execution_id,
            deadline=context.deadline,
            timeout_ms=context.timeout_ms,
            sse=wants_sse(request.scope["headers"]),
            debug=self.settings.debug,
            tool_name=tool.name,
            finish=finish,
            now=_now_iso,
        )
        await stream.start()
        headers = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
        return Response(200, b"", headers, content_type=stream.content_type, stream=stream)

    async def _cached(
        self,
        request: Request,
        execution_id: str,
        envelope: _Envelope,
        values: dict[str, Any],
        config: dict[str, Any],
        body: bytes,
    ) -> Response:
        """The cache step: answer from the result cache, or run the tool once and cache it.

        The context is only made when the tool runs: a hit skips it. A small body whose result
        went into the cache is remembered, so the same bytes next time skip decoding too.
        """
        assert self.results is not None
        flags = self.results.flags_for(config, request.scope["headers"], envelope.metadata)

        def context() -> ToolContext:
            made = self._context(request, execution_id, envelope)
            if flags is not None:
                made.flags = flags
            return made

        begun = time.perf_counter()
        if flags is None:  # the request's cache_enabled config field turned it off
            result = await self.tool.invoke(values, config, context())
            took_ms = (time.perf_counter() - begun) * 1000.0
            if result.failure is not None:
                raise result.failure
            return self._success(execution_id, result.data, result.metadata, took_ms)
        outcome = await self.results.fetch(values, config, context, flags)
        took_ms = (time.perf_counter() - begun) * 1000.0
        if took_ms > self._overrun_ms:
            self._overran(took_ms, outcome.failure)
        if outcome.failure is not None:
            raise outcome.failure
        if not (flags.no_cache or flags.no_store or request.cache_directives):
            self.results.bodies.remember(body, outcome.key, envelope.execution_id)
        return self._cache_answer(execution_id, outcome, took_ms)

    def _cache_answer(self, execution_id: str, outcome: CacheOutcome, took_ms: float) -> Response:
        """The success envelope of a cached (or just cached) result, with its cache block."""
        answer = _CachedSuccess(
            execution_id=execution_id,
            status="success",
            output_data=outcome.output,
            execution_time_ms=round(took_ms, 3),
            timestamp=_now_iso(),
            metadata=outcome.metadata,
            cache=_CacheBlock(outcome.hit, outcome.key, outcome.age_ms),
        )
        header = _X_CACHE_HIT if outcome.hit else _X_CACHE_MISS
        return Response(200, self._encoder.encode(answer), [header])

    def _decode_envelope(self, body: bytes) -> _Envelope:
        try:
            return self._envelope.decode(body)
        except msgspec.ValidationError as exc:
            message = str(exc)
            if message.startswith("Number out of range"):  # not JSON a float can hold
                raise invalid_json(exc, body) from None
            if "at `$.config" in message:
                raise ConfigurationError("'config' must be an object") from None
            if "at `$" not in message:
                message = 'Request body must be a JSON object like {"input_data": {...}}'
            path = message.rsplit("at `$.", 1)[1].rstrip("`") if "at `$." in message else ""
            raise ValidationError(
                [ValidationIssue(path, "type", message)], subject="request"
            ) from None
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise invalid_json(exc, body) from None

    def _context(self, request: Request, execution_id: str, envelope: _Envelope) -> ToolContext:
        """The context of one execution of this request."""
        return self.tool.new_context(
            execution_id=execution_id,
            request_id=None if request.request_id is None else request.request_id.decode(),
            metadata=envelope.metadata,
            timeout_ms=self.timeout_ms,
            debug=self.settings.debug,
            security=self._security(request),
        )

    def _security(self, request: Request) -> SecurityContext:
        user_agent = request.user_agent
        return SecurityContext(
            api_key_id=request.scope.get("ai_spine.key_id"),
            source_ip=request.client_ip,
            user_agent=None if user_agent is None else user_agent[:256].decode("latin-1"),
        )

    def _success(self, execution_id: str, data: Any, metadata: Any, took_ms: float) -> Response:
        if type(data) is dict:
            output = data
        elif data is None:
            output = {}
            if self._warn_none:  # ai-spine dev: a forgotten return looks like an empty success
                self._warn_none = False
                logger.warning(
                    "tool %r: execute returned None, so the caller gets output_data {}; "
                    "did it forget a return? (logged once)",
                    self.tool.name,
                )
        else:
            output = data if isinstance(data, dict) else {"result": data}
        extra = dict(metadata) if metadata else None
        envelope = _Success(
            execution_id=execution_id,
            status="success",
            output_data=output,
            execution_time_ms=round(took_ms, 3),
            timestamp=_now_iso(),
            metadata=extra,
        )
        try:
            body = self._encoder.encode(envelope)
            if body.find(b"null") >= 0:  # perhaps a NaN or an infinity msgspec wrote as null
                check_finite(body, output_data=output, metadata=extra)
        except (TypeError, ValueError, OverflowError) as exc:
            failure = unserializable(exc, output_data=output, metadata=extra)
            logger.error("tool %s: %s", self.tool.name, failure.message)
            raise failure from None
        except ToolError as exc:
            logger.error("tool %s: %s", self.tool.name, exc.message)
            raise
        return Response(200, body, [])

    def _error(
        self,
        request: Request,
        exc: ToolError,
        *,
        execution_id: str | None = None,
        errors_as_200: bool = False,
    ) -> Response:
        body = error_envelope(
            exc,
            execution_id=execution_id,
            took_ms=round((time.perf_counter() - request.started) * 1000.0, 3),
            timestamp=_now_iso(),
        )
        headers = []
        if exc.retry_after_ms is not None and exc.status in (429, 503):
            headers.append((b"retry-after", str(max(1, -(-exc.retry_after_ms // 1000))).encode()))
        status = 200 if errors_as_200 and self.settings.errors_as_200 else exc.status
        return Response(status, self._encoder.encode(body), headers)

    # -- the other routes --------------------------------------------------------------------


async def _nothing_to_receive() -> Message:
    return {"type": "http.disconnect"}


def _tracing(tool: Tool) -> Tracing:
    try:
        from ai_spine_tools.observability._tracing import Tracing
    except ImportError:
        raise MissingExtraError(
            "AI_SPINE_TRACING", "OpenTelemetry", "otel", variable="AI_SPINE_TRACING"
        ) from None
    return Tracing(tool.name)


def _shared_cache(settings: ServerSettings) -> RedisCache | None:
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
