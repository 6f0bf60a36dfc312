"""``ToolContext``: what an execution knows about itself and the request that started it."""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Mapping
from itertools import count
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import msgspec

from ai_spine_tools.cache._options import NO_FLAGS, ExecutionFlags
from ai_spine_tools.observability._custom_metrics import CustomMetrics

if TYPE_CHECKING:
    from ai_spine_tools.cache import ToolCache
    from ai_spine_tools.outbound._http_client import HTTPClient
    from ai_spine_tools.resilience._breaker import BreakerRegistry, CircuitBreaker

__all__ = [
    "NO_SECURITY",
    "SecurityContext",
    "ToolContext",
    "new_execution_id",
]

# A uuid4 costs an os.urandom call; ids only need to be unique, so one random prefix per process
# and a counter give 36-character, uuid-shaped ids at a fraction of the cost.
_RANDOM = os.urandom(10).hex()
_PREFIX = f"{_RANDOM[:8]}-{_RANDOM[8:12]}-{_RANDOM[12:16]}-{_RANDOM[16:20]}-"
_COUNTER = count(1)
_progress_log = logging.getLogger("ai_spine_tools.progress")
P = ParamSpec("P")
R = TypeVar("R")


def new_execution_id() -> str:
    """Return a new unique id in uuid form (random per process, sequential within it)."""
    return f"{_PREFIX}{next(_COUNTER) & 0xFFFFFFFFFFFF:012x}"


class SecurityContext(msgspec.Struct, frozen=True, kw_only=True):
    """Who called: an id derived from the API key used (never the key), source IP, user agent."""

    api_key_id: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None


NO_SECURITY = SecurityContext()


class ToolContext(msgspec.Struct, kw_only=True, dict=True):
    """Per-execution information handed to ``execute`` as its third argument.

    ``deadline`` is a ``time.monotonic()`` instant; ``remaining_ms()`` says how much of it is left,
    so tool code can budget its outbound calls. ``resources`` is what ``setup`` returned.
    ``cache`` is the tool's cache (``await context.cache.get(key)`` / ``set(key, value, ttl)``:
    memory, with Redis behind it when one is configured); ``flags`` says whether the caller
    asked to bypass cached results. ``breaker(name)`` is one of the tool's circuit breakers,
    ``http`` the shared pooled HTTP client, ``report_progress()`` records progress.
    ``metrics`` is the tool's one registry of custom counters, gauges and timers
    (``with context.metrics.timer("database_query"): ...``; see ``CustomMetrics``).
    ``await to_process(fn, *args)`` runs CPU-bound work in the server's process pool.
    A msgspec ``Struct`` rather than a dataclass: it is built for every request, in a third of
    the time.
    """

    execution_id: str
    tool_id: str
    tool_version: str
    request_id: str | None = None
    started_at: float = msgspec.field(default_factory=time.time)
    timeout_ms: int | None = None
    deadline: float | None = None
    security: SecurityContext = NO_SECURITY
    metadata: Mapping[str, Any] = msgspec.field(default_factory=dict)
    debug: bool = False
    resources: Any = None
    cache: ToolCache = None  # type: ignore[assignment]  # always set but in hand-made contexts
    flags: ExecutionFlags = NO_FLAGS
    breakers: BreakerRegistry | None = None
    progress: dict[str, Any] | None = None
    metrics: CustomMetrics = msgspec.field(default_factory=CustomMetrics)

    @property
    def timestamp(self) -> dt.datetime:
        """When the execution started, as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.started_at, dt.UTC)

    def remaining_ms(self) -> float | None:
        """Milliseconds left before the deadline (never negative), or ``None`` without one."""
        if self.deadline is None:
            return None
        return max(0.0, (self.deadline - time.monotonic()) * 1000.0)

    def breaker(self, name: str, **options: Any) -> CircuitBreaker:
        """Return the tool's circuit breaker called ``name`` (created with ``options`` on first
        use, shared by every execution): ``async with context.breaker("weather-api"): ...``."""
        from ai_spine_tools.resilience._breaker import BreakerRegistry

        if self.breakers is None:
            self.breakers = BreakerRegistry()
        return self.breakers.get(name, **options)

    @property
    def http(self) -> HTTPClient:
        """The process's shared, pooled HTTP client (keep-alive; closed on shutdown):
        ``await context.http.get(url, params=...)``."""
        from ai_spine_tools.outbound._http import shared_client

        return shared_client()

    async def to_process(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` in the server's process pool and return its result.

        For CPU-bound work: it runs on another core while the event loop keeps serving.
        ``fn`` is pickled by reference (a function defined at the top level of a module, the
        tool's own file included), its arguments and result by value. The execution's deadline
        applies: past it the call is dropped, and the worker running it is terminated and
        replaced. An exception raised in the worker is raised here, its traceback as a note.
        """
        from ai_spine_tools.core._processes import shared_pool

        return await shared_pool().run(fn, *args, **kwargs)

    def snapshot(self) -> ToolContext:
        """A picklable copy for a worker process: ids, timestamp, deadline and ``timeout_ms``,
        security, metadata and debug; without ``resources``, ``cache`` and breakers, which
        live in the server process (``executor="process"`` hands this to ``execute``)."""
        return msgspec.structs.replace(
            self,
            resources=None,
            cache=None,
            breakers=None,
            progress=None,
            metrics=CustomMetrics(),
            metadata=dict(self.metadata),
        )

    def report_progress(self, done: int, total: int | None = None, **details: Any) -> None:
        """Record how far the execution has got: kept in ``progress`` and logged (at info level
        in debug mode, else debug)."""
        self.progress = {"done": done, "total": total, **details}
        level = logging.INFO if self.debug else logging.DEBUG
        if _progress_log.isEnabledFor(level):
            of = "" if total is None else f"/{total}"
            _progress_log.log(level, "execution %s: %d%s done", self.execution_id, done, of)
