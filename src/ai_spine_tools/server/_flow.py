"""When a connection reads and writes: flow control, with reading in the protocol's hands,
answers written at the end of the event loop's turn, and the sweep that checks read deadlines.

uvicorn's request cycles pause reading while a pipelined request waits and while an app leaves
its body unread, and resume it after every answer, however many requests are parsed and waiting
and whether or not the client reads its answers. Here uvicorn's resumes are requests: the
protocol (``_protocol.GuardedHTTPProtocol``) reads on only when ``may_read`` allows, and resumes
when that changes (an answer written, the client reading again).

An answer given to ``send_soon`` is written once the loop has run everything else that was
ready (every request it read this turn, every execution that could go on), so a client waiting on
several connections gets its answers in a burst and is woken once for them, not once for each.
Written one by one, each woke a client that had gone back to sleep, and on a virtual machine a
wake-up costs the writer a few microseconds: ``bench/server.py`` measured the no-I/O tool at
0.66-0.81 of the bare ASGI yardstick and its cache hits at 0.71-0.95; written this way, 0.94 and
1.20. Whatever else the connection writes, or a close, sends what is waiting first
(``send_unsent``), so answers keep their order.

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

    __slots__ = (
        "_loop",
        "_reader",
        "_transport",
        "_unsent",
        "_writable",
        "read_paused",
        "wanted",
        "write_paused",
    )

    def __init__(
        self, transport: asyncio.Transport, reader: Reader, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._transport = transport
        self._reader = reader
        self._loop = loop
        self._unsent: bytes | None = None
        self.read_paused = False
        """Whether the connection parses no more input (uvicorn's name)."""
        self.wanted = True
        """Whether uvicorn last asked to read (its pauses and resumes)."""
        self.write_paused = False
        self._writable = asyncio.Event()
        self._writable.set()

    def send_soon(self, data: bytes) -> None:
        """Write ``data`` at the end of the loop's turn (see the module)."""
        unsent = self._unsent
        if unsent is None:
            self._unsent = data
            self._loop.call_soon(self.send_unsent)
        else:  # pipelined answers of one turn: one write
            self._unsent = unsent + data

    def send_unsent(self) -> None:
        """Write what waits for the end of the loop's turn now (before anything else)."""
        unsent = self._unsent
        if unsent is not None:
            self._unsent = None
            if not self._transport.is_closing():
                self._transport.write(unsent)

    def write(self, data: bytes) -> None:
        """Write ``data`` now, after what waits for the end of the turn."""
        self.send_unsent()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        """Close the connection once what waits for the end of the turn is written."""
        self.send_unsent()
        self._transport.close()

    def drop_unsent(self) -> None:
        """Forget what was to be written (the connection is gone)."""
        self._unsent = None

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
