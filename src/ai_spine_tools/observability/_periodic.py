"""A function called every so many seconds, in a task of its own on the running loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

__all__ = ["Periodic"]


class Periodic:
    """Calls ``tick`` every ``interval`` seconds, from ``start()`` until ``stop()``.

    A ``tick`` that raises is logged (once, as ``failure`` on ``logger``) and called again the
    next time: what it keeps up to date must not stop being kept.
    """

    __slots__ = ("_failed", "_task", "failure", "interval", "logger", "tick")

    def __init__(
        self,
        tick: Callable[[], None],
        interval: float,
        *,
        logger: logging.Logger,
        failure: str,
    ) -> None:
        self.tick = tick
        self.interval = interval
        self.logger = logger
        self.failure = failure
        self._failed = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start calling (the first call now); starting again changes nothing."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop calling, and wait until the task is gone."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                if not self._failed:
                    self.logger.exception(self.failure)
                self._failed = True
            await asyncio.sleep(self.interval)
