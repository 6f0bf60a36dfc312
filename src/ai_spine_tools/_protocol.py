"""uvicorn's HTTP protocol (httptools) with the limits a server on an open network needs.

uvicorn bounds neither the size of a request's head nor the time a client may take to send it,
and answers its concurrency limit with plain text. ``GuardedHTTPProtocol`` adds, per connection:

- **head size**: request line and headers over ``max_header_bytes`` get 431 ``HEADERS_TOO_LARGE``
  and the connection is closed. Complete headers are counted as they are parsed; bytes of a head
  still incomplete are counted as they arrive, so one endless header cannot grow the buffer;
- **read deadline**: from its first byte (or from the connection's opening), a request must be
  complete within ``read_timeout`` seconds. A client that sends its headers or its body a byte at
  a time (slowloris) gets 408 ``REQUEST_TIMEOUT`` and is disconnected; one that never sends
  anything is disconnected. Deadlines are checked by one timer per server each second, not one
  per request;
- **connections**: past uvicorn's ``limit_concurrency`` the answer is the JSON envelope 503
  ``OVERLOADED`` with ``Retry-After``, like every other error of the server.

Idle keep-alive connections close after uvicorn's ``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ai_spine_tools._headers import API_SECURITY_HEADERS
from ai_spine_tools.exceptions import (
    HeadersTooLargeError,
    OverloadedError,
    RequestTimeoutError,
    ToolError,
)

__all__ = ["DEFAULT_MAX_HEADER_BYTES", "GuardedHTTPProtocol", "error_response"]

DEFAULT_MAX_HEADER_BYTES = 16_384
_SWEEP_INTERVAL_S = 1.0
_SWEEPER = "_ai_spine_sweeper"
_SECURITY_HEADERS = b"".join(name + b": " + value + b"\r\n" for name, value in API_SECURITY_HEADERS)


class _RefusedError(Exception):
    """Raised from a parser callback to stop parsing a request that is refused."""


def _envelope(error: ToolError) -> bytes:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return msgspec.json.encode(
        {
            "execution_id": None,
            "status": "error",
            **error.to_dict(),
            "execution_time_ms": 0.0,
            "timestamp": f"{stamp}.{int(now % 1 * 1000):03d}Z",
        }
    )


def error_response(error: ToolError, *, retry_after_s: int | None = None) -> bytes:
    """Return a whole HTTP/1.1 response (closing the connection) carrying ``error``."""
    body = _envelope(error)
    head = [
        STATUS_LINE[error.status],
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
        _SECURITY_HEADERS,
    ]
    if retry_after_s is not None:
        head.append(b"retry-after: %d\r\n" % retry_after_s)
    return b"".join([*head, b"\r\n", body])


async def _overloaded(scope: Any, receive: Any, send: Any) -> None:
    """Stands in for the app past the connection limit."""
    error = OverloadedError(
        "The server holds as many connections as it accepts; retry shortly",
        retry_after_ms=1000,
    )
    body = _envelope(error)
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                (b"retry-after", b"1"),
                *API_SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GuardedHTTPProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded heads, read deadlines and a JSON 503.

    Limits come from the uvicorn ``Config``: ``h11_max_incomplete_event_size`` (the head size,
    the meaning uvicorn gives it for h11) and ``ai_spine_read_timeout`` (seconds, or ``None``).
    """

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._max_head = config.h11_max_incomplete_event_size or DEFAULT_MAX_HEADER_BYTES
        self._read_timeout: float | None = getattr(config, "ai_spine_read_timeout", None)
        self._head_size = 0  # parsed bytes of the current head (request line and headers)
        self._head_received = 0  # bytes received while the current head is incomplete
        self._in_head = False
        self._reading_since: float | None = None
        self._refusal: bytes | None = None

    # -- connection --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self._read_timeout:
            self._reading_since = time.monotonic()
            _Sweeper.ensure(self)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # refused and closing: what still arrives is dropped
        super().data_received(data)
        if self._in_head and self._refusal is None:
            self._head_received += len(data)
            if self._head_received > self._max_head:
                self._refuse_head()
                self._send_refusal()

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers any parser error with 400; a refusal of ours says what was wrong.
        if self._refusal is None:
            super().send_400_response(msg)
        else:
            self._send_refusal()

    # -- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_size = self._head_received = 0
        self._in_head = True
        if self._read_timeout and self._reading_since is None:
            self._reading_since = time.monotonic()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_since = None
        super().on_message_complete()

    def _count(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self._max_head:
            self._refuse_head()
            raise _RefusedError  # httptools stops parsing; send_400_response answers

    # -- refusals ----------------------------------------------------------------------------

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        super()._start_asgi_task(cycle, _overloaded if app is service_unavailable else app)

    def _refuse_head(self) -> None:
        self._refusal = error_response(
            HeadersTooLargeError(
                f"The request line and headers are larger than {self._max_head} bytes",
                details={"max_header_bytes": self._max_head},
            )
        )

    def _send_refusal(self) -> None:
        assert self._refusal is not None
        self._reading_since = None
        if not self.transport.is_closing():
            self.transport.write(self._refusal)
            self.transport.close()

    def check_deadline(self, now: float) -> None:
        """Cut off a request that is not in after the read timeout (the sweeper calls this)."""
        since = self._reading_since
        if since is None or self._read_timeout is None or now - since < self._read_timeout:
            return
        self._reading_since = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        started = self._in_head  # some of a request's head has arrived
        if not self._in_head and cycle is not None and not cycle.response_complete:
            if cycle.response_started:  # answered early; the rest of the body never came
                self.transport.close()
                return
            cycle.disconnected = True  # the app, waiting for the body, reads a disconnect
            cycle.message_event.set()
            started = True
        if started:
            self._refusal = error_response(
                RequestTimeoutError(
                    f"The request was not received within {self._read_timeout:g} s",
                    details={"read_timeout_s": self._read_timeout},
                )
            )
            self._send_refusal()
        else:  # a connection that never started a request
            self.transport.close()


class _Sweeper:
    """One timer per server: each second, checks the read deadline of every connection."""

    __slots__ = ("_connections", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        self._loop = loop
        self._connections = connections

    @classmethod
    def ensure(cls, protocol: GuardedHTTPProtocol) -> None:
        state = protocol.server_state
        if getattr(state, _SWEEPER, None) is None:
            sweeper = cls(protocol.loop, protocol.connections)
            setattr(state, _SWEEPER, sweeper)
            protocol.loop.call_later(_SWEEP_INTERVAL_S, sweeper.sweep)

    def sweep(self) -> None:
        now = time.monotonic()
        for connection in list(self._connections):
            if isinstance(connection, GuardedHTTPProtocol):
                connection.check_deadline(now)
        if not self._loop.is_closed():
            self._loop.call_later(_SWEEP_INTERVAL_S, self.sweep)
