"""HTTP/1.1 over a plain socket, for requests no well-behaved client library would send."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawResponse:
    """A response as it came off the wire (``status`` is 0 when none came before the close)."""

    status: int
    head: bytes
    body: bytes
    closed: bool
    elapsed: float

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), or ``None``."""
        wanted = name.lower().encode() + b":"
        for line in self.head.split(b"\r\n")[1:]:
            if line.lower().startswith(wanted):
                return line.split(b":", 1)[1].strip().decode("latin-1")
        return None

    def json(self) -> Any:
        return json.loads(self.body)


def request_bytes(
    method: str,
    path: str,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (("Content-Type", "application/json"),),
    *,
    close: bool = True,
) -> bytes:
    """A well-formed request: request line, Host, the headers, Content-Length, the body."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(
    port: int,
    pieces: Iterable[bytes],
    *,
    gap: float = 0.0,
    timeout: float = 15.0,
) -> RawResponse:
    """Send ``pieces`` (pausing ``gap`` seconds between them), then read one response.

    Sending stops quietly if the server closes the connection first; reading stops at the end of
    the first response or when the server closes.
    """
    started = time.monotonic()
    received = b""
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for index, piece in enumerate(pieces):
            if index and gap:
                time.sleep(gap)
            try:
                sock.sendall(piece)
            except OSError:  # refused and closed by the server mid-request
                break
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
            if _complete(received):
                break
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return RawResponse(status, head, body, closed, time.monotonic() - started)


def read_response(sock: socket.socket) -> bytes:
    """Read one whole response (headers and ``Content-Length`` body) from ``sock``."""
    received = b""
    while not _complete(received):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def _complete(data: bytes) -> bool:
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False
