"""``Tool``: a declared tool, its lifecycle, and in-process execution (``create_tool`` and the
``@tool`` decorator build one)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal

from ai_spine_tools.cache import CacheOptions, ToolCache
from ai_spine_tools.core._config import ConfigResolver
from ai_spine_tools.core._context import NO_SECURITY, SecurityContext, ToolContext, new_execution_id
from ai_spine_tools.core._failures import error_for
from ai_spine_tools.core._metadata import ToolMetadata
from ai_spine_tools.core._output import encode_output
from ai_spine_tools.core._processes import shutdown_shared_pool
from ai_spine_tools.core._result import ToolResult, normalise_result
from ai_spine_tools.core._signature import (
    Binding,
    Executor,
    bind,
    check_executor,
    collect_stream,
    is_async,
    is_stream,
    positional_arity,
)
from ai_spine_tools.core._threads import ThreadRunner
from ai_spine_tools.exceptions import (
    ExecutionTimeoutError,
    ToolDefinitionError,
    ToolError,
)
from ai_spine_tools.fields import Field
from ai_spine_tools.fields._schema import Schema
from ai_spine_tools.observability._metrics import MetricsSnapshot, ToolMetrics
from ai_spine_tools.outbound._http import close_shared_client
from ai_spine_tools.resilience._breaker import BreakerRegistry
from ai_spine_tools.resilience._deadlines import deadlines

__all__ = ["DEFAULT_TIMEOUT_MS", "Execute", "Executor", "Tool", "UnknownFields"]

logger = logging.getLogger("ai_spine_tools")

DEFAULT_TIMEOUT_MS = 25_000
"""Below the AI Spine platform's own 30 s, so the caller gets our 408 rather than its timeout."""
_OVERRUN_SLACK_S = 0.05  # past the deadline's 10 ms slot, what loop latency alone can add

Execute = Callable[..., Any]
UnknownFields = Literal["reject", "ignore"]


class Tool:
    """A declared tool: metadata, compiled input and config schemas, and its functions.

    Create one with ``create_tool`` or the ``@tool`` decorator. ``await tool.run(input)`` validates
    and executes in-process; ``tool.asgi()`` and ``tool.serve()`` put it behind the HTTP server.
    ``async with tool:`` runs ``setup`` on entry and ``cleanup`` on exit.
    """

    def __init__(
        self,
        *,
        metadata: ToolMetadata,
        input_fields: Mapping[str, Field],
        config_fields: Mapping[str, Field],
        execute: Execute,
        setup: Callable[..., Any] | None = None,
        cleanup: Callable[..., Any] | None = None,
        health_check: Callable[..., Any] | None = None,
        unknown_fields: UnknownFields = "reject",
        timeout_ms: int | None = None,
        max_threads: int | None = None,
        cache: bool | Mapping[str, Any] | CacheOptions | None = None,
        executor: Executor = "thread",
    ) -> None:
        if not callable(execute):
            raise ToolDefinitionError(f"execute must be callable (got {execute!r})")
        if unknown_fields not in ("reject", "ignore"):
            raise ToolDefinitionError(
                f"unknown_fields must be 'reject' or 'ignore' (got {unknown_fields!r})"
            )
        if timeout_ms is not None and (not isinstance(timeout_ms, int) or timeout_ms <= 0):
            raise ToolDefinitionError(f"timeout_ms must be a positive integer (got {timeout_ms!r})")
        self.metadata = metadata
        self.name = metadata.name
        self.version = metadata.version
        self.input_schema = Schema(
            input_fields, subject="input", forbid_unknown=unknown_fields == "reject"
        )
        self.config_schema = Schema(config_fields, subject="config", forbid_unknown=False)
        self.config = ConfigResolver(config_fields)
        self.timeout_ms = timeout_ms
        self._binding: Binding = bind(execute)
        """How ``execute``'s parameters take ``(input, config, context)`` (see ``_signature``)."""
        # The usual forms take the first n values positionally: a slice, on the hot path.
        prefix = self._binding.prefix
        self._arity = -1 if prefix is None else prefix
        self._execute = execute
        self._is_async = is_async(execute)
        self.executor: Executor = check_executor(executor, execute, is_async=self._is_async)
        """Where a plain ``def execute`` runs: ``"thread"`` (the thread pool) or ``"process"``
        (the server's process pool, see ``_processes``)."""
        self.streams = is_stream(execute)
        """True when ``execute`` is an async generator: the server streams what it yields."""
        if self.streams:  # in-process runs collect the stream: {"items": [...]}
            self._execute, self._is_async = collect_stream(execute), True
        self._stream = execute
        self._setup, self._cleanup, self._health_check = setup, cleanup, health_check
        self.threads = ThreadRunner(self.name, max_threads or min(32, (os.cpu_count() or 1) + 4))
        """The thread pool of sync functions, and what holds its threads (``checks.executor``)."""
        self.overruns = 0
        """Executions that ended past their deadline uncancelled (``invoke``): async ones that
        blocked the event loop or swallowed the cancellation; the thread pool counts sync ones."""
        self._lock: asyncio.Lock | None = None
        self._started = False
        self.resources: Any = None
        self.metrics = ToolMetrics()
        self.breakers = BreakerRegistry()
        """The tool's named circuit breakers (``context.breaker(name)``), shown in health."""
        self.metrics.breakers = self.breakers
        self.cache = ToolCache(self, CacheOptions.parse(cache), encode=encode_output)
        """The tool's cache: ``context.cache`` in ``execute``, and its cached results."""
        self.metrics.cache_stats = self.cache.stats
        if self.streams and self.cache.enabled:
            raise ToolDefinitionError("cache= does not apply to a streaming execute")

    # -- identity ----------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True between a completed ``start()`` and ``stop()``."""
        return self._started

    def __repr__(self) -> str:
        return f"<Tool {self.name} {self.version}>"

    @property
    def execute_function(self) -> Execute:
        """The function given as ``execute`` (for inspection)."""
        return self._execute

    @property
    def stream_function(self) -> Execute:
        """The function given as ``execute``, as declared: for a streaming tool its async
        generator function (``execute_function`` is then what collects its items)."""
        return self._stream

    # -- lifecycle ---------------------------------------------------------------------------

    def configure(self, values: Mapping[str, Any] | None = None, /, **options: Any) -> Tool:
        """Set config fields on the server side (they win over environment and requests)."""
        self.config.configure({**(values or {}), **options})
        return self

    async def start(self) -> None:
        """Resolve the server-side config and run ``setup`` once; a second call does nothing."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._started:
                return
            self.config.resolve()
            if self._setup is not None:
                arity = positional_arity(self._setup, "setup", 1)
                args = (self.config.server_values(),)[:arity]
                try:
                    self.resources = await self._call(self._setup, *args)
                except BaseException:
                    self.threads.shutdown()  # a sync setup ran in the pool: do not leak it
                    raise
            self._started = True

    async def stop(self) -> None:
        """Run ``cleanup`` (with ``setup``'s result when it takes an argument) and free threads."""
        if not self._started:
            return
        self._started = False
        try:
            if self._cleanup is not None:
                arity = positional_arity(self._cleanup, "cleanup", 1)
                await self._call(self._cleanup, *((self.resources,) if arity else ()))
        finally:
            self.threads.shutdown()
            await close_shared_client()
            shutdown_shared_pool()

    async def __aenter__(self) -> Tool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def reset(self) -> None:
        """Forget what earlier executions left: close every breaker, drop the results cached in
        this process (not those in Redis), the custom metrics and the count of overruns. Tests
        call it between tests (``ToolTestClient`` does, unless ``reset=False``)."""
        self.breakers.reset()
        self.cache.reset()
        self.metrics.custom.clear()
        self.overruns = 0

    async def check_health(self) -> Any:
        """Run the tool's ``health_check`` (``True`` when it has none)."""
        if self._health_check is None:
            return True
        return await self._call(self._health_check)

    # -- execution ---------------------------------------------------------------------------

    async def run(
        self,
        input: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout_ms: int | None = None,
        debug: bool = False,
    ) -> ToolResult:
        """Validate ``input`` and ``config`` and execute in-process, as the server does once a
        request is decoded (``setup`` first if needed); the result cache is not consulted, so
        ``data`` is what ``execute`` returned. Every failure, a validation error included, is
        an error result; ``result.raise_for_error()`` raises it."""
        if not self._started:
            await self.start()
        try:
            values = self.input_schema.validate({} if input is None else input)
            settings = self.config.for_request(config)
        except ToolError as exc:
            return ToolResult.from_exception(exc)
        context = self.new_context(
            execution_id=execution_id, metadata=metadata, timeout_ms=timeout_ms, debug=debug
        )
        return await self.invoke(values, settings, context)

    def new_context(
        self,
        *,
        execution_id: str | None = None,
        request_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout_ms: int | None = None,
        debug: bool = False,
        security: SecurityContext | None = None,
    ) -> ToolContext:
        """Return a fresh context for one execution of this tool."""
        timeout = timeout_ms or self.timeout_ms or DEFAULT_TIMEOUT_MS
        return ToolContext(
            execution_id=execution_id or new_execution_id(),
            tool_id=self.name,
            tool_version=self.version,
            request_id=request_id,
            timeout_ms=timeout,
            deadline=time.monotonic() + timeout / 1000.0,
            metadata=metadata or {},
            debug=debug,
            resources=self.resources,
            security=security or NO_SECURITY,
            cache=self.cache,
            breakers=self.breakers,
            metrics=self.metrics.custom,
        )

    async def invoke(
        self,
        input: dict[str, Any],
        config: dict[str, Any],
        context: ToolContext,
    ) -> ToolResult:
        """Execute with already-validated values under the context's deadline: the run step of
        every entry (the server's pipeline, the result cache on a miss, ``run``). An execution
        that ends past its deadline without being stopped is counted and logged (``overran``).
        """
        task: Any = asyncio.current_task()
        watcher = deadlines(None if task is None else task.get_loop())
        deadline = context.deadline
        slot = None if deadline is None else watcher.watch(task, deadline)
        try:
            if self._is_async:
                if self._arity >= 0:
                    value = await self._execute(*(input, config, context)[: self._arity])
                else:
                    args, kwargs = self._binding.arrange(input, config, context)
                    value = await self._execute(*args, **kwargs)
            elif self.executor == "process":
                value = await self._in_process(input, config, context)
            else:
                args, kwargs = self._binding.arrange(input, config, context)
                value = await self.threads.run(
                    self._execute, args, kwargs, timeout_ms=context.timeout_ms
                )
                if inspect.isawaitable(value):  # a sync function that returned a coroutine
                    value = await value
        except ToolError as exc:
            result = ToolResult.from_exception(exc)
        except asyncio.CancelledError:
            if not watcher.expired(task):
                raise
            return ToolResult.from_exception(  # stopped at its deadline: no overrun
                ExecutionTimeoutError(
                    f"Execution exceeded its timeout of {context.timeout_ms} ms",
                    details={"timeout_ms": context.timeout_ms},
                )
            )
        except Exception as exc:
            failure = error_for(
                exc, self.name, execution_id=context.execution_id, debug=context.debug
            )
            result = ToolResult.from_exception(failure)
        else:
            result = normalise_result(value)
        finally:
            if slot is not None:
                watcher.release(task, slot)
        if deadline is not None and time.monotonic() > deadline + _OVERRUN_SLACK_S:
            _note_overrun(self, context, deadline, result.failure)
        return result

    def open_stream(
        self, input: dict[str, Any], config: dict[str, Any], context: ToolContext
    ) -> AsyncIterator[Any]:
        """Start a streaming tool's ``execute`` with validated values; return its generator."""
        args, kwargs = self._binding.arrange(input, config, context)
        stream: AsyncIterator[Any] = self._stream(*args, **kwargs)
        return stream

    # -- serving ---------------------------------------------------------------------------

    def asgi(self, **settings: Any) -> Any:
        """Return the ASGI application serving this tool (settings override the environment)."""
        from ai_spine_tools.server._app import create_app

        return create_app(self, **settings)

    def serve(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        workers: int | None = None,
        reload: bool = False,
        log_level: str | None = None,
    ) -> None:
        """Serve this tool over HTTP until stopped (see ``ai_spine_tools.server._server.serve``)."""
        from ai_spine_tools.server._server import serve

        serve(self, host=host, port=port, workers=workers, reload=reload, log_level=log_level)

    def get_metrics(self) -> MetricsSnapshot:
        """Return the metrics snapshot of this tool's executions in this process: requests,
        errors, resources, cache statistics and the ``custom`` metrics of ``context.metrics``."""
        return self.metrics.snapshot()

    # -- schemas for agents ------------------------------------------------------------------

    def json_schema(self) -> dict[str, Any]:
        """Return the JSON Schema (2020-12) of this tool's input, with no ``$ref``: the MCP
        ``inputSchema``, and what the function-calling exports start from."""
        from ai_spine_tools.interop._export import input_json_schema

        return input_json_schema(self)

    def to_openai_tool(
        self, *, strict: bool | None = None, api: Literal["chat", "responses"] = "chat"
    ) -> dict[str, Any]:
        """Return this tool as an OpenAI function tool, in strict mode when its schema allows.

        ``api`` picks the Chat Completions (``"chat"``) or Responses (``"responses"``) shape;
        ``strict=True`` insists on strict mode (``ToolDefinitionError`` if the schema cannot be
        written in it), ``strict=False`` exports the plain schema.
        """
        from ai_spine_tools.interop._export import openai_tool

        return openai_tool(self, strict=strict, api=api)

    def to_anthropic_tool(self, *, strict: bool | None = None) -> dict[str, Any]:
        """Return this tool as an Anthropic Messages API tool, with ``"strict": true`` when its
        schema fits strict tool use (``strict`` as for ``to_openai_tool``)."""
        from ai_spine_tools.interop._export import anthropic_tool

        return anthropic_tool(self, strict=strict)

    # -- helpers -----------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if is_async(fn):
            return await fn(*args)
        result = await self.threads.run(fn, args)
        return await result if inspect.isawaitable(result) else result

    async def _in_process(
        self, input: dict[str, Any], config: dict[str, Any], context: ToolContext
    ) -> Any:
        from ai_spine_tools.core._processes import shared_pool

        # The context's snapshot: what makes sense in another process.
        shown = context.snapshot() if self._binding.uses_context else context
        args, kwargs = self._binding.arrange(input, config, shown)
        role = f"tool {self.name!r} (executor='process')"
        return await shared_pool().call(self._execute, args, kwargs, role=role)


def _note_overrun(
    tool: Tool, context: ToolContext, deadline: float, failure: ToolError | None
) -> None:
    """An execution of ``tool`` ended past its deadline and was not stopped: count it and say
    why (a timeout the tool raised itself is no overrun)."""
    if isinstance(failure, ExecutionTimeoutError):
        return
    tool.overruns += 1
    logger.warning(
        "tool %r: an execution ran %.0f ms, past its %d ms deadline, and could not be stopped: "
        "its async execute blocked the event loop (or swallowed the cancellation), and a "
        "deadline can only cancel code at an await. Make the slow call async, declare execute "
        "with a plain def so it runs in the thread pool, or, for CPU-bound work, use "
        "context.to_process (docs: CPU-bound work; Resilience, Deadlines).",
        tool.name,
        (time.monotonic() - deadline) * 1000.0 + (context.timeout_ms or 0),
        context.timeout_ms,
    )
