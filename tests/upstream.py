"""A real upstream HTTP API on loopback for outbound-client tests (aiohttp's own server).

Routes: ``/echo`` (method, path, query, headers and body back as JSON), ``/json``, ``/text``
(latin-1, with its charset), ``/notjson``, ``/status/{code}`` (with ``Retry-After: 2`` on 503),
``/redirect/{n}`` (n hops to ``/json``), ``/slow?delay=s``, ``/cookie`` (sets one),
``/lines`` (a chunked body of three lines), ``/cut`` (promises more body than it sends),
``/flaky`` (503 for the first ``failures`` calls, then JSON).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


class UpstreamAPI:
    """The upstream's state: what it was asked, and how often."""

    def __init__(self) -> None:
        self.calls = 0
        self.failures = 0
        self.seen_headers: list[dict[str, str]] = []
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/echo", self.echo)
        app.router.add_get("/json", self.json)
        app.router.add_get("/text", self.text)
        app.router.add_get("/notjson", self.notjson)
        app.router.add_get("/status/{code}", self.status)
        app.router.add_get("/redirect/{n}", self.redirect)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/cookie", self.cookie)
        app.router.add_get("/lines", self.lines)
        app.router.add_get("/cut", self.cut)
        app.router.add_get("/flaky", self.flaky)
        return app

    def _seen(self, request: web.Request) -> None:
        self.calls += 1
        self.seen_headers.append({k.lower(): v for k, v in request.headers.items()})

    async def echo(self, request: web.Request) -> web.Response:
        self._seen(request)
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "query": [[k, v] for k, v in request.query.items()],
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }
        )

    async def json(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.json_response({"city": "Madrid", "temperature": 21.5})

    async def text(self, request: web.Request) -> web.Response:
        body = "café".encode("latin-1")
        return web.Response(body=body, content_type="text/plain", charset="latin-1")

    async def notjson(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>oops</html>", content_type="text/html")

    async def status(self, request: web.Request) -> web.Response:
        self._seen(request)
        code = int(request.match_info["code"])
        headers = {"Retry-After": "2"} if code == 503 else {}
        return web.Response(status=code, text=f"status {code}", headers=headers)

    async def redirect(self, request: web.Request) -> web.Response:
        hops = int(request.match_info["n"])
        raise web.HTTPFound("/json" if hops <= 1 else f"/redirect/{hops - 1}")

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("delay", "1")))
        return web.json_response({"slow": True})

    async def cookie(self, request: web.Request) -> web.Response:
        self._seen(request)
        response = web.json_response({"cookie": request.headers.get("Cookie")})
        response.set_cookie("session", "secret-of-one-caller")
        return response

    async def lines(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        for part in (b"one\n", b"tw", b"o\r\nthr", b"ee"):
            await response.write(part)
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    async def cut(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"x" * 10)
        assert request.transport is not None
        request.transport.close()
        return response

    async def flaky(self, request: web.Request) -> web.Response:
        self._seen(request)
        if self.calls <= self.failures:
            return web.Response(status=503, text="try again")
        return web.json_response({"ok": True, "calls": self.calls})


@asynccontextmanager
async def upstream_api() -> AsyncIterator[UpstreamAPI]:  # also the ``api`` fixture (conftest)
    """Serve an ``UpstreamAPI`` on a free loopback port for the block."""
    api = UpstreamAPI()
    runner = web.AppRunner(api.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    api.url = f"http://127.0.0.1:{port}"
    try:
        yield api
    finally:
        await runner.cleanup()
