"""HTTP/1.1 over a plain socket, for requests no well-behaved client library would send."""

from __future__ import annotations

import json
import socket
import threading
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


def split_responses(data: bytes) -> tuple[list[RawResponse], bytes]:
    """The whole responses at the start of ``data`` (interim ``100 Continue`` included, bodies by
    ``Content-Length``), and what is left of it."""
    answers: list[RawResponse] = []
    while True:
        head, separator, rest = data.partition(b"\r\n\r\n")
        if not separator:
            return answers, data
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        answer = RawResponse(status, head, b"", False, 0.0)
        length = 0 if status < 200 else int(answer.header("content-length") or 0)
        if len(rest) < length:
            return answers, data
        answers.append(RawResponse(status, head, rest[:length], False, 0.0))
        data = rest[length:]


@dataclass(frozen=True)
class Conversation:
    """What came back on one connection: the responses in order, and whether the server closed
    it (rather than the client giving up after its budget)."""

    responses: list[RawResponse]
    closed: bool
    elapsed: float

    @property
    def statuses(self) -> tuple[int, ...]:
        return tuple(response.status for response in self.responses)

    def ids(self) -> list[str | None]:
        """The ``X-Request-ID`` of each response."""
        return [response.header("x-request-id") for response in self.responses]


def converse(
    port: int,
    pieces: Iterable[bytes],
    *,
    gap: float = 0.0,
    count: int | None = None,
    budget: float = 8.0,
    wait_for: int | None = None,
) -> Conversation:
    """Send ``pieces`` on one connection (``gap`` seconds apart; the piece after ``wait_for``
    responses only once they are in), reading meanwhile, until the server closes, ``count``
    responses are in, or ``budget`` seconds have passed."""
    started = time.monotonic()
    deadline = started + budget
    received = b""
    answers: list[RawResponse] = []
    closed = False
    queue = list(pieces)
    sock = socket.create_connection(("127.0.0.1", port), timeout=budget)
    sender = threading.Thread(target=_send, args=(sock, queue, gap, wait_for, answers), daemon=True)
    sender.start()
    try:
        while count is None or len(answers) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
            more, received = split_responses(received)
            answers += more
    finally:
        sock.close()
        sender.join(budget)
    return Conversation(answers, closed, time.monotonic() - started)


def _send(
    sock: socket.socket,
    pieces: list[bytes],
    gap: float,
    wait_for: int | None,
    answers: list[RawResponse],
) -> None:
    for index, piece in enumerate(pieces):
        if index and gap:
            time.sleep(gap)
        if wait_for is not None and index == len(pieces) - 1:
            limit = time.monotonic() + 5
            while len(answers) < wait_for and time.monotonic() < limit:
                time.sleep(0.01)
        try:
            sock.sendall(piece)
        except OSError:  # refused and closed by the server, or closed by the reader
            return
