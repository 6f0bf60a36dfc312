"""``MockAISpineClient``: call a tool the way the AI Spine platform does.

The platform sends ``POST /api/execute`` with ``{"input_data": ..., "config": ...}`` as JSON, with
no API key, and reads ``status``, ``output_data`` and ``error_message`` from the answer. The mock
does the same, against a ``Tool`` served in-process or against a running server's base URL.

Its in-process servers and its HTTP connections live on a background event loop of their own (the
platform is, after all, somewhere else), so one client works from any event loop, or from several
``asyncio.run`` calls in turn, and ``close()`` runs the tools' cleanup from synchronous code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from ai_spine_tools.core._tool import Tool
from ai_spine_tools.outbound._http_client import HTTPClient, HTTPSettings
from ai_spine_tools.server._app import create_app
from ai_spine_tools.server._inprocess import InProcessApp
from ai_spine_tools.testing._portal import Portal

__all__ = ["MockAISpineClient", "SpineResult"]

_USER_AGENT = "ai-spine-platform-mock/1.0"


@dataclass(frozen=True, slots=True, kw_only=True)
class SpineResult:
    """What the platform reads from one execution."""

    status: str
    """``"success"`` or ``"error"``."""
    output_data: dict[str, Any] | None
    error_message: str | None
    error_code: str | None
    http_status: int
    execution_id: str | None = None
    execution_time_ms: float | None = None
    body: Any = None
    """The whole decoded response body."""

    @property
    def ok(self) -> bool:
        """True for a success."""
        return self.status == "success"

    @property
    def validation_errors(self) -> list[dict[str, Any]]:
        """Each failing field of a validation error, as ``{path, code, message}``."""
        details = self.body.get("error_details") if isinstance(self.body, dict) else None
        errors = details.get("errors") if isinstance(details, dict) else None
        return list(errors) if isinstance(errors, list) else []

    @classmethod
    def from_response(cls, http_status: int, content: bytes) -> SpineResult:
        """Read a raw execute response as the platform does."""
        try:
            body = msgspec.json.decode(content)
        except msgspec.DecodeError:
            body = None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            return cls(
                status="error",
                output_data=None,
                error_message=f"HTTP {http_status}: the response is not an execute envelope",
                error_code="INVALID_RESPONSE",
                http_status=http_status,
                body=body,
            )
        output = body.get("output_data")
        return cls(
            status=body["status"],
            output_data=output if isinstance(output, dict) else None,
            error_message=body.get("error_message"),
            error_code=body.get("error_code"),
            http_status=http_status,
            execution_id=body.get("execution_id"),
            execution_time_ms=body.get("execution_time_ms"),
            body=body,
        )


class MockAISpineClient:
    """Execute tools as the AI Spine platform does: ``await client.execute(tool_or_url, input)``.

    A ``Tool`` target is served in-process by its real app (its ``setup`` runs on first use, its
    ``cleanup`` on ``close()``); a string target is a server's base URL, called over HTTP.
    ``headers`` are added to every request; the platform itself sends no API key.
    """

    def __init__(self, *, timeout: float = 30.0, headers: Mapping[str, str] | None = None) -> None:
        self.timeout = timeout
        self.headers = {
            "content-type": "application/json",
            "user-agent": _USER_AGENT,
            **{k.lower(): v for k, v in (headers or {}).items()},
        }
        self._portal = Portal("ai-spine-platform-mock")
        self._apps: dict[int, tuple[Tool, InProcessApp, bool]] = {}
        self._http: HTTPClient | None = None
        self._lock: asyncio.Lock | None = None

    async def execute(
        self,
        tool_or_url: Tool | str,
        input: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
    ) -> SpineResult:
        """Send one execution request and return what the platform would read from the answer.

        Transport failures (a URL nobody listens on) raise ``UpstreamConnectionError`` (or
        ``UpstreamTimeoutError`` past ``timeout``).
        """
        if not isinstance(tool_or_url, Tool | str):
            raise TypeError(f"expected a Tool or a base URL (got {type(tool_or_url).__name__})")
        envelope: dict[str, Any] = {
            "input_data": {} if input is None else input,
            "config": {} if config is None else config,
        }
        if execution_id is not None:
            envelope["execution_id"] = execution_id
        body = msgspec.json.encode(envelope)
        self._portal.start()
        status, content = await self._portal.acall(self._send(tool_or_url, body))
        return SpineResult.from_response(status, content)

    async def _send(self, target: Tool | str, body: bytes) -> tuple[int, bytes]:
        if isinstance(target, Tool):
            app = await self._app_for(target)
            raw = await app.request("POST", "/api/execute", body=body, headers=self.headers.items())
            return raw.status, raw.body
        http = self._http_client()
        response = await http.post(
            _execute_url(target), content=body, headers=self.headers, follow_redirects=False
        )
        return response.status_code, response.content

    async def _app_for(self, tool: Tool) -> InProcessApp:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            entry = self._apps.get(id(tool))
            if entry is None:
                app = InProcessApp(create_app(tool))
                owns = not tool.started  # a tool someone else started keeps its own lifecycle
                if owns:
                    await app.start()
                entry = self._apps[id(tool)] = (tool, app, owns)
            return entry[1]

    def _http_client(self) -> HTTPClient:
        if self._http is None:
            self._http = HTTPClient(HTTPSettings(timeout=self.timeout))
        return self._http

    async def _shutdown(self) -> None:
        apps, self._apps = list(self._apps.values()), {}
        http, self._http = self._http, None
        try:
            for _, app, owns in apps:
                if owns:
                    await app.stop()
        finally:
            if http is not None:
                await http.aclose()

    def close(self) -> None:
        """Run the cleanup of the tools served in-process and close HTTP connections."""
        if self._portal.running:
            try:
                self._portal.call(self._shutdown())
            finally:
                self._portal.stop()

    async def aclose(self) -> None:
        """Like ``close()``, from async code."""
        if self._portal.running:
            try:
                await self._portal.acall(self._shutdown())
            finally:
                self._portal.stop()

    def __enter__(self) -> MockAISpineClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> MockAISpineClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _execute_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/api/execute") else base + "/api/execute"
