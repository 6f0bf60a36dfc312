"""What every bare ASGI yardstick shares: the ASGI plumbing and our response, nothing more.

A yardstick is the least a tool server must do around a workload: read the body, decode it with
msgspec (in the workload's ``execute``), do the work with the best client for it, and send the
same envelope and headers as ours. No routing beyond ``GET /health``, no auth, no metrics, no
error handling: an exception is uvicorn's 500, counted as a failure by the benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Literal

import msgspec

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]

_SECURITY = [
    (b"x-tool-version", b"1.0.0"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
X_CACHE_HIT = (b"x-cache", b"HIT")


class WeatherInput(msgspec.Struct, forbid_unknown_fields=True):
    """The weather tool's input, with its constraints."""

    city: Annotated[str, msgspec.Meta(max_length=100)]
    units: Literal["celsius", "fahrenheit"] = "celsius"


class WeatherEnvelope(msgspec.Struct):
    """An execute request of the weather tool."""

    input_data: WeatherInput
    config: dict[str, Any] | None = None


class CacheBlock(msgspec.Struct):
    """The ``cache`` block ours adds to a result served from its cache."""

    hit: bool
    key: str
    age_ms: float


class Success(msgspec.Struct, omit_defaults=True):
    """Our success envelope (``output_data`` may be ``msgspec.Raw``, as read from a cache)."""

    execution_id: str
    status: str
    output_data: Any
    execution_time_ms: float
    timestamp: str
    cache: CacheBlock | None = None


class Answer(msgspec.Struct):
    """What a yardstick's ``execute`` returns: the output, and the cache block of a hit."""

    output: Any
    cache: CacheBlock | None = None


Execute = Callable[[bytes], Awaitable[Answer]]

_encode = msgspec.json.Encoder().encode
_HEALTH = _encode({"status": "healthy"})


def bare_app(
    execute: Execute, *, startup: Hook | None = None, shutdown: Hook | None = None
) -> ASGIApp:
    """Return an ASGI app answering every POST with ``execute(body)`` in our envelope, and
    ``GET /health``; ``startup`` and ``shutdown`` run on the lifespan events."""
    counter = 0

    async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        nonlocal counter
        if scope["type"] != "http":
            await _lifespan(receive, send, startup, shutdown)
            return
        started = time.perf_counter()
        if scope["method"] == "GET":  # /health: the cpu workload polls it while it works
            await _send(send, _HEALTH, started, "health", [])
            return
        answer = await execute(await _body(receive))
        counter += 1
        execution_id = f"00000000-0000-0000-0000-{counter:012x}"
        payload = _encode(
            Success(
                execution_id=execution_id,
                status="success",
                output_data=answer.output,
                execution_time_ms=(time.perf_counter() - started) * 1000.0,
                timestamp=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                cache=answer.cache,
            )
        )
        extra = [X_CACHE_HIT] if answer.cache is not None else []
        await _send(send, payload, started, execution_id, extra)

    return app


async def _body(receive: Receive) -> bytes:
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def _send(
    send: Send,
    payload: bytes,
    started: float,
    request_id: str,
    extra: list[tuple[bytes, bytes]],
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"x-request-id", request_id.encode()),
        (b"x-response-time", f"{(time.perf_counter() - started) * 1000:.3f}ms".encode()),
        *_SECURITY,
        *extra,
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _lifespan(
    receive: Receive, send: Send, startup: Hook | None, shutdown: Hook | None
) -> None:
    message = await receive()
    if message["type"] == "lifespan.startup":
        if startup is not None:
            await startup()
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
    if shutdown is not None:
        await shutdown()
    await send({"type": "lifespan.shutdown.complete"})
