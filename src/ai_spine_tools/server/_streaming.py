"""Streamed results: a tool whose ``execute`` is an async generator answers item by item.

The body is NDJSON by default, one record a line::

    {"type":"item","data":{...}}
    {"type":"result","execution_id":"…","status":"success","output_data":{"items":2},…}

or, when the client sends ``Accept: text/event-stream``, Server-Sent Events (``event: item`` …,
then ``event: result``). The last record is the usual response envelope; an error after the
first item becomes a last record with ``"type": "error"``, the usual error fields and
``items_sent`` (before the first item the response is a plain error with its HTTP status, as for
any tool).

The generator runs in a producer task that encodes into a buffer of at most ``_HIGH_WATER``
bytes and waits while the buffer is full; the sender drains the whole buffer per write. A fast
producer thus sends big chunks and memory stays flat however many items there are; a slow one has
each item sent as soon as it is yielded. The execution deadline covers the whole stream; a client
that disconnects stops the generator.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from ai_spine_tools.core._failures import error_for
from ai_spine_tools.core._output import ENCODER, check_finite, unserializable
from ai_spine_tools.exceptions import ExecutionTimeoutError, ToolError
from ai_spine_tools.resilience._deadlines import deadlines
from ai_spine_tools.server._wire import error_envelope

__all__ = ["NDJSON", "SSE", "ResultStream", "wants_sse"]


NDJSON = b"application/x-ndjson"
SSE = b"text/event-stream"
_HIGH_WATER = 64 * 1024

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]


def wants_sse(headers: list[tuple[bytes, bytes]]) -> bool:
    """True when the request's ``Accept`` header asks for ``text/event-stream``."""
    return any(name == b"accept" and SSE in value.lower() for name, value in headers)


class ResultStream:
    """One streamed execution: runs the generator, encodes its items, sends them as they come."""

    def __init__(
        self,
        items: AsyncIterator[Any],
        *,
        execution_id: str,
        deadline: float | None,
        timeout_ms: int | None,
        sse: bool,
        debug: bool,
        tool_name: str,
        finish: Callable[[str | None], None],
        now: Callable[[], str],
    ) -> None:
        self.execution_id = execution_id
        self.content_type = SSE if sse else NDJSON
        self.count = 0
        self._items = items
        self._deadline = deadline
        self._timeout_ms = timeout_ms
        self._sse = sse
        self._debug = debug
        self._tool_name = tool_name
        self._finish = finish
        self._now = now
        self._encode = ENCODER.encode
        self._buffer: list[bytes] = []
        self._size = 0
        self._ready = asyncio.Event()  # something to send, or the end
        self._room = asyncio.Event()  # the buffer has room again
        self._done = False
        self._error: ToolError | None = None
        self._started = time.perf_counter()
        self._producer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run the generator up to its first item; raise its error if it fails before one."""
        self._producer = asyncio.create_task(self._produce())
        try:
            await self._ready.wait()
        except BaseException:
            await self._stop_producer()
            raise
        if self._done and self.count == 0 and self._error is not None:
            await self._stop_producer()
            raise self._error

    async def _produce(self) -> None:
        task: Any = asyncio.current_task()
        watcher = deadlines()
        slot = None if self._deadline is None else watcher.watch(task, self._deadline)
        line = self._line
        try:
            async for item in self._items:
                chunk = line(item)
                self._buffer.append(chunk)
                self._size += len(chunk)
                self.count += 1
                self._ready.set()
                if self._size >= _HIGH_WATER:
                    self._room.clear()
                    await self._room.wait()
        except ToolError as exc:
            self._error = exc
        except asyncio.CancelledError:
            if not watcher.expired(task):
                raise
            self._error = ExecutionTimeoutError(
                f"Execution exceeded its timeout of {self._timeout_ms} ms",
                details={"timeout_ms": self._timeout_ms},
            )
        except Exception as exc:  # error_for logs it, with its traceback
            self._error = error_for(
                exc, self._tool_name, execution_id=self.execution_id, debug=self._debug
            )
        finally:
            if slot is not None:
                watcher.release(task, slot)
            self._done = True
            self._ready.set()
            aclose = getattr(self._items, "aclose", None)
            if aclose is not None:
                await aclose()  # runs the generator's finally blocks if it stopped mid-way

    def _line(self, item: Any) -> bytes:
        try:
            data = self._encode(item)
        except (TypeError, ValueError, OverflowError) as exc:
            raise unserializable(exc, **{f"items[{self.count}]": item}) from None
        check_finite(data, **{f"items[{self.count}]": item})
        if self._sse:
            return b"event: item\ndata: " + data + b"\n\n"
        return b'{"type":"item","data":' + data + b"}\n"

    async def send(self, send: Send, receive: Receive) -> None:
        """Send every item as it comes, then the final record; stop if the client goes away."""
        watcher = asyncio.create_task(self._watch_disconnect(receive))
        code: str | None = None
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                if self._buffer:
                    chunk = b"".join(self._buffer)
                    self._buffer.clear()
                    self._size = 0
                    self._room.set()
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if watcher.done():
                    code = "CLIENT_DISCONNECTED"
                    return
                if self._done and not self._buffer:
                    break
            if self._error is not None:
                code = self._error.code
            await send({"type": "http.response.body", "body": self._final(), "more_body": False})
        except BaseException:
            code = "CLIENT_DISCONNECTED"  # the server could not write: the client is gone
            raise
        finally:
            watcher.cancel()
            await self._stop_producer()
            self._finish(code)

    async def abort(self) -> None:
        """Stop the generator without sending anything (the response could not start)."""
        await self._stop_producer()
        self._finish("CLIENT_DISCONNECTED")

    async def _watch_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._ready.set()  # wake the sender, which sees this task done and stops

    async def _stop_producer(self) -> None:
        producer = self._producer
        if producer is not None and not producer.done():
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)

    def _final(self) -> bytes:
        took_ms = round((time.perf_counter() - self._started) * 1000.0, 3)
        record: dict[str, Any]
        if self._error is None:
            record = {
                "type": "result",
                "execution_id": self.execution_id,
                "status": "success",
                "output_data": {"items": self.count},
                "execution_time_ms": took_ms,
                "timestamp": self._now(),
            }
        else:
            record = {
                "type": "error",
                **error_envelope(
                    self._error,
                    execution_id=self.execution_id,
                    took_ms=took_ms,
                    timestamp=self._now(),
                    items_sent=self.count,
                ),
            }
        body: bytes = self._encode(record)
        if self._sse:
            event = b"result" if self._error is None else b"error"
            return b"event: " + event + b"\ndata: " + body + b"\n\n"
        return body + b"\n"
