"""The yardstick: a bare ASGI app doing the least a tool server must do.

It decodes the same execute request into a msgspec Struct (with the same constraints), runs the
same weather function, and sends the same response (envelope and the headers the HTTP contract
requires): no routing, no auth, no metrics, no config, no error handling.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Literal

import msgspec

from weather import get_weather

Message = MutableMapping[str, Any]


class Input(msgspec.Struct, forbid_unknown_fields=True):
    city: Annotated[str, msgspec.Meta(max_length=100)]
    units: Literal["celsius", "fahrenheit"] = "celsius"


class Envelope(msgspec.Struct):
    input_data: Input
    config: dict[str, Any] | None = None


class Success(msgspec.Struct):
    execution_id: str
    status: str
    output_data: dict[str, Any]
    execution_time_ms: float
    timestamp: str


decoder = msgspec.json.Decoder(Envelope)
encoder = msgspec.json.Encoder()
counter = 0


async def app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """Answer every HTTP request as a successful weather execution."""
    global counter
    if scope["type"] != "http":
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    started = time.perf_counter()
    envelope = decoder.decode(body)
    data = {"city": envelope.input_data.city, "units": envelope.input_data.units}
    output = await get_weather(data, {}, None)  # type: ignore[arg-type]
    counter += 1
    execution_id = f"00000000-0000-0000-0000-{counter:012x}"
    payload = encoder.encode(
        Success(
            execution_id=execution_id,
            status="success",
            output_data=output,
            execution_time_ms=(time.perf_counter() - started) * 1000.0,
            timestamp=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        )
    )
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"x-request-id", execution_id.encode()),
                (b"x-response-time", f"{(time.perf_counter() - started) * 1000:.3f}ms".encode()),
                (b"x-tool-version", b"1.0.0"),
                (b"x-content-type-options", b"nosniff"),
                (b"x-frame-options", b"DENY"),
                (b"referrer-policy", b"no-referrer"),
                (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
