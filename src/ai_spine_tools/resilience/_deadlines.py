"""Execution deadlines: cancel each task that outlives its deadline, cheaply.

``asyncio.timeout`` costs a timer of its own per call (about 3.5 µs, a fifth of a request's
whole server-side cost here). Deadlines fall into 10 ms slots instead: the first task in a slot
schedules one timer for it, the others only join a set, and a finished task leaves its slot.
A task is cancelled at most one slot (10 ms) after its deadline.
"""

from __future__ import annotations

import asyncio
import time
import weakref

__all__ = ["Deadlines", "deadlines"]

_SLOT_S = 0.01
_PER_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = (
    weakref.WeakKeyDictionary()
)


_last: tuple[asyncio.AbstractEventLoop | None, Deadlines | None] = (None, None)


def deadlines(loop: asyncio.AbstractEventLoop | None = None) -> Deadlines:
    """Return the deadline watcher of ``loop`` (default: the running one; timers belong to one
    loop). A caller holding its task passes ``task.get_loop()``: asking for the running loop
    costs a system call (``getpid``) on Python 3.11."""
    global _last
    if loop is None:
        loop = asyncio.get_running_loop()
    last_loop, watcher = _last
    if loop is last_loop and watcher is not None:  # the usual case: skip the weak-dict lookup
        return watcher
    watcher = _PER_LOOP.get(loop)
    if watcher is None:
        watcher = _PER_LOOP[loop] = Deadlines()
    _last = (loop, watcher)
    return watcher


class Deadlines:
    """Watches running tasks and cancels those whose deadline has passed."""

    def __init__(self) -> None:
        self._slots: dict[int, set[asyncio.Task[object]]] = {}
        self._expired: set[asyncio.Task[object]] = set()

    def watch(self, task: asyncio.Task[object], deadline: float) -> int:
        """Cancel ``task`` once ``time.monotonic()`` passes ``deadline``; return its slot."""
        slot = int(deadline / _SLOT_S) + 1
        tasks = self._slots.get(slot)
        if tasks is None:
            tasks = self._slots[slot] = set()
            delay = slot * _SLOT_S - time.monotonic()
            asyncio.get_running_loop().call_later(max(0.0, delay), self._expire, slot)
        tasks.add(task)
        return slot

    def release(self, task: asyncio.Task[object], slot: int) -> None:
        """Stop watching ``task`` (it finished, one way or another)."""
        tasks = self._slots.get(slot)
        if tasks is not None:
            tasks.discard(task)

    def expired(self, task: asyncio.Task[object]) -> bool:
        """True, once, if ``task`` was cancelled because its deadline passed (and undo that)."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    def is_expired(self, task: asyncio.Task[object]) -> bool:
        """True while ``task`` is being cancelled because its deadline passed (no side effect)."""
        return task in self._expired

    def deadline_of(self, task: asyncio.Task[object]) -> float | None:
        """Return when ``task`` will be cancelled (end of its slot), or ``None`` if unwatched.

        A scan of the live slots: it costs nothing per request, only when something (a retry
        deciding whether to wait again) asks.
        """
        for slot, tasks in self._slots.items():
            if task in tasks:
                return slot * _SLOT_S
        return None

    def _expire(self, slot: int) -> None:
        for task in self._slots.pop(slot, ()):
            if not task.done():
                self._expired.add(task)
                task.cancel("deadline")
