"""The server's diagnostics, started and stopped with it: loop lag, blocking, leaks, pools.

``Diagnostics`` ties the watches to one ``ToolApp``: the ``LoopWatch`` (event-loop lag, and
which tool's ``async execute`` blocked it), the ``LeakWatch`` (RSS against requests, for
``/health``) and the pool-wait warning threshold. Its ``figures()`` join the ``resources`` of
``get_metrics()`` and ``/metrics``. ``AI_SPINE_DIAGNOSTICS=false`` turns all of it off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ai_spine_tools.observability._leakwatch import LeakWatch
from ai_spine_tools.observability._loopwatch import LoopWatch
from ai_spine_tools.outbound._poolwatch import configure_pool_watch

if TYPE_CHECKING:
    from ai_spine_tools._settings import ServerSettings
    from ai_spine_tools.observability._metrics import ToolMetrics

__all__ = ["Diagnostics"]


class _Watched(Protocol):
    """What the watches read of a tool (a ``Tool`` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def execute_function(self) -> Callable[..., Any]: ...

    @property
    def stream_function(self) -> Callable[..., Any]: ...

    @property
    def metrics(self) -> ToolMetrics: ...


class Diagnostics:
    """The watches of the served tool (or of a suite's tools: one set for the process)."""

    def __init__(
        self,
        tool: _Watched | Sequence[_Watched],
        settings: ServerSettings,
        *,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        tools = list(tool) if isinstance(tool, Sequence) else [tool]
        self.loop = LoopWatch(
            threshold_ms=settings.blocking_threshold_ms,
            stacks=settings.blocking_stacks,
            busy=busy,
        )
        for one in tools:
            self.loop.watch_tool(one.name, one.execute_function, one.stream_function)
        self.leaks = LeakWatch(
            lambda: sum(one.metrics.total for one in tools),
            interval=settings.leak_sample_interval_s,
            slope_mb=settings.leak_slope_mb,
        )
        self._pool_wait_ms = settings.pool_wait_warning_ms

    def start(self) -> None:
        """Start watching (on the running loop)."""
        configure_pool_watch(self._pool_wait_ms)
        self.loop.start()
        self.leaks.start()

    async def stop(self) -> None:
        """Stop watching."""
        self.loop.stop()
        await self.leaks.stop()

    def figures(self) -> dict[str, Any]:
        """Event-loop lag and stalls, for ``resources``."""
        return self.loop.figures()

    def memory_check(self) -> dict[str, Any]:
        """The ``memory`` check of ``/health``."""
        return self.leaks.check()
