"""OpenTelemetry tracing of executions (``AI_SPINE_TRACING=true`` and the ``[otel]`` extra).

Each execution gets one server span, ``POST /api/execute``, continuing the caller's trace when
the request carries a ``traceparent`` (through the globally configured propagators), with one
child span per phase: ``validate`` (reading, decoding and validating the request), ``execute``
(the tool, its cache and its stream: spans the tool makes nest under it) and ``encode``. The
span carries the tool, the execution and request ids, the outcome and the error code; an error
marks it failed.

Calls through ``context.http`` get a client span each (``GET``, with the method, URL without its
query, host and status), and carry the trace on to the upstream in ``traceparent``.

Spans go to the globally configured tracer provider: set one up in the program (or run under
``opentelemetry-instrument``) with the exporter of your choice. This module is imported only when
tracing is on: without it, an execution pays one attribute check.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from ai_spine_tools._version import __version__
from ai_spine_tools.outbound._http_client import set_outbound_tracer

__all__ = ["ExecutionTrace", "Tracing", "outbound_span"]


class _Request(Protocol):
    """What a span is opened from: the server's request (its ASGI scope, when it began)."""

    scope: MutableMapping[str, Any]
    started: float


def _ignore(status: int) -> None:
    return None


@asynccontextmanager
async def outbound_span(
    method: str, url: str, headers: dict[str, str]
) -> AsyncIterator[Callable[[int], None]]:
    """Run an outbound request of a traced execution in a client span, with the trace injected
    into ``headers``; yield the callback that records the answer's status. Outside a traced
    execution, do nothing."""
    if not trace.get_current_span().get_span_context().is_valid:
        yield _ignore
        return
    from yarl import URL

    target = URL(url)
    span = trace.get_tracer("ai_spine_tools", __version__).start_span(
        method,
        kind=trace.SpanKind.CLIENT,
        attributes={
            "http.request.method": method,
            "url.full": str(target.with_query(None).with_user(None).with_fragment(None)),
            "server.address": target.host or "",
        },
    )
    with trace.use_span(span, end_on_exit=True):
        propagate.inject(headers)

        def record(status: int) -> None:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(status)))

        yield record


set_outbound_tracer(outbound_span)  # imported only when tracing is on


class Tracing:
    """Starts the span of each execution of one tool."""

    def __init__(self, tool_name: str) -> None:
        self.tool_name = tool_name
        self._tracer = trace.get_tracer("ai_spine_tools", __version__)

    def begin(self, request: _Request) -> ExecutionTrace:
        """Start the span of the execution ``request`` asks for (from when it arrived), under
        the trace its headers carry, and its ``validate`` phase."""
        fields = propagate.get_global_textmap().fields
        carrier = {}
        for name, value in request.scope["headers"]:
            key = name.decode("latin-1")
            if key in fields:
                carrier[key] = value.decode("latin-1")
        parent = propagate.extract(carrier) if carrier else None
        start_ns = time.time_ns() - int((time.perf_counter() - request.started) * 1e9)
        root = self._tracer.start_span(
            "POST /api/execute",
            context=parent,
            kind=trace.SpanKind.SERVER,
            start_time=start_ns,
            attributes={
                "http.request.method": "POST",
                "http.route": "/api/execute",
                "ai_spine.tool": self.tool_name,
            },
        )
        return ExecutionTrace(self._tracer, root, parent, start_ns)


class ExecutionTrace:
    """One execution's span, made current, and its current phase."""

    __slots__ = ("_phase", "_phase_token", "_root", "_root_context", "_root_token", "_tracer")

    def __init__(self, tracer: Any, root: trace.Span, parent: Any, start_ns: int) -> None:
        self._tracer = tracer
        self._root = root
        self._root_context = trace.set_span_in_context(root, parent)
        self._root_token = otel_context.attach(self._root_context)
        self._phase: trace.Span | None = None
        self._phase_token: Any = None
        self._start_phase("validate", start_ns)

    def phase(self, name: str) -> None:
        """End the current phase and start ``name`` (as the current span)."""
        self._end_phase()
        self._start_phase(name, None)

    def end(self, execution_id: str | None, request_id: bytes | None, code: str | None) -> None:
        """End the phase and the execution's span, recording its outcome."""
        self._end_phase()
        root = self._root
        if execution_id is not None:
            root.set_attribute("ai_spine.execution_id", execution_id)
        if request_id is not None:
            root.set_attribute("ai_spine.request_id", request_id.decode("latin-1"))
        root.set_attribute("ai_spine.status", "error" if code else "success")
        if code is not None:
            root.set_attribute("ai_spine.error_code", code)
            root.set_status(trace.Status(trace.StatusCode.ERROR, code))
        otel_context.detach(self._root_token)
        root.end()

    def _start_phase(self, name: str, start_ns: int | None) -> None:
        span = self._tracer.start_span(name, context=self._root_context, start_time=start_ns)
        self._phase = span
        self._phase_token = otel_context.attach(trace.set_span_in_context(span))

    def _end_phase(self) -> None:
        if self._phase is not None:
            otel_context.detach(self._phase_token)
            self._phase.end()
            self._phase = None
