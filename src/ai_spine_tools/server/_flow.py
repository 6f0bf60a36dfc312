"""When a connection reads: flow control, with reading in the protocol's hands, and the sweep
that checks read deadlines.

uvicorn's request cycles pause reading while a pipelined request waits and while an app leaves
its body unread, and resume it after every answer, however many requests are parsed and waiting
and whether or not the client reads its answers. Here uvicorn's resumes are requests: the
protocol (``_protocol.GuardedHTTPProtocol``) reads on only when ``may_read`` allows, and resumes
when that changes (an answer written, the client reading again).

Read deadlines are checked by one timer per server, each second (``Sweeper``), not one per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, Protocol

__all__ = ["Flow", "Sweeper"]

SWEEP_INTERVAL_S = 1.0
_SWEEPER = "_ai_spine_sweeper"


class Reader(Protocol):
    """What ``Flow`` asks of its connection's protocol."""

    def may_read(self) -> bool: ...

    def resume(self) -> None: ...

    def reading_paused(self) -> None: ...

    def check_deadline(self, now: float) -> None: ...


class Flow:
    """uvicorn's ``FlowControl`` for one connection (the same attributes and methods, which its
    request cycles call), where resuming reading is the protocol's decision."""

    __slots__ = ("_reader", "_transport", "_writable", "read_paused", "wanted", "write_paused")

    def __init__(self, transport: asyncio.Transport, reader: Reader) -> None:
        self._transport = transport
        self._reader = reader
        self.read_paused = False
        """Whether the connection parses no more input (uvicorn's name)."""
        self.wanted = True
        """Whether uvicorn last asked to read (its pauses and resumes)."""
        self.write_paused = False
        self._writable = asyncio.Event()
        self._writable.set()

    async def drain(self) -> None:
        """Wait until the client has read enough of what is written to it."""
        await self._writable.wait()

    def pause_reading(self) -> None:
        self.wanted = False
        if not self.read_paused:
            self.read_paused = True
            if not self._transport.is_closing():
                self._transport.pause_reading()
            self._reader.reading_paused()

    def resume_reading(self) -> None:
        self.wanted = True
        if self.read_paused and self._reader.may_read():
            self._reader.resume()

    def start_reading(self) -> None:
        """Read from the socket again (the protocol has decided to)."""
        self.read_paused = False
        if not self._transport.is_closing():
            self._transport.resume_reading()

    def pause_writing(self) -> None:
        if not self.write_paused:
            self.write_paused = True
            self._writable.clear()

    def resume_writing(self) -> None:
        if self.write_paused:
            self.write_paused = False
            self._writable.set()


class Sweeper:
    """One timer per server: each second, checks the read deadline of every connection."""

    __slots__ = ("_connections", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: Iterable[Any]) -> None:
        self._loop = loop
        self._connections = connections

    @classmethod
    def ensure(cls, state: Any, loop: asyncio.AbstractEventLoop) -> None:
        """Start the sweep of ``state.connections`` (uvicorn's server state), once a server."""
        if getattr(state, _SWEEPER, None) is None:
            sweeper = cls(loop, state.connections)
            setattr(state, _SWEEPER, sweeper)
            loop.call_later(SWEEP_INTERVAL_S, sweeper.sweep)

    def sweep(self) -> None:
        now = time.monotonic()
        for connection in list(self._connections):
            check = getattr(connection, "check_deadline", None)
            if check is not None:  # websocket connections have none
                check(now)
        if not self._loop.is_closed():
            self._loop.call_later(SWEEP_INTERVAL_S, self.sweep)
