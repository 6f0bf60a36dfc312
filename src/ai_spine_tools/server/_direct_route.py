"""Which ``POST /api/execute`` requests the connection may serve itself (``_protocol``), and the
response it writes for them, header for header as the ASGI path would.

The app uvicorn serves may be the ``ToolApp`` (or a ``SuiteApp`` of several, each tool's execute
route under its name: ``/<name>/api/execute``) wrapped in compression, CORS and proxy headers
(``with_middleware``, ``ai-spine serve --proxy-headers``). A request carrying a header one of
them acts on (``Accept-Encoding``, ``Origin``, ``X-Forwarded-*``) takes the ASGI path. For the
others each wrapper changes nothing but its ``Vary`` header, which ``finish`` adds the same way:
starlette's gzip names ``Accept-Encoding`` on a body of at least its minimum size, its CORS names
``Origin`` on every answer (``tests/test_direct_route.py`` compares both paths with them on).
"""

from __future__ import annotations

from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ai_spine_tools.server._app import ToolApp
from ai_spine_tools.server._suite import SuiteApp

__all__ = ["DirectRoute"]

Headers = list[tuple[bytes, bytes]]


class DirectRoute:
    """The ``ToolApp`` of each execute path under the app uvicorn serves, the request headers
    that make a wrapper between them act on a request, and the ``Vary`` the wrappers add to the
    others."""

    __slots__ = ("apps", "declining", "gzip_minimum", "varies", "vary_origin")

    def __init__(
        self,
        apps: dict[bytes, ToolApp],
        declining: frozenset[bytes],
        *,
        gzip_minimum: int | None = None,
        vary_origin: bool = False,
    ) -> None:
        self.apps = apps
        """The app serving each execute path (the raw path, as the request line carries it)."""
        self.declining = declining
        self.gzip_minimum = gzip_minimum
        self.vary_origin = vary_origin
        self.varies = gzip_minimum is not None or vary_origin
        """Whether a wrapper adds ``Vary`` to answers (``finish`` has work to do)."""

    @property
    def app(self) -> ToolApp:
        """The one tool's app (a single tool served)."""
        (app,) = self.apps.values()
        return app

    @classmethod
    def find(cls, app: Any) -> DirectRoute | None:
        """Look for the ``ToolApp`` (or the ``SuiteApp``) through the wrappers it may be served in
        (all known ones); ``None`` if another wrapper is in the way or no tool may be served
        directly (a streaming tool, one whose setup failed)."""
        declining: set[bytes] = set()
        gzip_minimum = None
        vary_origin = False
        while not isinstance(app, ToolApp | SuiteApp):
            if isinstance(app, ProxyHeadersMiddleware):
                declining |= {b"x-forwarded-for", b"x-forwarded-proto"}
            elif isinstance(app, GZipMiddleware):
                if gzip_minimum is not None:
                    return None  # twice: not what with_middleware builds
                declining.add(b"accept-encoding")
                gzip_minimum = app.minimum_size
            elif isinstance(app, CORSMiddleware):
                if gzip_minimum is not None or vary_origin:
                    return None  # inside gzip, or twice: not what with_middleware builds
                declining.add(b"origin")
                vary_origin = True
            else:
                return None
            app = app.app
        apps = app.direct_routes() if isinstance(app, SuiteApp) else {b"/api/execute": app}
        apps = {path: tool_app for path, tool_app in apps.items() if tool_app.serves_directly}
        if not apps:
            return None
        return cls(apps, frozenset(declining), gzip_minimum=gzip_minimum, vary_origin=vary_origin)

    def admits(self, headers: Headers, limit: int) -> bool:
        """True when a request with ``headers`` may be held until its body is in: a length
        declared and no larger than ``limit`` (what uvicorn buffers before it stops reading),
        and no header a wrapper acts on."""
        small = False
        for name, value in headers:
            if name == b"content-length":
                small = value.isdigit() and int(value) <= limit
            elif name == b"transfer-encoding" or name in self.declining:
                return False
        return small

    def finish(self, headers: Headers, body: bytes) -> Headers:
        """``headers`` with the ``Vary`` the wrappers add to an answer carrying ``body``."""
        vary = []
        if self.gzip_minimum is not None and len(body) >= self.gzip_minimum:
            vary.append("Accept-Encoding")
        if self.vary_origin:
            vary.append("Origin")
        if not vary:
            return headers
        return [*headers, (b"vary", ", ".join(vary).encode())]
