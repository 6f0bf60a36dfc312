"""The thread pool of a tool's plain ``def`` functions, and what holds its threads.

A Python thread cannot be stopped from outside: a sync ``execute`` that passes its deadline gets
its caller a 408 on time, but runs on until it returns, holding a thread, and executions beyond
the pool wait for a free one. ``ThreadRunner`` counts the calls holding or waiting for a thread
(``busy``) and those still running past their deadline (``overdue``), logs each of those once,
when its deadline passes, and reports the pool for ``/health`` (``checks.executor``, degraded
while every thread is held) and ``/metrics``.

The counts change on the event loop's thread only (a call that outlives its deadline reports its
return with ``call_soon_threadsafe``, the only extra cost, and only for such a call), so they
need no lock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ai_spine_tools.resilience._deadlines import deadlines

__all__ = ["ThreadRunner"]

logger = logging.getLogger("ai_spine_tools.server")


class ThreadRunner:
    """Runs one tool's sync functions in a bounded thread pool (created on first use)."""

    def __init__(self, name: str, max_threads: int) -> None:
        self.name = name
        self.max_threads = max_threads
        self.busy = 0
        """Calls holding a thread or waiting for one."""
        self.overdue = 0
        """Calls still running past their deadline (their caller got a 408)."""
        self.overdue_total = 0
        """Calls that ran past their deadline, since start."""
        self._pool: ThreadPoolExecutor | None = None

    async def run(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout_ms: int | None = None,
    ) -> Any:
        """Call ``fn(*args, **kwargs)`` in a pool thread (with this task's context variables)
        and return what it returns."""
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *args, **(kwargs or {}))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.max_threads, thread_name_prefix=f"ai-spine-{self.name}"
            )
        future = self._pool.submit(call)
        self.busy += 1
        try:
            result = await asyncio.wrap_future(future, loop=loop)
        except asyncio.CancelledError:
            if future.cancel() or future.done():  # it never started, or it has just returned
                self.busy -= 1
            else:
                self._outlived(future, loop, timeout_ms)
            raise
        except BaseException:
            self.busy -= 1
            raise
        self.busy -= 1
        return result

    def shutdown(self) -> None:
        """Let the pool's threads go (those still running finish on their own)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def figures(self) -> dict[str, Any]:
        """The pool for ``/metrics``: threads busy of ``max``, calls ``queued`` for one, calls
        ``overdue`` now and ``overdue_total`` since start."""
        busy = min(self.busy, self.max_threads)
        return {
            "busy": busy,
            "max": self.max_threads,
            "queued": self.busy - busy,
            "overdue": self.overdue,
            "overdue_total": self.overdue_total,
        }

    def check(self) -> dict[str, Any]:
        """The ``executor`` check of ``/health``: degraded while every thread is held."""
        busy = min(self.busy, self.max_threads)
        status = "degraded" if busy >= self.max_threads else "ok"
        out: dict[str, Any] = {"status": status, "busy": busy, "max": self.max_threads}
        if self.overdue:
            out["overdue"] = self.overdue
        return out

    def _outlived(
        self,
        future: concurrent.futures.Future[Any],
        loop: asyncio.AbstractEventLoop,
        timeout_ms: int | None,
    ) -> None:
        """The caller stopped waiting while ``future`` runs: keep its thread counted until it
        returns, and when its deadline is why, count and log it."""
        task = asyncio.current_task()
        overdue = task is not None and timeout_ms is not None and deadlines().is_expired(task)
        started = time.perf_counter()
        if overdue:
            self.overdue += 1
            self.overdue_total += 1
            logger.warning(
                "tool %r: a sync execute passed its %d ms deadline and is still running in the "
                "thread pool (%d of %d threads busy). Python cannot stop a thread: it holds one "
                "until the function returns, and executions beyond the pool wait for a free "
                "one. Check context.remaining_ms() in its loops and give its blocking calls "
                "timeouts (docs: Resilience, Deadlines).",
                self.name,
                timeout_ms,
                min(self.busy, self.max_threads),
                self.max_threads,
            )

        def returned(_: concurrent.futures.Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to count
                loop.call_soon_threadsafe(self._returned_late, started, timeout_ms, overdue)

        future.add_done_callback(returned)

    def _returned_late(self, started: float, timeout_ms: int | None, overdue: bool) -> None:
        self.busy -= 1
        if overdue:
            self.overdue -= 1
            logger.debug(
                "tool %r: a sync execute that passed its %s ms deadline returned %.0f ms later; "
                "its result was dropped",
                self.name,
                timeout_ms,
                (time.perf_counter() - started) * 1000.0,
            )
