"""uvicorn's HTTP protocol (httptools) with the limits a server on an open network needs, and
the execute route served without ASGI.

uvicorn bounds neither the size of a request's head, nor the time a client may take to send it,
nor how far a client may pipeline ahead of its answers, and it answers its concurrency limit with
plain text. ``GuardedHTTPProtocol`` adds, per connection:

- **head size**: a request line and headers over ``max_header_bytes`` get 431
  ``HEADERS_TOO_LARGE``. Each head is measured on its own, whatever the reads carry (earlier
  pipelined requests and their bodies are not counted with it); a head still incomplete is
  counted as its bytes arrive, so one endless header cannot grow the buffer;
- **read deadline**: from its first byte (or from the connection's opening), a request must be
  in within ``read_timeout`` seconds of reading. A client sending its head or its body a byte at
  a time (slowloris) gets 408 ``REQUEST_TIMEOUT``; one that never sends anything is closed. The
  clock stops while the server itself does not read (a pipelined request waits its turn). One
  timer per server checks every connection each second;
- **pipelining**: the requests parsed ahead of their answers are bounded (``MAX_PIPELINED``, and
  input is parsed in slices of ``SLICE_BYTES``); past the bound, and while the client does not
  read its answers, the connection stops reading, so TCP holds the client back and a client that
  never reads costs a bounded amount of memory;
- **order**: a refusal (431, 408, or uvicorn's 400 for a malformed request) is written only after
  the answers to every earlier request, then the connection closes;
- **connections**: a connection opened past uvicorn's ``limit_concurrency`` is answered with the
  JSON envelope 503 ``OVERLOADED`` and ``Retry-After``; connections admitted within the limit are
  served throughout.

**The execute route, served directly.** A ``POST /api/execute`` whose body has a known, modest
length is held, without an ASGI task, until the body is in. A repeated cache hit is then answered
on the spot (``ToolApp.answer_from_cache``); anything else runs ``ToolApp.respond`` in a task of
its own that writes the response itself (see ``_direct_route`` for which requests qualify).
Written by hand because measurement says so: in ``bench/server.py`` the same app through
uvicorn's ASGI path ran at 0.66 of the bare ASGI baseline's requests per second and its cache
hits at 0.82; served here, 0.93-0.97 and 1.1-1.4.

Answers go out at the end of the event loop's turn (``Flow.send_soon``).

Every uvicorn name used here is checked at start-up by ``_uvicorn_hooks``, which serves through
uvicorn's own protocol, with a warning, when one is missing or changed.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from typing import Any

import httptools
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ai_spine_tools.exceptions import ExecutionError
from ai_spine_tools.server import _refusals as refusals
from ai_spine_tools.server._app import ToolApp
from ai_spine_tools.server._direct_route import DirectRoute
from ai_spine_tools.server._flow import Flow, Sweeper

__all__ = [
    "DEFAULT_MAX_HEADER_BYTES",
    "MAX_PIPELINED",
    "SLICE_BYTES",
    "GuardedHTTPProtocol",
    "error_response",
]

logger = logging.getLogger("ai_spine_tools.server")

error_response = refusals.error_response
DEFAULT_MAX_HEADER_BYTES = 16_384
MAX_PIPELINED = 16
"""Requests parsed and waiting behind the one being answered before the connection stops
reading (uvicorn alone parses all a read holds and reads on after every answer)."""
SLICE_BYTES = 4096
"""Input is parsed this much at a time when a read is larger, so a read full of tiny pipelined
requests cannot queue more than a slice's worth (one ordinary request is one slice)."""


class _RefusedError(Exception):
    """Raised from a parser callback to stop parsing a request that is refused."""


class GuardedHTTPProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded heads, pipelining and unread output, read
    deadlines, ordered refusals, a JSON 503, and the execute route served directly.

    Limits come from the uvicorn ``Config``: ``h11_max_incomplete_event_size`` (the head size,
    the meaning uvicorn gives it for h11) and ``ai_spine_read_timeout`` (seconds, or ``None``).
    """

    flow: Flow  # type: ignore[assignment]  # uvicorn's interface, the protocol deciding reads

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._max_head: int = config.h11_max_incomplete_event_size or DEFAULT_MAX_HEADER_BYTES
        self._read_timeout: float | None = getattr(config, "ai_spine_read_timeout", None)
        self._fresh_context = bool(getattr(config, "reset_contextvars", False))
        # Head accounting, per parser feed (see _feed).
        self._in_head = False
        self._head_carried = 0  # bytes of the head being read that came in earlier feeds
        self._head_start = 0  # where it begins in the current feed
        self._head_unsized = False  # an earlier head of this feed is not in _pos yet
        self._pos = 0  # bytes of the current feed accounted to the requests before it
        self._feed_size = 0
        self._chunk_from = 0
        self._reading_since: float | None = None
        self._paused_at: float | None = None
        self._refusal: bytes | None = None  # written once earlier answers are out, then close
        self._stash: memoryview | None = None  # input not yet parsed while reading is paused
        self._stash_scheduled = False
        self._active: Any = None  # the request cycle being answered
        # An access log (ai-spine serve asks for one at log level debug) is written on the ASGI
        # path, and a root path is for apps mounted under a prefix.
        direct = not (config.access_log or self.root_path)
        self._direct = DirectRoute.find(self.app) if direct else None
        self._may_hold = False  # the request whose head just ended may be held
        self._held: Any = None  # the request cycle held until its body is in
        self._held_by: ToolApp | None = None  # the app that answers it

    # -- connection --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = Flow(transport, self, self.loop)
        limit = self.limit_concurrency
        if limit is not None and len(self.connections) <= limit:
            # Admitted within the limit: served for its whole life. uvicorn would refuse every
            # request, on every connection, while the count is at the limit; only connections
            # opened past it are refused (executions have their own limit and queue).
            self.limit_concurrency = None
        if self._read_timeout:
            self._reading_since = time.monotonic()
            Sweeper.ensure(self.server_state, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        self._held = self._stash = None
        self.flow.drop_unsent()
        active = self._active
        if active is not None and not active.response_complete:
            # uvicorn tells only the last request parsed; the one being answered may be another.
            active.disconnected = True
            active.message_event.set()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # refused: what still arrives is dropped
        if self._stash is not None:  # not expected while paused, but never out of order
            self._stash = memoryview(bytes(self._stash) + data)
            return
        self._unset_keepalive_if_required()
        if len(data) <= SLICE_BYTES:
            self._feed(data)
        else:
            self._feed_slices(memoryview(data))

    def _feed_slices(self, data: memoryview) -> None:
        """Parse ``data`` a slice at a time, keeping the rest once reading is paused."""
        start, end = 0, len(data)
        while start < end:
            if self.flow.read_paused:
                self._stash = data[start:]
                return
            if not self._feed(data[start : start + SLICE_BYTES]):
                return
            start += SLICE_BYTES

    def _feed(self, data: bytes | memoryview) -> bool:
        """Parse ``data``; False once parsing has stopped (refused, malformed, upgraded)."""
        self._pos = self._head_start = 0
        self._head_unsized = False
        self._feed_size = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        except httptools.HttpParserError:
            if self._refusal is None:  # not a refusal of ours: a request the parser rejects
                self.logger.warning("Invalid HTTP request received.")
                cycle = self.cycle  # the request being read, if its head is in
                refused = cycle if not self._in_head and cycle and cycle.more_body else None
                self._refuse(refusals.malformed(self.server_state.default_headers), refused)
            return False
        if self._in_head:
            # The head being read began at _head_start: all that follows it is its own.
            self._head_carried += self._feed_size - self._head_start
            if self._head_carried > self._max_head:
                self._refuse(refusals.head_too_large(self._max_head), None)
                return False
        return True

    # -- reading, paused and resumed (Flow calls these) --------------------------------------

    def reading_paused(self) -> None:
        """Stop the read deadline's clock: the server, not the client, is holding things up."""
        if self._read_timeout:
            self._paused_at = time.monotonic()

    def may_read(self) -> bool:
        """Whether reading may go on: nothing refused, not too many requests waiting for their
        answers, and the client reading its answers (unless the request being answered still
        needs its body: its app may write before it reads)."""
        if self._refusal is not None or len(self.pipeline) >= MAX_PIPELINED:
            return False
        if self.flow.write_paused:
            active = self._active
            return active is not None and active.more_body and not active.response_complete
        return True

    def resume(self) -> None:
        """Read on (uvicorn asked to, and ``may_read``): from the stash first, if any."""
        flow = self.flow
        if self._paused_at is not None:
            if self._reading_since is not None:
                self._reading_since += time.monotonic() - self._paused_at
            self._paused_at = None
        if self._stash is None:
            flow.start_reading()
        elif not self._stash_scheduled:
            # Not from here: this may run inside a parser callback (an answer written on the
            # spot); the parser is fed again once that callback has returned.
            self._stash_scheduled = True
            self.loop.call_soon(self._parse_stash)

    def _parse_stash(self) -> None:
        self._stash_scheduled = False
        stash, flow = self._stash, self.flow
        if stash is None or self.transport.is_closing() or not flow.wanted or not self.may_read():
            return
        self._stash = None
        flow.read_paused = False  # parse on; the transport stays paused until the stash is in
        self._feed_slices(stash)
        if self._stash is None and not flow.read_paused and self._refusal is None:
            flow.start_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.flow.read_paused and self.flow.wanted and self.may_read():
            self.resume()

    # -- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._head_unsized:  # an earlier request of this feed: where this one begins
            self._pos += (
                _head_size(self.parser.get_method(), self.url, self.headers) - self._head_carried
            )
        # A request answered on the spot arms the keep-alive timer while the parser may still
        # hold the next one, pipelined behind it.
        if self.timeout_keep_alive_task is not None:
            self._unset_keepalive_if_required()
        super().on_message_begin()
        self._in_head = True
        self._head_unsized = False
        self._head_start = self._pos
        self._head_carried = 0
        if self._read_timeout and self._reading_since is None:
            self._reading_since = time.monotonic()

    def on_headers_complete(self) -> None:
        self._in_head = False
        # Cheap bound first (all of the feed from the head on); the exact size only past it.
        bound = self._head_carried + self._feed_size - self._head_start
        if (
            bound > self._max_head
            and _head_size(self.parser.get_method(), self.url, self.headers) > self._max_head
        ):
            self._refuse(refusals.head_too_large(self._max_head), None)
            raise _RefusedError  # httptools stops parsing
        self._head_unsized = True
        direct = self._direct
        self._may_hold = (
            direct is not None
            and (target := direct.apps.get(self.url)) is not None
            and not self.expect_100_continue
            and self.parser.get_method() == b"POST"
            and direct.admits(self.headers, HIGH_WATER_LIMIT)
        )
        if self._may_hold:
            self._held_by = target
        super().on_headers_complete()
        self._may_hold = False

    def on_body(self, body: bytes) -> None:
        self._pos += len(body)
        super().on_body(body)

    def on_chunk_header(self) -> None:
        self._chunk_from = self._pos

    def on_chunk_complete(self) -> None:
        # The framing around a chunk: its size in hex, two line ends (extensions not counted).
        self._pos += len(b"%x" % (self._pos - self._chunk_from)) + 4

    def on_message_complete(self) -> None:
        self._reading_since = None
        cycle = self._held
        if cycle is None:
            super().on_message_complete()
            return
        self._held = None
        app = self._held_by
        assert app is not None
        body = bytes(cycle.body)
        answer = None
        if not self.flow.write_paused:
            try:
                if self._fresh_context:  # uvicorn's reset_contextvars, as for its own tasks
                    answer = contextvars.Context().run(app.answer_from_cache, cycle.scope, body)
                else:
                    answer = app.answer_from_cache(cycle.scope, body)
            except Exception:  # a bug must not read as the client's malformed HTTP
                logger.exception("answering a cache hit failed; the request takes the long way")
        if answer is not None:
            self._write(cycle, 200, *answer)
            return
        context = contextvars.Context() if self._fresh_context else None
        task = self.loop.create_task(self._respond(app, cycle, body), context=context)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal is not None and not _pending(self._active, self.pipeline, None):
            self._send_refusal()

    # -- the execute route -------------------------------------------------------------------

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        self._active = cycle
        if self._may_hold and app is self.app and cycle is self.cycle:
            self._held = cycle  # until its body is in (on_message_complete)
            return
        super()._start_asgi_task(cycle, refusals.overloaded if app is service_unavailable else app)

    async def _respond(self, app: ToolApp, cycle: Any, body: bytes) -> None:
        """Serve a held request in its own task, and write the response once the client has
        read the earlier ones (if it is behind)."""
        try:
            status, headers, payload = await app.respond(cycle.scope, body)
            if self.flow.write_paused and not cycle.disconnected:
                await self.flow.drain()
            self._write(cycle, status, headers, payload)
        except Exception:  # respond answers every error of the tool's; this is a bug of ours
            logger.exception("serving POST /api/execute failed")
            if not cycle.response_started:
                self.flow.write(error_response(ExecutionError("Internal server error")))
            self.flow.close()
        except BaseException:
            self.flow.close()  # cancelled: a shutdown past its grace period
            raise

    def _write(
        self, cycle: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """Write a response given without ASGI, as uvicorn's ``send`` would, then let the
        connection go on (to a pipelined request, or to the keep-alive timer)."""
        if cycle.disconnected or self.transport.is_closing():
            return  # the client left (or was refused): the answer goes nowhere
        direct = self._direct
        if direct is not None and direct.varies:
            headers = direct.finish(headers, body)
        response = _response(status, self.server_state.default_headers, headers, body, cycle)
        cycle.response_started = cycle.response_complete = True
        if cycle.keep_alive:
            self.flow.send_soon(response)
        else:
            self.flow.write(response)
            self.flow.close()
        self.on_response_complete()

    def shutdown(self) -> None:
        self.flow.send_unsent()  # uvicorn closes an idle connection: its last answer goes first
        super().shutdown()

    # -- refusals ----------------------------------------------------------------------------

    def _refuse(self, response: bytes, refused: Any) -> None:
        """Answer the request being read with ``response`` once every earlier request has its
        answer, then close; read nothing more. ``refused`` is its cycle, if its head is in."""
        self._refusal = response
        self._stash = None
        self._reading_since = None
        self.flow.pause_reading()
        if refused is not None:
            if refused is self._active:
                self._held = None
                if refused.response_started:  # answered early; the rest never came
                    self.flow.close()
                    return
            else:  # queued behind earlier requests: it never starts
                for entry in self.pipeline:
                    if entry[0] is refused:
                        self.pipeline.remove(entry)
                        break
            refused.disconnected = True  # its app (if running) reads a disconnect
            refused.message_event.set()
        if not _pending(self._active, self.pipeline, refused):
            self._send_refusal()

    def _send_refusal(self) -> None:
        assert self._refusal is not None
        if not self.transport.is_closing():
            self.flow.write(self._refusal)
            self.flow.close()

    def check_deadline(self, now: float) -> None:
        """Cut off a request that is not in after the read timeout (the sweeper calls this)."""
        since = self._reading_since
        if (
            since is None
            or self._read_timeout is None
            or self.flow.read_paused
            or now - since < self._read_timeout
        ):
            return
        self._reading_since = None
        if self.transport.is_closing() or self._refusal is not None:
            return
        cycle = self.cycle
        if self._in_head:
            refused = None  # some of a head is in
        elif cycle is not None and cycle.more_body:
            refused = cycle  # its head is in, not all of its body
        else:  # a connection that never started a request
            self.flow.close()
            return
        self._refuse(refusals.request_timeout(self._read_timeout), refused)


_OK = refusals.status_line(200)


def _response(
    status: int,
    default_headers: list[tuple[bytes, bytes]],
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    cycle: Any,
) -> bytes:
    """A whole HTTP/1.1 response, as uvicorn's ``send`` would frame it."""
    content = [refusals.status_line(status) if status != 200 else _OK]
    for name, value in default_headers:
        content += (name, b": ", value, b"\r\n")
    for name, value in headers:
        content += (name, b": ", value, b"\r\n")
    if not cycle.keep_alive:
        content.append(b"connection: close\r\n")
    content += (b"\r\n", body)
    return b"".join(content)


def _head_size(method: bytes, url: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """A head as framed by a plain client: ``METHOD URL HTTP/1.1``, each ``name: value``, CRLF
    after each line and one more at the end."""
    size = len(method) + len(url) + 14
    for name, value in headers:
        size += len(name) + len(value) + 4
    return size


def _pending(active: Any, queued: Any, refused: Any) -> bool:
    """Whether a request before ``refused`` (a cycle, or None for one whose head is not in)
    still waits for its answer: the ``active`` one, or one ``queued`` (pipelined) behind it."""
    if active is not None and active is not refused and not active.response_complete:
        return True
    return any(cycle is not refused for cycle, _ in queued)
