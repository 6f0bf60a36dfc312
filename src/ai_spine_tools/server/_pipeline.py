"""The execution pipeline: the steps every request to run the tool takes, whichever way it came.

Read this module first. Every entry is a thin call into ``Pipeline.execute``:

- ``POST /api/execute`` through ASGI (``ToolApp.__call__``), or served by the connection itself
  once its body is in (``ToolApp.respond``, called by ``_protocol``);
- a cache hit for a body seen before, answered without a task (``answer_from_cache``): the same
  steps for such a hit, declining (changing nothing) whenever one of them would do more;
- an MCP ``tools/call`` (``_mcp.execute_call``), with the carrier's peer and key id;
- in-process, ``await tool.run(input, config)`` (``core/_tool.py``) joins the corridor after the
  envelope, since it has no request: the input and config it is given are validated by the same
  schema and config resolver, and the tool runs through the same ``Tool.invoke``. It does not
  consult the result cache (a cached answer holds JSON; ``run`` returns what ``execute``
  returned) and collects a stream rather than sending it.

The corridor, each step in the object that owns it: a slot (``Admission``) → content type →
rate limit (``RateGate``) → the body, bounded → its signature (``AuthGate``; the key was checked
on the route) → JSON bounds (``JSONLimits``) → a body seen before (``ToolCache``) → the envelope →
input and config validated (the tool's ``Schema`` and ``ConfigResolver``) → run: streamed
(``ResultStream``), through the result cache, or plain, under the deadline (``Tool.invoke``,
which also counts and logs an execution that outlived its deadline uncancelled) → the envelope
encoded → metrics, trace span and log line. Any step raises a ``ToolError``; the corridor turns
it into the error envelope in one place (``error``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from ai_spine_tools.core._context import SecurityContext, ToolContext, new_execution_id
from ai_spine_tools.core._tool import DEFAULT_TIMEOUT_MS
from ai_spine_tools.exceptions import ToolError
from ai_spine_tools.observability._logging import log_execution
from ai_spine_tools.security._limits import JSONLimits, has_open_fields
from ai_spine_tools.server._answers import Answers
from ai_spine_tools.server._guards import Admission, AuthGate, RateGate, check_content_type
from ai_spine_tools.server._streaming import ResultStream, wants_sse
from ai_spine_tools.server._wire import (
    _SANE_REQUEST_ID,
    Message,
    Request,
    Response,
    Scope,
    _Envelope,
    _now_iso,
)

if TYPE_CHECKING:
    from ai_spine_tools._settings import ServerSettings
    from ai_spine_tools.cache import CacheOutcome
    from ai_spine_tools.core._tool import Tool
    from ai_spine_tools.observability._tracing import Tracing

__all__ = ["Pipeline"]

logger = logging.getLogger("ai_spine_tools.server")

_EXECUTE = "/api/execute"


class Pipeline:
    """The steps of one tool's executions, and the state they keep (see the module)."""

    def __init__(
        self,
        tool: Tool,
        settings: ServerSettings,
        *,
        gate: AuthGate,
        protected: bool,
        rate: RateGate | None,
        tracing: Tracing | None,
    ) -> None:
        self.tool = tool
        self.settings = settings
        self.gate = gate
        self.rate = rate
        self.tracing = tracing
        self.admission = Admission(
            limit=settings.max_concurrent_executions,
            queue_size=settings.queue_size,
            queue_timeout_ms=settings.queue_timeout_ms,
        )
        self.results = tool.cache if tool.cache.enabled else None
        self.timeout_ms = tool.timeout_ms or settings.request_timeout_ms or DEFAULT_TIMEOUT_MS
        self._limits = JSONLimits(
            max_depth=settings.max_json_depth, max_items=settings.max_json_items
        )
        self._open_input = has_open_fields(tool.input_schema.fields)
        self.answers = Answers(settings, tool)
        self.log_level = logging.INFO if settings.log_requests else logging.DEBUG
        self.log_requests = logger.isEnabledFor(self.log_level)
        """Whether each execution is logged (``AI_SPINE_LOG_REQUESTS``, or the debug level);
        decided again at start-up, once logging is configured."""
        self._metrics_on = settings.metrics
        self.unavailable: ToolError | None = None
        """What every execution answers while the tool cannot serve (its setup failed, in a
        suite: ``ToolApp.mark_unavailable``)."""
        self._keyed = gate.keys if protected else None  # the key a cache hit must carry
        self.answers_from_cache = (
            self.results is not None
            and self.results.in_memory
            and rate is None
            and gate.signatures is None
            and tracing is None
        )
        """Whether the connection may answer a cache hit without a task (``answer_from_cache``):
        not when results are read from Redis each time, nor when a step it skips is on (a rate
        limit, which waits on its store; request signatures; trace spans)."""

    # -- the entries -------------------------------------------------------------------------

    async def execute(self, request: Request) -> Response:
        """``POST /api/execute``: validate, run the tool, and answer with the result envelope."""
        execution_id: str | None = None
        code: str | None = None
        streaming = False
        # The overload step: one comparison while under the limit; past it, a short bounded wait.
        admission = self.admission
        if admission.in_flight < admission.limit:
            admission.in_flight += 1
        elif not await admission.wait():
            return self._overloaded(request)
        span = None
        try:
            if self.unavailable is not None:  # a fresh traceback each time: none piles up
                raise self.unavailable.with_traceback(None)
            if self.tracing is not None:  # AI_SPINE_TRACING: a span, and one per phase
                span = self.tracing.begin(request)
            check_content_type(request)
            if self.rate is not None:
                await self.rate.check(request)
            body = await request.body(self.settings.max_body_bytes)
            if self.gate.signatures is not None:
                await self.gate.verify_signature(request, body)
            if len(body) > self._limits.scan_above:  # only so long a body can hold too many items
                self._limits.scan(body)
            elif self._open_input:
                self._limits.check_depth(body)
            if self.results is not None and not request.cache_directives:
                seen = (
                    self._seen_answer(request, self.results.hit_for_body(body))
                    if self.results.in_memory
                    else self._seen_answer(request, await self.results.shared_hit_for_body(body))
                )
                if seen is not None:
                    execution_id, response = seen
                    return response
            envelope = self.answers.decode(body)
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
                if result.failure is not None:
                    raise result.failure
                if span is not None:
                    span.phase("encode")
                response = self.answers.success(execution_id, result.data, result.metadata, took_ms)
        except ToolError as exc:
            code = exc.code
            response = self.answers.error(
                request, exc, execution_id=execution_id, errors_as_200=True
            )
        finally:
            if not streaming:
                if admission.queue:
                    admission.leave()
                else:
                    admission.in_flight -= 1
                self.count_execution(request, code)
            if span is not None:
                span.end(execution_id, request.request_id, code)
            if self.log_requests:  # AI_SPINE_LOG_REQUESTS (or log level debug): one line each
                self._log_execution(request, execution_id, code)
        return response

    def answer_from_cache(self, scope: Scope, body: bytes) -> tuple[Request, Response] | None:
        """Answer a ``POST /api/execute`` that is a cache hit for a body seen before, without a
        task: the request (its headers to add) and the response, or ``None`` to leave it to
        ``execute``.

        The connection calls this once an execute request is wholly in (``_protocol``). It takes
        the steps ``execute`` takes for such a hit (content type, API key, cache, metrics, log)
        and declines, changing nothing, whenever one would refuse or the body is not a known
        one: ``execute`` then serves the request, errors included.
        """
        if not self.answers_from_cache or self.admission.in_flight >= self.admission.limit:
            return None
        request = Request(scope, _nothing_to_receive)
        if request.cache_directives:
            return None
        try:
            check_content_type(request)
        except ToolError:
            return None
        key_id = None
        if self._keyed is not None:
            key_id = self._keyed.identify(request.api_key, request.authorization)
            if key_id is None:
                return None
        assert self.results is not None
        seen = self._seen_answer(request, self.results.hit_for_body(body))
        if seen is None:
            return None
        if key_id is not None:
            self.gate.admit(request, key_id)
        execution_id, response = seen
        self.count_execution(request, None)
        if self.log_requests:
            self._log_execution(request, execution_id, None)
        return request, response

    # -- the ways to run ---------------------------------------------------------------------

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
            self.admission.leave()
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
            return self.answers.success(execution_id, result.data, result.metadata, took_ms)
        outcome = await self.results.fetch(values, config, context, flags)
        took_ms = (time.perf_counter() - begun) * 1000.0
        if outcome.failure is not None:
            raise outcome.failure
        if not (flags.no_cache or flags.no_store or request.cache_directives):
            self.results.bodies.remember(body, outcome.key, envelope.execution_id)
        return self.answers.cached(execution_id, outcome, took_ms)

    def _seen_answer(
        self, request: Request, seen: tuple[CacheOutcome, str | None] | None
    ) -> tuple[str, Response] | None:
        """The cached answer for the same bytes as an earlier cached request, if still there."""
        if seen is None:
            return None
        outcome, execution_id = seen
        execution_id = execution_id or new_execution_id()
        if request.request_id is None:
            request.request_id = execution_id.encode()
        return execution_id, self.answers.cached(execution_id, outcome, 0.0)

    # -- the context ---------------------------------------------------------------------------

    def _context(self, request: Request, execution_id: str, envelope: _Envelope) -> ToolContext:
        """The context of one execution of this request."""
        user_agent = request.user_agent
        return self.tool.new_context(
            execution_id=execution_id,
            request_id=None if request.request_id is None else request.request_id.decode(),
            metadata=envelope.metadata,
            timeout_ms=self.timeout_ms,
            debug=self.settings.debug,
            security=SecurityContext(
                api_key_id=request.scope.get("ai_spine.key_id"),
                source_ip=request.client_ip,
                user_agent=None if user_agent is None else user_agent[:256].decode("latin-1"),
            ),
        )

    # -- after the answer --------------------------------------------------------------------

    def _overloaded(self, request: Request) -> Response:
        exc = self.admission.refuse()
        self.count_execution(request, exc.code)
        return self.answers.error(request, exc, errors_as_200=True)

    def count_execution(self, request: Request, code: str | None) -> None:
        """Count a finished execution (``code``: its error, if any) in the built-in metrics."""
        if self._metrics_on:
            now = time.perf_counter()
            self.tool.metrics.record((now - request.started) * 1000.0, code, now)

    def _log_execution(self, request: Request, execution_id: str | None, code: str | None) -> None:
        request_id = request.request_id
        log_execution(
            logger,
            self.log_level,
            tool=self.tool.name,
            execution_id=execution_id,
            request_id=None if request_id is None else request_id.decode("latin-1"),
            code=code,
            duration_ms=(time.perf_counter() - request.started) * 1000.0,
            key_id=request.scope.get("ai_spine.key_id"),
        )

    def concurrency(self) -> dict[str, Any]:
        """Executions running and waiting against the limit, how many were refused, the thread
        pool of sync functions (``executor``) and the executions that ran past their deadline
        (``deadline_overruns``: sync ones still holding a thread when it passed, async ones that
        blocked the event loop past it)."""
        threads = self.tool.threads
        return {
            **self.admission.figures(),
            "executor": threads.figures(),
            "deadline_overruns": {"sync": threads.overdue_total, "async": self.tool.overruns},
        }


async def _nothing_to_receive() -> Message:
    return {"type": "http.disconnect"}
