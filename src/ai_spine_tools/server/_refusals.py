"""The answers a connection writes by itself, without the app: a refused request (431 head too
large, 408 sent too slowly, 400 malformed) and the 503 past the connection limit.

Each is a whole HTTP/1.1 response that closes the connection, carrying the server's JSON error
envelope (the 400 keeps uvicorn's plain text, as every ASGI server answers a request it cannot
parse) and the security headers every answer carries.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import msgspec

from ai_spine_tools.exceptions import (
    HeadersTooLargeError,
    OverloadedError,
    RequestTimeoutError,
    ToolError,
)
from ai_spine_tools.observability._timestamps import now_iso
from ai_spine_tools.security._headers import API_SECURITY_HEADERS
from ai_spine_tools.server._wire import error_envelope

__all__ = [
    "error_response",
    "head_too_large",
    "malformed",
    "overloaded",
    "request_timeout",
    "status_line",
]

_SECURITY_HEADERS = b"".join(name + b": " + value + b"\r\n" for name, value in API_SECURITY_HEADERS)
_MALFORMED = b"Invalid HTTP request received."


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <phrase>\\r\\n``."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")


def _envelope(error: ToolError) -> bytes:
    return msgspec.json.encode(
        error_envelope(error, execution_id=None, took_ms=0.0, timestamp=now_iso())
    )


def error_response(error: ToolError, *, retry_after_s: int | None = None) -> bytes:
    """Return a whole HTTP/1.1 response (closing the connection) carrying ``error``."""
    body = _envelope(error)
    head = [
        status_line(error.status),
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
        _SECURITY_HEADERS,
    ]
    if retry_after_s is not None:
        head.append(b"retry-after: %d\r\n" % retry_after_s)
    return b"".join([*head, b"\r\n", body])


def head_too_large(limit: int) -> bytes:
    """431 ``HEADERS_TOO_LARGE``: the request line and headers are over ``limit`` bytes."""
    return error_response(
        HeadersTooLargeError(
            f"The request line and headers are larger than {limit} bytes",
            details={"max_header_bytes": limit},
        )
    )


def request_timeout(timeout_s: float) -> bytes:
    """408 ``REQUEST_TIMEOUT``: the request was not in within ``timeout_s`` seconds."""
    return error_response(
        RequestTimeoutError(
            f"The request was not received within {timeout_s:g} s",
            details={"read_timeout_s": timeout_s},
        )
    )


def malformed(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """400, as uvicorn answers a request its parser rejects (smuggling attempts included)."""
    content = [status_line(400)]
    for name, value in default_headers:
        content += (name, b": ", value, b"\r\n")
    content += (
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(_MALFORMED),
        b"connection: close\r\n",
        _SECURITY_HEADERS,
        b"\r\n",
        _MALFORMED,
    )
    return b"".join(content)


async def overloaded(scope: Any, receive: Any, send: Any) -> None:
    """Stands in for the app on a connection opened past the connection limit: 503 ``OVERLOADED``
    with ``Retry-After``, in the JSON envelope of every other error."""
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
