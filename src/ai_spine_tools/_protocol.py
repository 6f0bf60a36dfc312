"""uvicorn's HTTP protocol (httptools) with the limits a server on an open network needs, and
the execute route served without ASGI.

uvicorn bounds neither the size of a request's head nor the time a client may take to send it,
and answers its concurrency limit with plain text. ``GuardedHTTPProtocol`` adds, per connection:

- **head size**: request line and headers over ``max_header_bytes`` get 431 ``HEADERS_TOO_LARGE``
  and the connection is closed. Bytes of a head still incomplete are counted as they arrive, so
  one endless header cannot grow the buffer; a head that ends within a read larger than the limit
  is measured header by header once parsed, before anything runs;
- **read deadline**: from its first byte (or from the connection's opening), a request must be
  complete within ``read_timeout`` seconds. A client that sends its headers or its body a byte at
  a time (slowloris) gets 408 ``REQUEST_TIMEOUT`` and is disconnected; one that never sends
  anything is disconnected. Deadlines are checked by one timer per server each second, not one
  per request;
- **connections**: a connection opened past uvicorn's ``limit_concurrency`` is answered with the
  JSON envelope 503 ``OVERLOADED`` and ``Retry-After``, like every other error of the server,
  while the count stays past it; connections admitted within the limit are served throughout.

Idle keep-alive connections close after uvicorn's ``timeout_keep_alive``.

**The execute route, served directly.** A ``POST /api/execute`` whose body has a known, modest
length is held, without an ASGI task, until the body is in. A repeated cache hit is then answered
on the spot (``ToolApp.answer_from_cache``); anything else runs ``ToolApp.respond`` in a task of
its own that writes the response itself. Both skip what ASGI costs a request (message dicts,
uvicorn's header checks, receive and send round trips). Written by hand because measurement says
so: in ``bench/server.py`` the same app through uvicorn's ASGI path ran at 0.66 of the bare ASGI
baseline's requests per second and its cache hits at 0.82; served here, 0.94-0.97 and 1.3-1.4
in two runs. The app stays a plain ASGI app (``ToolApp``), served as such by any ASGI server;
requests that a wrapper of it acts on (compression, CORS, proxy headers), a streaming tool's,
pipelined ones and every other route take the ASGI path here too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, service_unavailable
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ai_spine_tools._app import ToolApp
from ai_spine_tools._headers import API_SECURITY_HEADERS
from ai_spine_tools.exceptions import (
    ExecutionError,
    HeadersTooLargeError,
    OverloadedError,
    RequestTimeoutError,
    ToolError,
)

__all__ = ["DEFAULT_MAX_HEADER_BYTES", "GuardedHTTPProtocol", "error_response"]

logger = logging.getLogger("ai_spine_tools.server")

DEFAULT_MAX_HEADER_BYTES = 16_384
_SWEEP_INTERVAL_S = 1.0
_SWEEPER = "_ai_spine_sweeper"
_SECURITY_HEADERS = b"".join(name + b": " + value + b"\r\n" for name, value in API_SECURITY_HEADERS)
_EXECUTE = b"/api/execute"


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
    """uvicorn's httptools protocol with bounded heads, read deadlines, a JSON 503, and the
    execute route served directly.

    Limits come from the uvicorn ``Config``: ``h11_max_incomplete_event_size`` (the head size,
    the meaning uvicorn gives it for h11) and ``ai_spine_read_timeout`` (seconds, or ``None``).
    """

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._max_head = config.h11_max_incomplete_event_size or DEFAULT_MAX_HEADER_BYTES
        self._read_timeout: float | None = getattr(config, "ai_spine_read_timeout", None)
        self._head_received = 0  # bytes received in earlier reads while the head is incomplete
        self._head_bound = 0  # the most bytes a head ending in the current read can have
        self._in_head = False
        self._reading_since: float | None = None
        self._refusal: bytes | None = None
        # An access log (ai-spine serve asks for one at log level debug) is written on the ASGI
        # path, and a root path is for apps mounted under a prefix.
        direct = not (config.access_log or self.root_path)
        self._direct = _DirectRoute.find(self.app) if direct else None
        self._may_hold = False  # the request whose head just ended may be held
        self._held: Any = None  # the request cycle held until its body is in

    # -- connection --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.limit_concurrency
        if limit is not None and len(self.connections) <= limit:
            # Admitted within the limit: served for its whole life. uvicorn would refuse every
            # request, on every connection, while the count is at the limit; only connections
            # opened past it are refused (executions have their own limit and queue).
            self.limit_concurrency = None
        if self._read_timeout:
            self._reading_since = time.monotonic()
            _Sweeper.ensure(self)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # refused and closing: what still arrives is dropped
        self._head_bound = self._head_received + len(data)
        super().data_received(data)
        if self._in_head and self._refusal is None:
            self._head_received += len(data)
            if self._head_received > self._max_head:
                self._refuse_head()
                self._send_refusal()

    def connection_lost(self, exc: Exception | None) -> None:
        self._held = None
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers any parser error with 400; a refusal of ours says what was wrong.
        if self._refusal is None:
            super().send_400_response(msg)
        else:
            self._send_refusal()

    # -- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        # A request answered on the spot arms the keep-alive timer while the parser may still
        # hold the next one, pipelined behind it.
        self._unset_keepalive_if_required()
        super().on_message_begin()
        self._head_received = 0
        self._in_head = True
        if self._read_timeout and self._reading_since is None:
            self._reading_since = time.monotonic()

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_bound > self._max_head and self._head_size() > self._max_head:
            self._refuse_head()
            raise _RefusedError  # httptools stops parsing; send_400_response answers
        direct = self._direct
        self._may_hold = (
            direct is not None
            and self.url == _EXECUTE
            and not self.expect_100_continue
            and self.parser.get_method() == b"POST"
            and direct.admits(self.headers)
        )
        super().on_headers_complete()
        self._may_hold = False

    def on_message_complete(self) -> None:
        self._reading_since = None
        cycle = self._held
        if cycle is None:
            super().on_message_complete()
            return
        self._held = None
        assert self._direct is not None
        app = self._direct.app
        body = bytes(cycle.body)
        answer = None
        if not self.flow.write_paused:
            try:
                answer = app.answer_from_cache(cycle.scope, body)
            except Exception:  # a bug must not read as the client's malformed HTTP
                logger.exception("answering a cache hit failed; the request takes the long way")
        if answer is not None:
            self._write(cycle, 200, *answer)
            return
        task = self.loop.create_task(self._respond(app, cycle, body))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    # -- the execute route -------------------------------------------------------------------

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if self._may_hold and app is self.app and cycle is self.cycle:
            self._held = cycle  # until its body is in (on_message_complete)
            return
        super()._start_asgi_task(cycle, _overloaded if app is service_unavailable else app)

    async def _respond(self, app: ToolApp, cycle: Any, body: bytes) -> None:
        """Serve a held request in its own task, and write the response once the client has
        read the earlier ones (if it is behind)."""
        try:
            status, headers, payload = await app.respond(cycle.scope, body)
            if self.flow.write_paused and not cycle.disconnected:
                await self.flow.drain()
        except Exception:  # respond answers every error of the tool's; this is a bug of ours
            logger.exception("serving POST /api/execute failed")
            if not self.transport.is_closing():
                self.transport.write(error_response(ExecutionError("Internal server error")))
                self.transport.close()
            return
        except BaseException:
            self.transport.close()  # cancelled: a shutdown past its grace period
            raise
        self._write(cycle, status, headers, payload)

    def _write(
        self, cycle: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """Write a response given without ASGI, as uvicorn's ``send`` would, then let the
        connection go on (to a pipelined request, or to the keep-alive timer)."""
        if cycle.disconnected:
            return
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += (name, b": ", value, b"\r\n")
        for name, value in headers:
            content += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", body)
        self.transport.write(b"".join(content))
        cycle.response_started = cycle.response_complete = True
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()

    # -- refusals ----------------------------------------------------------------------------

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


class _DirectRoute:
    """The ``ToolApp`` under the app uvicorn serves, and the request headers that make a wrapper
    between them act on a request (compression, CORS, proxy headers): requests sending any of
    them are left to the ASGI path."""

    __slots__ = ("app", "declining")

    def __init__(self, app: ToolApp, declining: frozenset[bytes]) -> None:
        self.app = app
        self.declining = declining

    @classmethod
    def find(cls, app: Any) -> _DirectRoute | None:
        """Look for the ``ToolApp`` through the wrappers it may be served in (all known ones)."""
        declining: set[bytes] = set()
        while not isinstance(app, ToolApp):
            if isinstance(app, ProxyHeadersMiddleware):
                declining |= {b"x-forwarded-for", b"x-forwarded-proto"}
            elif isinstance(app, GZipMiddleware):
                declining.add(b"accept-encoding")
            elif isinstance(app, CORSMiddleware):
                declining.add(b"origin")
            else:
                return None
            app = app.app
        return cls(app, frozenset(declining)) if app.serves_directly else None

    def admits(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """True when a request with ``headers`` may be held until its body is in: a length
        declared and no larger than what uvicorn buffers before it stops reading, and no
        header a wrapper acts on."""
        small = False
        for name, value in headers:
            if name == b"content-length":
                small = value.isdigit() and int(value) <= HIGH_WATER_LIMIT
            elif name == b"transfer-encoding" or name in self.declining:
                return False
        return small


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
