"""Drive an ASGI app in-process: its lifespan, then requests, with no socket in between."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ai_spine_tools.server._wire import ASGIApp, Message

__all__ = ["InProcessApp", "RawResponse"]


@dataclass(slots=True)
class RawResponse:
    """Status, headers (lower-case names) and body of one in-process response."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class InProcessApp:
    """Runs ``app``'s lifespan on ``start()``/``stop()`` and sends it requests in between."""

    def __init__(self, app: ASGIApp, *, client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.app = app
        self.client = client
        self._to_app: asyncio.Queue[Message] | None = None
        self._from_app: asyncio.Queue[Message] | None = None
        self._lifespan: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run the lifespan start-up; raise ``RuntimeError`` with its message if it fails."""
        self._to_app, self._from_app = asyncio.Queue(), asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._lifespan = asyncio.create_task(
            self.app(scope, self._to_app.get, self._from_app.put)  # type: ignore[arg-type]
        )
        await self._to_app.put({"type": "lifespan.startup"})
        replied = asyncio.ensure_future(self._from_app.get())
        await asyncio.wait({replied, self._lifespan}, return_when=asyncio.FIRST_COMPLETED)
        if not replied.done():  # the app's lifespan ended (or raised) without answering
            replied.cancel()
            error = self._lifespan.exception()
            raise RuntimeError(f"start-up failed: {error!r}" if error else "start-up failed")
        reply = replied.result()
        if reply["type"] != "lifespan.startup.complete":
            raise RuntimeError(reply.get("message") or "start-up failed")

    async def stop(self) -> None:
        """Run the lifespan shut-down (cleanup)."""
        if self._lifespan is None or self._to_app is None or self._from_app is None:
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        await self._from_app.get()
        await self._lifespan
        self._lifespan = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
    ) -> RawResponse:
        """Send one request and collect the whole response."""
        raw_path, _, query = path.partition("?")
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method.upper(),
            "scheme": "http",
            "path": raw_path,
            "raw_path": raw_path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            "client": self.client,
            "server": ("127.0.0.1", 3000),
        }
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()  # nothing more arrives until the app is done
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        response = RawResponse(status=500)
        chunks: list[bytes] = []

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                response.status = message["status"]
                response.headers = {
                    k.decode("latin-1"): v.decode("latin-1") for k, v in message["headers"]
                }
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        response.body = b"".join(chunks)
        return response
