"""A minimal HTTP/1.1 keep-alive client: the load generator's side of a load test over HTTP.

Hand-written because measurement made httpx the bottleneck: against the weather tool on uvicorn,
on one 2-core machine, 20 users sent about 500 requests/s through ``httpx.AsyncClient`` and about
23,000 through this client. A load generator slower than the server measures itself.

It speaks only what that job needs: one request at a time on each pooled connection, bodies
framed by Content-Length or chunked encoding (or by the connection closing), ``Connection:
close``, and one retry on a fresh connection when the server had closed an idle kept-alive one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["HTTP1Pool", "HTTPConnectionError", "HTTPTimeoutError"]

_HEAD_LIMIT = 1 << 16
_SKIPPED = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class HTTPConnectionError(Exception):
    """The connection failed before a whole response arrived."""


class HTTPTimeoutError(HTTPConnectionError):
    """No whole response arrived within the timeout."""


class _DroppedError(Exception):
    """The server closed the connection before answering a single byte."""


class _Connection:
    __slots__ = ("reader", "used", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.used = reader, writer, 0


class HTTP1Pool:
    """Keep-alive connections to one server; ``await pool.request("POST", "/path", body)``."""

    def __init__(
        self, base_url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 30.0
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL (got {base_url!r})")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        lines = [f"Host: {parts.netloc.rpartition('@')[2]}"]
        for name, value in (headers or {}).items():
            if any(ch in f"{name}{value}" for ch in "\r\n\0") or ":" in name or not name.strip():
                raise ValueError(f"invalid header {name!r}")
            if name.lower() not in _SKIPPED:
                lines.append(f"{name}: {value}")
        self._head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._idle: list[_Connection] = []

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """Send one request; return the status and the whole body.

        Raises ``HTTPConnectionError`` (or ``HTTPTimeoutError``) when no whole response arrives.
        """
        message = b"".join(
            (
                f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1"),
                self._head,
                b"Content-Length: %d\r\n\r\n" % len(body),
                body,
            )
        )
        try:
            async with asyncio.timeout(self.timeout):
                return await self._request(message)
        except TimeoutError:
            raise HTTPTimeoutError(f"no response within {self.timeout} s") from None

    async def _request(self, message: bytes) -> tuple[int, bytes]:
        for attempt in range(2):
            connection = self._idle.pop() if self._idle else await self._open()
            keep = False
            try:
                status, content, keep = await _exchange(connection, message)
            except _DroppedError:
                if connection.used and attempt == 0:
                    continue  # a kept-alive connection the server had already closed
                raise HTTPConnectionError("the server closed the connection") from None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                raise HTTPConnectionError(f"{type(exc).__name__}: {exc}") from None
            except ValueError as exc:
                raise HTTPConnectionError(f"malformed response: {exc}") from None
            finally:  # on any way out, cancellation included, the connection is kept or closed
                if keep:
                    connection.used += 1
                    self._idle.append(connection)
                else:
                    connection.writer.close()
            return status, content
        raise HTTPConnectionError("the server closed the connection")  # pragma: no cover

    async def _open(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.ssl, limit=_HEAD_LIMIT
            )
        except OSError as exc:
            raise HTTPConnectionError(
                f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        return _Connection(reader, writer)

    async def aclose(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.writer.close()
        for connection in idle:
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()


async def _exchange(connection: _Connection, message: bytes) -> tuple[int, bytes, bool]:
    reader, writer = connection.reader, connection.writer
    try:
        writer.write(message)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        raise _DroppedError from None
    except (ConnectionResetError, BrokenPipeError):
        raise _DroppedError from None
    status_line, _, fields = head[:-4].partition(b"\r\n")
    version, _, rest = status_line.partition(b" ")
    if not version.startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {status_line[:40]!r}")
    status = int(rest[:3])
    length: int | None = None
    chunked = False
    close = version == b"HTTP/1.0"
    for line in fields.split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    if chunked:
        body = await _read_chunked(reader)
    elif length is not None:
        body = await reader.readexactly(length)
    elif status in (204, 304) or status < 200:
        body = b""
    else:
        body, close = await reader.read(), True  # framed by the connection closing
    return status, body, not close


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailer fields
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
