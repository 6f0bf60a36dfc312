"""Event-loop health: how late the loop answers, and which tool's ``async execute`` blocked it.

A watchdog thread schedules a tiny callback on the loop (``call_soon_threadsafe``) and measures
how long the loop takes to run it: the event-loop lag. It pings every ``poll`` seconds while
executions are in flight (so a stall is measured to within ``poll``) and every ``interval``
seconds when idle; the per-request path pays nothing. When a ping is not answered within the
threshold, the loop is stuck in synchronous code: the thread samples the loop thread's stack
(``sys._current_frames()``), finds the tool whose ``execute`` is on it, and once the loop
answers logs one warning per tool naming it and the fix (make the slow call async, declare
``execute`` sync so it runs in the thread pool, or, for CPU-bound work, ``context.to_process`` or
``executor="process"``), with the blocking stack when ``stacks`` is on (``ai-spine dev``, or
``AI_SPINE_BLOCKING_STACKS``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

__all__ = ["BlockingEvent", "LoopWatch", "execute_codes"]

logger = logging.getLogger("ai_spine_tools.diagnostics")

_OUTSIDE = ""  # the "tool" of a stall found in no tool's execute


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockingEvent:
    """The loop did not answer for ``lag_ms``; ``tool`` was on its stack ("" for none)."""

    tool: str
    lag_ms: float
    stack: str


class LoopWatch:
    """Measures event-loop lag from a watchdog thread and attributes stalls to tools.

    Args:
        threshold_ms: a ping answered later than this is a stall (blocking) worth a warning.
        stacks: put the sampled stack in the warning.
        interval: seconds between pings while idle; ``poll`` while ``busy()`` is true.
        busy: true while executions are in flight (the app's ``in_flight > 0``).
    """

    def __init__(
        self,
        *,
        threshold_ms: float = 100.0,
        stacks: bool = False,
        interval: float = 0.5,
        poll: float = 0.025,
        busy: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.threshold_ms = threshold_ms
        self.stacks = stacks
        self.interval = interval
        self.poll = min(poll, threshold_ms / 4000.0)
        self._busy = busy or (lambda: False)
        self._clock = clock
        self._codes: dict[CodeType, str] = {}
        self.current_ms = 0.0
        self.max_ms = 0.0
        self.blocked_total = 0
        self.blocked_by_tool: dict[str, int] = {}
        self.events: list[BlockingEvent] = []  # the first stall of each tool, for reports
        self._warned: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pong = threading.Event()
        self._answered_at = 0.0

    def watch_tool(self, name: str, *functions: Any) -> None:
        """Attribute stalls inside any of ``functions`` (a tool's ``execute``) to ``name``."""
        for code in execute_codes(*functions):
            self._codes[code] = name

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching the running loop (from a coroutine on it)."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ai-spine-loopwatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the watchdog thread (it exits within ``poll`` seconds)."""
        self._stop.set()
        self._pong.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    # -- figures -----------------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        """The lag of the last ping and the worst one, and the stalls counted per tool."""
        return {
            "event_loop_lag_ms": {
                "current": round(self.current_ms, 3),
                "max": round(self.max_ms, 3),
            },
            "event_loop_blocked": {
                "total": self.blocked_total,
                "by_tool": dict(self.blocked_by_tool),
                "threshold_ms": self.threshold_ms,
            },
        }

    # -- the watchdog thread -----------------------------------------------------------------

    def _run(self) -> None:
        last = -float("inf")
        while not self._stop.is_set():
            now = self._clock()
            if now - last >= self.interval or self._busy():
                last = now
                if not self._measure(now):
                    return
            self._stop.wait(self.poll)

    def _answer(self) -> None:
        self._answered_at = self._clock()
        self._pong.set()

    def _measure(self, sent: float) -> bool:
        """Ping the loop once and wait for the answer; False when the loop is gone."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        self._pong.clear()
        try:
            loop.call_soon_threadsafe(self._answer)
        except RuntimeError:  # the loop closed meanwhile
            return False
        sample: tuple[str, str] | None = None
        if not self._pong.wait(self.threshold_ms / 1000.0):
            sample = self._sample()
            while not self._pong.wait(self.poll):
                if self._stop.is_set() or loop.is_closed():
                    return False
        if self._stop.is_set():
            return False
        lag = max(0.0, (self._answered_at - sent) * 1000.0)
        self.current_ms = lag
        if lag > self.max_ms:
            self.max_ms = lag
        if sample is not None and lag >= self.threshold_ms:
            self._stalled(BlockingEvent(tool=sample[0], lag_ms=round(lag, 1), stack=sample[1]))
        return True

    def _sample(self) -> tuple[str, str]:
        """The tool on the loop thread's stack right now ("" for none) and the stack as text."""
        frame: FrameType | None = sys._current_frames().get(self._loop_thread)
        tool = _OUTSIDE
        walk = frame
        while walk is not None:
            name = self._codes.get(walk.f_code)
            if name is not None:
                tool = name
                break
            walk = walk.f_back
        stack = "".join(traceback.format_stack(frame, limit=30)) if frame is not None else ""
        return tool, stack

    def _stalled(self, event: BlockingEvent) -> None:
        self.blocked_total += 1
        if event.tool:
            self.blocked_by_tool[event.tool] = self.blocked_by_tool.get(event.tool, 0) + 1
        if event.tool in self._warned:
            return
        self._warned.add(event.tool)
        self.events.append(event)
        where = (
            f"\nblocking stack (most recent call last):\n{event.stack}"
            if self.stacks and event.stack
            else " (set AI_SPINE_BLOCKING_STACKS=true, or run ai-spine dev, to log its stack)"
        )
        if event.tool:
            logger.warning(
                "tool %r blocked the event loop for %.0f ms inside its async execute, so every "
                "other request waited. Make the slow call async (an async client, "
                "await asyncio.sleep), or declare execute with a plain def so it runs in the "
                "thread pool. For CPU-bound work (hashing, parsing, number crunching) use "
                "processes: await context.to_process(fn, ...) with fn defined at module level, "
                "or create_tool(..., executor='process') with a plain def execute (docs: "
                "CPU-bound work). Logged once per tool.%s",
                event.tool,
                event.lag_ms,
                where,
            )
        else:
            logger.warning(
                "the event loop was blocked for %.0f ms outside any tool's execute (a slow "
                "import, a large synchronous call, or garbage collection). Logged once.%s",
                event.lag_ms,
                where,
            )


def execute_codes(*functions: Any) -> list[CodeType]:
    """The code objects that run when ``functions`` are called (unwrapping partials,
    decorators, bound methods and callable objects)."""
    out = []
    for function in functions:
        target = function
        for _ in range(8):
            if isinstance(target, functools.partial):
                target = target.func
            elif hasattr(target, "__wrapped__"):
                target = target.__wrapped__
            elif hasattr(target, "__func__"):
                target = target.__func__
            else:
                break
        code = getattr(target, "__code__", None)
        if code is None:
            call = type(target).__dict__.get("__call__")  # a callable object's method
            code = getattr(call, "__code__", None)
        if isinstance(code, CodeType):
            out.append(code)
    return out
