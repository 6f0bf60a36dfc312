"""The tool server as a plain ASGI application.

One request walks one corridor: route → read headers → authenticate → rate-limit → read the body
(bounded) → decode the envelope → validate input and config → execute under a deadline → encode →
send. Everything derived from the tool (routes, schemas, the OpenAPI document, static headers) is
built once, when the app is created. Each step raises a ``ToolError`` on failure; ``__call__``
turns any of them into the error envelope in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from ai_spine_tools import __version__, _dashboard
from ai_spine_tools._auth import APIKeyAuth, SignatureAuth, signature_headers
from ai_spine_tools._context import SecurityContext, ToolContext, new_execution_id
from ai_spine_tools._diagnostics import Diagnostics
from ai_spine_tools._headers import API_SECURITY_HEADERS, page_security_headers
from ai_spine_tools._http import configure_http
from ai_spine_tools._instance import InstanceMetrics
from ai_spine_tools._limits import JSONLimits, has_open_fields
from ai_spine_tools._logging import log_execution
from ai_spine_tools._openapi import openapi_document
from ai_spine_tools._ratelimit import RateLimiter
from ai_spine_tools._schema import invalid_json
from ai_spine_tools._settings import PUBLIC_ROUTE_CHOICES, ServerSettings
from ai_spine_tools._streaming import ResultStream, wants_sse
from ai_spine_tools._tool import DEFAULT_TIMEOUT_MS, Tool
from ai_spine_tools.cache import CacheOutcome, RedisCache
from ai_spine_tools.exceptions import (
    AuthenticationError,
    ConfigurationError,
    EndpointNotFoundError,
    ExecutionError,
    MethodNotAllowedError,
    OverloadedError,
    PayloadTooLargeError,
    RateLimitError,
    ServerConfigurationError,
    ToolError,
    UnsupportedContentTypeError,
    ValidationError,
    ValidationIssue,
)

if TYPE_CHECKING:
    from ai_spine_tools._mcp import MCPEndpoint
    from ai_spine_tools._tracing import Tracing

__all__ = ["ToolApp", "create_app", "with_middleware"]

logger = logging.getLogger("ai_spine_tools.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON = b"application/json"
_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
# JSON answers load nothing: the strictest policy. HTML pages get the page policy (_headers).
_SECURITY_HEADERS = API_SECURITY_HEADERS
_HEALTH_CHECK_TIMEOUT_S = 5.0


class _Envelope(msgspec.Struct):
    """The execute request; unknown top-level keys are ignored."""

    input_data: msgspec.Raw = msgspec.Raw(b"{}")
    config: dict[str, Any] | None = None
    execution_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    metadata: dict[str, Any] | None = None


class _Success(msgspec.Struct, omit_defaults=True):
    execution_id: str
    status: str
    output_data: dict[str, Any]
    execution_time_ms: float
    timestamp: str
    metadata: dict[str, Any] | None = None


class _CacheBlock(msgspec.Struct):
    hit: bool
    key: str
    age_ms: float


class _CachedSuccess(msgspec.Struct, omit_defaults=True):
    """The success envelope of a tool with result caching: ``_Success`` plus a ``cache`` block."""

    execution_id: str
    status: str
    output_data: Any  # msgspec.Raw when the output was encoded once, as it was cached
    execution_time_ms: float
    timestamp: str
    metadata: dict[str, Any] | None = None
    cache: _CacheBlock | None = None


_X_CACHE_HIT = (b"x-cache", b"HIT")
_X_CACHE_MISS = (b"x-cache", b"MISS")


class _DisconnectedError(Exception):
    """The client went away before sending its whole body."""


@dataclass(slots=True)
class Response:
    """A response to send: status, JSON (or other) body, extra headers."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]
    content_type: bytes = _JSON
    stream: ResultStream | None = None  # a streaming tool's records, sent after the headers


class Request:
    """What the handlers need from one HTTP request, read from its scope once."""

    __slots__ = (
        "api_key",
        "authorization",
        "cache_directives",
        "content_length",
        "content_type",
        "extra_headers",
        "receive",
        "request_id",
        "scope",
        "started",
        "user_agent",
    )

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.started = time.perf_counter()
        self.content_type: bytes | None = None
        self.content_length: int | None = None
        self.api_key: bytes | None = None
        self.authorization: bytes | None = None
        self.user_agent: bytes | None = None
        self.cache_directives = False  # Cache-Control or Pragma sent: no shortcut to a cache hit
        request_id: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                self.content_type = value
            elif name == b"content-length":
                self.content_length = int(value) if value.isdigit() else None
            elif name == b"x-request-id":
                request_id = value
            elif name == b"x-api-key":
                self.api_key = value
            elif name == b"authorization":
                self.authorization = value
            elif name == b"user-agent":
                self.user_agent = value
            elif name == b"cache-control" or name == b"pragma":
                self.cache_directives = True
        if request_id is not None and not _SANE_REQUEST_ID.match(request_id):
            request_id = None
        self.request_id = request_id  # filled in when answering, if the client sent none
        self.extra_headers: list[tuple[bytes, bytes]] = []

    @property
    def client_ip(self) -> str:
        """The peer address (or ``unknown``)."""
        client = self.scope.get("client")
        return str(client[0]) if client else "unknown"

    async def body(self, limit: int) -> bytes:
        """Read the whole body, refusing with 413 as soon as it passes ``limit`` bytes."""
        if self.content_length is not None and self.content_length > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise _DisconnectedError
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"Request body is larger than {limit} bytes", details={"max_body_bytes": limit}
    )


def _replay(body: bytes, *, then: Receive | None = None) -> Receive:
    """Return a ``receive`` that gives ``body`` once, then what ``then`` gives (else nothing)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if then is not None:
            return await then()
        await asyncio.Event().wait()  # no more messages: the caller is cancelled when done
        return {"type": "http.disconnect"}

    return receive


Handler = Callable[[Request], Awaitable[Response]]


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
        self.draining = False
        self._wrapped_signals: list[tuple[int, Any, Any]] = []
        self.in_flight = 0
        self.max_in_flight = self.settings.max_concurrent_executions
        self.overloaded = 0  # executions refused with 503 OVERLOADED
        self._waiters: deque[asyncio.Future[None]] = deque()  # the bounded queue for a slot
        tool.metrics.concurrency = self.concurrency
        self.started_at = time.monotonic()

        self._version = tool.version.encode()
        self._envelope = msgspec.json.Decoder(_Envelope)
        self._encoder = msgspec.json.Encoder()
        self._openapi: bytes | None = None
        self._routes: dict[str, dict[str, Handler]] = {
            "/api/execute": {"POST": self.execute},
            "/health": {"GET": self.health},
            "/ready": {"GET": self.ready},
            "/schema": {"GET": self.schema},
            "/metrics": {"GET": self.metrics},
            "/": {"GET": self.info},
        }
        self._protected = {"/api/execute", *PUBLIC_ROUTE_CHOICES} - set(self.settings.public_routes)
        self._limits = JSONLimits(
            max_depth=self.settings.max_json_depth, max_items=self.settings.max_json_items
        )
        self._open_input = has_open_fields(tool.input_schema.fields)
        self._log_level = logging.INFO if self.settings.log_requests else logging.DEBUG
        self._log_requests = logger.isEnabledFor(self._log_level)
        self._metrics_on = self.settings.metrics
        self.instance = InstanceMetrics.from_env(tool.metrics, self._figures)
        """The other workers of this instance, when it runs several (see ``_instance``)."""
        self.diagnostics: Diagnostics | None = None
        """Event-loop lag and blocking, leak watch, pool waits (``AI_SPINE_DIAGNOSTICS``)."""
        if self.settings.diagnostics:
            self.diagnostics = Diagnostics(tool, self.settings, busy=lambda: self.in_flight > 0)
        self._tracing: Tracing | None = _tracing(tool) if self.settings.tracing else None
        if self.settings.dashboard:
            self._routes["/dashboard"] = {"GET": self.dashboard}
        self.mcp: MCPEndpoint | None = None
        """MCP over Streamable HTTP at ``/mcp`` (``AI_SPINE_MCP``); see ``_mcp``."""
        if self.settings.mcp:
            from ai_spine_tools._mcp import MCPEndpoint

            self.mcp = MCPEndpoint(self)

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        request = Request(scope, receive)
        path = scope["path"]
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
                raise EndpointNotFoundError(
                    f"No endpoint at {_clip(scope['path'])}",
                    details={"available_endpoints": self.endpoints()},
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
            if self.auth_on and path in self._protected:
                self._authenticate(request, path)
            response = await handler(request)
        except _DisconnectedError:
            return
        except ToolError as exc:
            response = self._error(request, exc, errors_as_200=path == "/api/execute")
        except Exception:
            logger.exception("unexpected error serving %s %s", method, _clip(scope["path"]))
            response = self._error(request, ExecutionError("Internal server error"))
        await self._send(send, request, response, head=head)

    async def _send(self, send: Send, request: Request, response: Response, *, head: bool) -> None:
        elapsed_ms = (time.perf_counter() - request.started) * 1000.0
        headers = [
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

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                configure_http(max_connections=self.settings.max_connections)
                try:
                    await self.tool.start()
                    if self.mcp is not None:
                        await self.mcp.start()
                except Exception as exc:
                    logger.exception("start-up of tool %s failed", self.tool.name)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self.started_at = time.monotonic()
                self._watch_shutdown_signals()
                self._log_requests = logger.isEnabledFor(self._log_level)  # logging is set now
                if self.instance is not None:
                    self.instance.start()
                if self.diagnostics is not None:
                    self.diagnostics.start()
                    self.tool.metrics.diagnostics = self.diagnostics.figures
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.draining = True
                self._restore_signals()
                if self.mcp is not None:
                    await self.mcp.stop()
                try:
                    await self.tool.stop()
                except Exception:
                    logger.exception("cleanup of tool %s failed", self.tool.name)
                if self.redis is not None:
                    if self.tool.cache.store is not self.tool.cache.memory:
                        self.tool.cache.use_shared(None)
                    await self.redis.close()
                if self.instance is not None:
                    await self.instance.stop()  # a last write: this worker's counts outlive it
                if self.diagnostics is not None:
                    await self.diagnostics.stop()
                    if self.tool.metrics.diagnostics == self.diagnostics.figures:
                        self.tool.metrics.diagnostics = None
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _watch_shutdown_signals(self) -> None:
        """Mark the app draining the moment the server is told to stop, before it drains."""
        for number in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(number)
            if not callable(previous):
                continue

            def handler(sig: int, frame: FrameType | None, previous: Any = previous) -> None:
                self.draining = True
                previous(sig, frame)

            try:
                signal.signal(number, handler)
            except ValueError:  # not the main thread: the host owns signals
                return
            self._wrapped_signals.append((number, handler, previous))

    def _restore_signals(self) -> None:
        """Put back the handlers ``_watch_shutdown_signals`` wrapped, if still ours."""
        while self._wrapped_signals:
            number, handler, previous = self._wrapped_signals.pop()
            with contextlib.suppress(ValueError):
                if signal.getsignal(number) is handler:
                    signal.signal(number, previous)

    # -- the execute corridor ----------------------------------------------------------------

    async def execute(self, request: Request) -> Response:
        """``POST /api/execute``: validate, run the tool, and answer with the result envelope."""
        execution_id: str | None = None
        code: str | None = None
        streaming = False
        # The overload step: one comparison while under the limit; past it, a short bounded wait.
        if self.in_flight < self.max_in_flight:
            self.in_flight += 1
        elif not await self._wait_for_slot():
            return self._overloaded(request)
        span = None
        try:
            if self._tracing is not None:  # AI_SPINE_TRACING: a span, and one per phase
                span = self._tracing.begin(request)
            self._check_content_type(request)
            if self.limiter is not None:
                await self._rate_limit(request)
            body = await request.body(self.settings.max_body_bytes)
            if self.signatures is not None:
                self._verify_signature(request, body)
            if len(body) > self._limits.scan_above:  # only so long a body can hold too many items
                self._limits.scan(body)
            elif self._open_input:
                self._limits.check_depth(body)
            if self.results is not None and not request.cache_directives:
                seen = self.results.hit_for_body(body)
                if seen is not None:  # the same bytes as an earlier cached request
                    outcome, execution_id = seen
                    execution_id = execution_id or new_execution_id()
                    if request.request_id is None:
                        request.request_id = execution_id.encode()
                    return self._cache_answer(execution_id, outcome, 0.0)
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
                context = tool.new_context(
                    execution_id=execution_id,
                    request_id=None if request.request_id is None else request.request_id.decode(),
                    metadata=envelope.metadata,
                    timeout_ms=self.timeout_ms,
                    debug=self.settings.debug,
                    security=self._security(request),
                )
                begun = time.perf_counter()
                result = await tool.invoke(values, config, context)
                took_ms = (time.perf_counter() - begun) * 1000.0
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
                    self._hand_over()
                else:
                    self.in_flight -= 1
                if self._metrics_on:
                    now = time.perf_counter()
                    self.tool.metrics.record((now - request.started) * 1000.0, code, now)
            if span is not None:
                span.end(execution_id, request.request_id, code)
            if self._log_requests:  # AI_SPINE_LOG_REQUESTS (or log level debug): one line each
                self._log_execution(request, execution_id, code)
        return response

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
                self._authenticate(request, "/mcp")
            if scope["method"] == "POST":
                body = await request.body(self.settings.max_body_bytes)
                self._verify_signature(request, body)
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

    async def _wait_for_slot(self) -> bool:
        """Wait (``queue_timeout_ms`` at most, behind at most ``queue_size`` others) for a
        finishing execution to hand over its slot; False when the queue is full or time is up."""
        settings = self.settings
        if len(self._waiters) >= settings.queue_size or settings.queue_timeout_ms <= 0:
            return False
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(slot)
        try:
            async with asyncio.timeout(settings.queue_timeout_ms / 1000.0):
                await slot
        except TimeoutError:
            pass
        except BaseException:
            if slot.done() and not slot.cancelled():
                self._free_slot()  # it was handed over just as we were cancelled
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(slot)
        return slot.done() and not slot.cancelled()

    def _hand_over(self) -> None:
        """Give a freed slot to the longest waiter (``in_flight`` stays), else free it."""
        waiters = self._waiters
        while waiters:
            slot = waiters.popleft()
            if not slot.done():
                slot.set_result(None)
                return
        self.in_flight -= 1

    def _free_slot(self) -> None:
        if self._waiters:
            self._hand_over()
        else:
            self.in_flight -= 1

    def _overloaded(self, request: Request) -> Response:
        self.overloaded += 1
        limit = self.max_in_flight
        exc = OverloadedError(
            f"The server is already running its limit of {limit} executions; retry shortly",
            retry_after_ms=1000,
            details={"max_concurrent_executions": limit, "queue_size": self.settings.queue_size},
        )
        if self._metrics_on:
            self.tool.metrics.record((time.perf_counter() - request.started) * 1000.0, exc.code)
        return self._error(request, exc, errors_as_200=True)

    def concurrency(self) -> dict[str, Any]:
        """Executions running and waiting against the limit, and how many were refused."""
        return {
            "in_flight": self.in_flight,
            "limit": self.max_in_flight,
            "queued": len(self._waiters),
            "queue_size": self.settings.queue_size,
            "rejected": self.overloaded,
        }

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
        context = tool.new_context(
            execution_id=execution_id,
            request_id=None if request.request_id is None else request.request_id.decode(),
            metadata=envelope.metadata,
            timeout_ms=self.timeout_ms,
            debug=self.settings.debug,
            security=self._security(request),
        )

        def finish(code: str | None) -> None:
            self._free_slot()
            if self._metrics_on:
                self.tool.metrics.record((time.perf_counter() - request.started) * 1000.0, code)

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
            made = self.tool.new_context(
                execution_id=execution_id,
                request_id=None if request.request_id is None else request.request_id.decode(),
                metadata=envelope.metadata,
                timeout_ms=self.timeout_ms,
                debug=self.settings.debug,
                security=self._security(request),
            )
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

    def _check_content_type(self, request: Request) -> None:
        content_type = request.content_type
        if content_type is None or content_type == _JSON:
            return  # clients that omit it are read as sending JSON
        media = content_type.split(b";", 1)[0].strip().lower()
        if media != _JSON and not media.endswith(b"+json"):
            raise UnsupportedContentTypeError(
                f"Request body must be JSON (Content-Type: application/json), "
                f"got {_clip(media.decode('latin-1'))}"
            )

    def _authenticate(self, request: Request, path: str) -> None:
        """The authenticate step: a valid API key, or a request signature.

        A signed POST has its timestamp checked here, before its body is read, and its signature
        once the body is in (``_verify_signature``); other signed requests have no body.
        """
        key_id = (
            None
            if self.auth is None
            else self.auth.identify(request.api_key, request.authorization)
        )
        if key_id is None and self.signatures is not None:
            timestamp, signature = signature_headers(request.scope["headers"])
            if signature is not None:
                method = request.scope["method"]
                try:
                    if method == "POST":
                        self.signatures.check_timestamp(timestamp)
                        request.scope["ai_spine.signed"] = (timestamp, signature, path)
                        return
                    key_id = self.signatures.verify(timestamp, signature, method, path, b"")
                except AuthenticationError as exc:
                    raise self._refused(request, exc) from None
        if key_id is None:
            raise self._refused(request, AuthenticationError(self._auth_hint()))
        self._admit(request, key_id)

    def _verify_signature(self, request: Request, body: bytes) -> None:
        signed = request.scope.get("ai_spine.signed")
        if signed is None or self.signatures is None:
            return
        timestamp, signature, path = signed
        try:
            key_id = self.signatures.verify(timestamp, signature, "POST", path, body)
        except AuthenticationError as exc:
            raise self._refused(request, exc) from None
        self._admit(request, key_id)

    def _admit(self, request: Request, key_id: str) -> None:
        request.scope["ai_spine.key_id"] = key_id
        self.requests_by_key[key_id] = self.requests_by_key.get(key_id, 0) + 1

    def _refused(self, request: Request, exc: AuthenticationError) -> AuthenticationError:
        self.auth_rejected += 1
        if request.scope["path"].startswith(_dashboard.PAGE):  # a browser: let it ask for a key
            request.extra_headers.append(_dashboard.BASIC_CHALLENGE)
        else:
            request.extra_headers.append((b"www-authenticate", b'Bearer realm="ai-spine-tool"'))
        if self._log_requests:
            logger.debug(
                "refused %s %s from %s: %s",
                request.scope["method"],
                _clip(request.scope["path"]),
                request.client_ip,
                exc.message,
            )
        return exc

    def _auth_hint(self) -> str:
        keys = "an API key (X-API-Key or Authorization: Bearer)"
        signed = "a request signature (X-Signature-Timestamp and X-Signature)"
        if self.signatures is None:
            return f"A valid API key is required: send {keys}"
        if self.auth is None:
            return f"A signed request is required: send {signed}"
        return f"Authentication is required: send {keys} or {signed}"

    async def _rate_limit(self, request: Request) -> None:
        assert self.limiter is not None
        key_id = request.scope.get("ai_spine.key_id")
        key = key_id if (self._limit_by_key and key_id) else "ip:" + request.client_ip
        decision = await self.limiter.hit(key)
        request.extra_headers.extend(decision.headers())
        if not decision.allowed:
            raise RateLimitError(
                f"Rate limit of {self.settings.rate_limit} exceeded; retry in "
                f"{decision.retry_after_s} s",
                retry_after_ms=decision.retry_after_s * 1000,
            )

    def _decode_envelope(self, body: bytes) -> _Envelope:
        try:
            return self._envelope.decode(body)
        except msgspec.ValidationError as exc:
            message = str(exc)
            if "at `$.config" in message:
                raise ConfigurationError("'config' must be an object") from None
            if "at `$" not in message:
                message = 'Request body must be a JSON object like {"input_data": {...}}'
            path = message.rsplit("at `$.", 1)[1].rstrip("`") if "at `$." in message else ""
            raise ValidationError(
                [ValidationIssue(path, "type", message)], subject="request"
            ) from None
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise invalid_json(exc) from None

    def _security(self, request: Request) -> SecurityContext:
        user_agent = request.user_agent
        return SecurityContext(
            api_key_id=request.scope.get("ai_spine.key_id"),
            source_ip=request.client_ip,
            user_agent=None if user_agent is None else user_agent[:256].decode("latin-1"),
        )

    def _success(self, execution_id: str, data: Any, metadata: Any, took_ms: float) -> Response:
        output = data if isinstance(data, dict) else ({} if data is None else {"result": data})
        envelope = _Success(
            execution_id=execution_id,
            status="success",
            output_data=output,
            execution_time_ms=round(took_ms, 3),
            timestamp=_now_iso(),
            metadata=dict(metadata) if metadata else None,
        )
        try:
            body = self._encoder.encode(envelope)
        except (TypeError, ValueError, OverflowError) as exc:
            logger.error("tool %s returned output that is not JSON: %s", self.tool.name, exc)
            raise ExecutionError(
                "The tool returned output that cannot be encoded as JSON"
            ) from None
        return Response(200, body, [])

    def _error(
        self,
        request: Request,
        exc: ToolError,
        *,
        execution_id: str | None = None,
        errors_as_200: bool = False,
    ) -> Response:
        body: dict[str, Any] = {
            "execution_id": execution_id,
            "status": "error",
            **exc.to_dict(),
            "execution_time_ms": round((time.perf_counter() - request.started) * 1000.0, 3),
            "timestamp": _now_iso(),
        }
        headers = []
        if exc.retry_after_ms is not None and exc.status in (429, 503):
            headers.append((b"retry-after", str(max(1, -(-exc.retry_after_ms // 1000))).encode()))
        status = 200 if errors_as_200 and self.settings.errors_as_200 else exc.status
        return Response(status, self._encoder.encode(body), headers)

    # -- the other routes --------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        """``GET /health``: liveness and a summary; 503 only when the tool cannot serve."""
        state, checks = await self._check_tool()
        cache = await self.tool.cache.check()
        if cache is not None:
            checks["cache"] = cache  # a failing Redis degrades the tool; it still serves
            if cache["status"] != "ok" and state == "healthy":
                state = "degraded"
        if self.diagnostics is not None:
            checks["memory"] = memory = self.diagnostics.memory_check()
            if memory["status"] != "ok" and state == "healthy":
                state = "degraded"  # a steady leak: restart before it runs out, and fix it
        if self.limiter is not None and self.limiter.distributed:
            checks["rate_limit"] = self.limiter.status()
            if self.limiter.degraded and state == "healthy":
                state = "degraded"
        snapshot = self.tool.metrics
        body = {
            "status": state,
            "tool": self.tool.name,
            "version": self.tool.version,
            "uptime_seconds": round(time.monotonic() - self.started_at, 3),
            "timestamp": _now_iso(),
            "checks": checks,
            "requests": {
                "total": snapshot.total,
                "errors": snapshot.errors,
                "in_flight": self.in_flight,
                "queued": len(self._waiters),
                "max_concurrent": self.max_in_flight,
                "rejected_overloaded": self.overloaded,
            },
        }
        breakers = self.tool.breakers.stats()
        if self.instance is not None:  # several workers: report the instance
            merged, figures, body["workers"] = self.instance.collect()
            concurrency = figures.get("concurrency") or {}
            body["uptime_seconds"] = round(merged.uptime_seconds(), 3)
            body["requests"] = {
                "total": merged.total,
                "errors": merged.errors,
                "in_flight": concurrency.get("in_flight", 0),
                "queued": concurrency.get("queued", 0),
                "max_concurrent": self.max_in_flight,
                "rejected_overloaded": concurrency.get("rejected", 0),
            }
            breakers = figures.get("breakers") or {}
        if breakers:
            body["breakers"] = breakers
            if state == "healthy" and any(b["state"] != "closed" for b in breakers.values()):
                body["status"] = "degraded"  # a dependency is failing; the tool still answers
        return Response(503 if state == "unhealthy" else 200, self._encoder.encode(body), [])

    async def ready(self, request: Request) -> Response:
        """``GET /ready``: 200 once setup is done, while not draining and while the health check
        does not report ``"ready": False`` (a dependency down); else 503 with the reason."""
        reason = None
        if self.draining:
            reason = "draining"
        elif not self.tool.started:
            reason = "starting"
        else:
            state, checks = await self._check_tool()
            outcome = checks.get("tool")
            if state == "unhealthy":
                reason = "unhealthy"
            elif isinstance(outcome, dict) and outcome.get("ready") is False:
                reason = "dependencies unavailable"  # the health check said so (a database down)
        body = {"ready": reason is None, "tool": self.tool.name, "timestamp": _now_iso()}
        if reason is not None:
            body["reason"] = reason
        return Response(200 if reason is None else 503, self._encoder.encode(body), [])

    async def schema(self, request: Request) -> Response:
        """``GET /schema``: the OpenAPI 3.1 document of this tool."""
        if self._openapi is None:
            self._openapi = self._encoder.encode(openapi_document(self.tool, auth=self.auth_on))
        return Response(200, self._openapi, [])

    async def metrics(self, request: Request) -> Response:
        """``GET /metrics``: the metrics snapshot as JSON (with an ``auth`` block when auth is
        on: callers by key id, never by key), or Prometheus text when the ``Accept`` header asks
        for it (``text/plain`` or ``application/openmetrics-text``, as a scraper does) or
        ``?format=prometheus``. With several workers, the figures of the whole instance."""
        accept = _exposition(request.scope)
        if self.instance is None and accept is None:  # one worker: what tool.get_metrics() says
            body = self.tool.get_metrics().to_dict()
            auth = self._auth_figures()
        else:
            metrics, figures, workers = (
                (self.tool.metrics, self._figures(), 1)
                if self.instance is None
                else self.instance.collect()
            )
            if accept is not None:
                from ai_spine_tools._prometheus import render

                text, content_type = render(
                    metrics,
                    figures,
                    tool=self.tool.name,
                    version=self.tool.version,
                    sdk=f"ai-spine-tools/{__version__}",
                    workers=workers,
                    accept=accept,
                )
                return Response(200, text, [], content_type=content_type.encode())
            body = metrics.snapshot(figures, workers=workers).to_dict()
            auth = figures.get("auth")
        if auth is not None:
            body["auth"] = auth
        return Response(200, self._encoder.encode(body), [])

    def _figures(self) -> dict[str, Any]:
        """This worker's figures of the moment: the tool's, and who called when auth is on."""
        return {**self.tool.metrics.figures(), "auth": self._auth_figures()}

    def _auth_figures(self) -> dict[str, Any] | None:
        if not self.auth_on:
            return None
        return {
            "api_keys_active": 0 if self.auth is None else len(self.auth.key_ids),
            "signing_secrets_active": (
                0 if self.signatures is None else len(self.signatures.key_ids)
            ),
            "rejected": self.auth_rejected,
            "requests_by_key": dict(self.requests_by_key),
        }

    async def dashboard(self, request: Request) -> Response:
        """``GET /dashboard``: the live metrics page (``AI_SPINE_DASHBOARD=true``)."""
        if request.scope["path"] != _dashboard.PAGE:  # /dashboard/: its relative links need this
            location = request.scope.get("root_path", "") + _dashboard.PAGE
            return Response(308, b"", [(b"location", location.encode())])
        headers = [(b"cache-control", b"no-cache")]
        return Response(200, _dashboard.page(), headers, content_type=_dashboard.HTML)

    async def info(self, request: Request) -> Response:
        """``GET /``: what this tool is and which endpoints it serves."""
        body = {
            **self.tool.metadata.to_dict(),
            "sdk": f"ai-spine-tools/{__version__}",
            "endpoints": self.endpoints(),
        }
        return Response(200, self._encoder.encode(body), [])

    def endpoints(self) -> list[str]:
        """Return ``"METHOD /path"`` for each route."""
        routes = [f"{method} {path}" for path, route in self._routes.items() for method in route]
        return routes if self.mcp is None else [*routes, "POST /mcp"]

    async def _check_tool(self) -> tuple[str, dict[str, Any]]:
        if not self.tool.started:
            return "unhealthy", {"setup": "not done"}
        try:
            async with asyncio.timeout(_HEALTH_CHECK_TIMEOUT_S):
                outcome = await self.tool.check_health()
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}" if self.settings.debug else type(exc).__name__
            return "degraded", {"setup": "ok", "tool": {"status": "failing", "error": detail}}
        if outcome is True or outcome is None:
            return "healthy", {"setup": "ok", "tool": "ok"}
        if outcome is False:
            return "degraded", {"setup": "ok", "tool": "failing"}
        if isinstance(outcome, dict):
            state = str(outcome.get("status", "healthy"))
            if state not in ("healthy", "degraded", "unhealthy"):
                state = "degraded"
            return state, {"setup": "ok", "tool": outcome}
        return "healthy", {"setup": "ok", "tool": str(outcome)}


def _tracing(tool: Tool) -> Tracing:
    try:
        from ai_spine_tools._tracing import Tracing
    except ImportError:
        raise ServerConfigurationError(
            "AI_SPINE_TRACING is on but OpenTelemetry is not installed: "
            "pip install 'ai-spine-tools[otel]'",
            details={"variable": "AI_SPINE_TRACING"},
        ) from None
    return Tracing(tool.name)


def _exposition(scope: Scope) -> str | None:
    """The Prometheus format a ``/metrics`` request asks for (an ``Accept`` value), or ``None``
    for JSON. JSON wins when the client accepts it (browsers, axios); ``?format=`` wins over
    all."""
    query = scope.get("query_string") or b""
    if b"format=" in query:
        if b"format=prometheus" in query:
            return "text/plain"
        if b"format=openmetrics" in query:
            return "application/openmetrics-text"
        return None
    accept = next((value for name, value in scope["headers"] if name == b"accept"), b"")
    if b"application/json" in accept:
        return None
    if b"application/openmetrics-text" in accept or b"text/plain" in accept:
        return accept.decode("latin-1")
    return None


def _shared_cache(settings: ServerSettings) -> RedisCache | None:
    """The Redis behind the cache and the rate limits, when ``REDIS_URL``/``REDIS_HOST`` is set."""
    if settings.redis_url is None:
        return None
    try:
        return RedisCache.from_settings(settings)
    except ImportError:
        raise ServerConfigurationError(
            "REDIS_URL (or REDIS_HOST) is set but the redis package is not installed: "
            "pip install 'ai-spine-tools[redis]'",
            details={"variable": "REDIS_URL"},
        ) from None


def _normalise(path: str) -> str:
    collapsed = re.sub(r"/{2,}", "/", path)
    return collapsed.rstrip("/") or "/"


def _clip(text: str, limit: int = 80) -> str:
    text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


_clock_second = -1
_clock_prefix = ""


def _now_iso() -> str:
    """Return the current UTC time as ISO-8601 with milliseconds and ``Z``.

    The date-and-seconds part is formatted once per second: strftime per call cost 1 µs.
    """
    global _clock_second, _clock_prefix
    now = time.time()
    second = int(now)
    if second != _clock_second:
        _clock_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _clock_second = second
    return f"{_clock_prefix}.{int((now - second) * 1000):03d}Z"


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
