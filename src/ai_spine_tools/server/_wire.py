"""What crosses the wire: the ASGI types, one request read from its scope, one response,
and the envelopes of the HTTP contract."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from ai_spine_tools.exceptions import PayloadTooLargeError, ToolError
from ai_spine_tools.observability._timestamps import now_iso

if TYPE_CHECKING:
    from ai_spine_tools.server._streaming import ResultStream

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON = b"application/json"
_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_X_CACHE_HIT = (b"x-cache", b"HIT")
_X_CACHE_MISS = (b"x-cache", b"MISS")


class _Envelope(msgspec.Struct):
    """The execute request; unknown top-level keys are ignored."""

    input_data: msgspec.Raw = msgspec.Raw(b"{}")
    config: dict[str, Any] | None = None
    execution_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    metadata: dict[str, Any] | None = None


class _Success(msgspec.Struct, omit_defaults=True):
    execution_id: str
    status: str
    output_data: dict[str, Any]
    execution_time_ms: float
    timestamp: str
    metadata: dict[str, Any] | None = None


class _CacheBlock(msgspec.Struct):
    hit: bool
    key: str
    age_ms: float


class _CachedSuccess(msgspec.Struct, omit_defaults=True):
    """The success envelope of a tool with result caching: ``_Success`` plus a ``cache`` block."""

    execution_id: str
    status: str
    output_data: Any  # msgspec.Raw when the output was encoded once, as it was cached
    execution_time_ms: float
    timestamp: str
    metadata: dict[str, Any] | None = None
    cache: _CacheBlock | None = None


def error_envelope(
    error: ToolError,
    *,
    execution_id: str | None,
    took_ms: float,
    timestamp: str,
    **extra: Any,
) -> dict[str, Any]:
    """The HTTP contract's error envelope of ``error`` (``extra`` fields after the error's own);
    every error answer, from the app, the connection or a stream, is written from it."""
    return {
        "execution_id": execution_id,
        "status": "error",
        **error.to_dict(),
        **extra,
        "execution_time_ms": took_ms,
        "timestamp": timestamp,
    }


class _DisconnectedError(Exception):
    """The client went away before sending its whole body."""


@dataclass(slots=True)
class Response:
    """A response to send: status, JSON (or other) body, extra headers."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]
    content_type: bytes = _JSON
    stream: ResultStream | None = None  # a streaming tool's records, sent after the headers


class Request:
    """What the handlers need from one HTTP request, read from its scope once."""

    __slots__ = (
        "api_key",
        "authorization",
        "cache_directives",
        "content_length",
        "content_type",
        "extra_headers",
        "receive",
        "request_id",
        "scope",
        "started",
        "user_agent",
        "whole_body",
    )

    def __init__(self, scope: Scope, receive: Receive, body: bytes | None = None) -> None:
        self.scope = scope
        self.receive = receive
        self.whole_body = body
        """The body, when it is in before the request is handled (the connection's own way in):
        ``body()`` returns it without a ``receive``."""
        self.started = time.perf_counter()
        self.content_type: bytes | None = None
        self.content_length: int | None = None
        self.api_key: bytes | None = None
        self.authorization: bytes | None = None
        self.user_agent: bytes | None = None
        self.cache_directives = False  # Cache-Control or Pragma sent: no shortcut to a cache hit
        request_id: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                self.content_type = value
            elif name == b"content-length":
                self.content_length = int(value) if value.isdigit() else None
            elif name == b"x-request-id":
                request_id = value
            elif name == b"x-api-key":
                self.api_key = value
            elif name == b"authorization":
                self.authorization = value
            elif name == b"user-agent":
                self.user_agent = value
            elif name == b"cache-control" or name == b"pragma":
                self.cache_directives = True
        if request_id is not None and not _SANE_REQUEST_ID.match(request_id):
            request_id = None
        self.request_id = request_id  # filled in when answering, if the client sent none
        self.extra_headers: list[tuple[bytes, bytes]] = []

    @property
    def client_ip(self) -> str:
        """The peer address (or ``unknown``)."""
        client = self.scope.get("client")
        return str(client[0]) if client else "unknown"

    async def body(self, limit: int) -> bytes:
        """Read the whole body, refusing with 413 as soon as it passes ``limit`` bytes."""
        if self.content_length is not None and self.content_length > limit:
            raise _too_large(limit)
        whole = self.whole_body
        if whole is not None:
            if len(whole) > limit:
                raise _too_large(limit)
            return whole
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise _DisconnectedError
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


Handler = Callable[[Request], Awaitable[Response]]


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"Request body is larger than {limit} bytes", details={"max_body_bytes": limit}
    )


async def _no_more() -> Message:
    """``receive`` of a request whose whole body came with it: nothing more comes (its caller is
    cancelled when done)."""
    await asyncio.Event().wait()
    return {"type": "http.disconnect"}


def _replay(body: bytes, *, then: Receive | None = None) -> Receive:
    """Return a ``receive`` that gives ``body`` once, then what ``then`` gives (else nothing)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if then is not None:
            return await then()
        await asyncio.Event().wait()  # no more messages: the caller is cancelled when done
        return {"type": "http.disconnect"}

    return receive


def _normalise(path: str) -> str:
    collapsed = re.sub(r"/{2,}", "/", path)
    return collapsed.rstrip("/") or "/"


def _clip(text: str, limit: int = 80) -> str:
    text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


_now_iso = now_iso  # the timestamp of every answer (one format: _timestamps)
