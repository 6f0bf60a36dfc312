"""Where a load test sends its requests: a Tool's app in-process, or a server on this machine."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import msgspec

from ai_spine_tools.core._tool import Tool
from ai_spine_tools.server._app import create_app
from ai_spine_tools.server._inprocess import InProcessApp
from ai_spine_tools.testing._http1 import HTTP1Pool, HTTPConnectionError, HTTPTimeoutError

__all__ = ["Target", "ensure_loopback", "target_for"]


class _Envelope(msgspec.Struct):
    status: str | None = None
    error_code: str | None = None


_read_envelope = msgspec.json.Decoder(_Envelope).decode


def ensure_loopback(url: str) -> str:
    """Return ``url`` when its host is on this machine (127.0.0.0/8, ::1, localhost); else raise.

    A load test sends traffic as fast as it can: it is aimed only at servers you run here.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"load_test needs an http:// or https:// URL (got {url!r})")
    host = parts.hostname
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(
                f"load_test refuses {host!r}: it only targets this machine (127.0.0.1, "
                "localhost, [::1]) or a Tool in-process; run the server locally to load-test it"
            )
    return url


def _classify(status: int, content: bytes) -> str | None:
    """Return ``None`` for a success, else the error code of the response."""
    try:
        envelope = _read_envelope(content)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return f"HTTP_{status}"
    if 200 <= status < 300 and envelope.status == "success":
        return None
    return envelope.error_code or f"HTTP_{status}"


class Target:
    """Where requests go: ``send(body)`` answers ``(HTTP status or None, error code or None)``."""

    name: str
    mode: str

    async def send(self, body: bytes) -> tuple[int | None, str | None]:
        raise NotImplementedError

    async def metrics(self) -> dict[str, Any] | None:
        raise NotImplementedError

    async def __aenter__(self) -> Target:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class _InProcess(Target):
    def __init__(self, tool: Tool, headers: dict[str, str]) -> None:
        self.tool, self.name, self.mode = tool, f"{tool.name} {tool.version}", "in-process"
        self.app = InProcessApp(create_app(tool))
        self.headers = [(k.lower(), v) for k, v in headers.items()]
        self.owns = False

    async def __aenter__(self) -> Target:
        if not self.tool.started:  # a tool someone else started keeps its own lifecycle
            await self.app.start()
            self.owns = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.owns:
            await self.app.stop()

    async def send(self, body: bytes) -> tuple[int | None, str | None]:
        raw = await self.app.request("POST", "/api/execute", body=body, headers=self.headers)
        return raw.status, _classify(raw.status, raw.body)

    async def metrics(self) -> dict[str, Any] | None:
        return self.tool.get_metrics().to_dict()


class _OverHTTP(Target):
    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        base = url.rstrip("/").removesuffix("/api/execute")
        self.name, self.mode = base, "http"
        self.pool = HTTP1Pool(base, headers=headers, timeout=timeout)

    async def __aexit__(self, *exc_info: object) -> None:
        await self.pool.aclose()

    async def send(self, body: bytes) -> tuple[int | None, str | None]:
        try:
            status, content = await self.pool.request("POST", "/api/execute", body)
        except HTTPTimeoutError:
            return None, "CLIENT_TIMEOUT"
        except HTTPConnectionError:
            return None, "CONNECTION_ERROR"
        return status, _classify(status, content)

    async def metrics(self) -> dict[str, Any] | None:
        try:
            status, content = await self.pool.request("GET", "/metrics")
            data = msgspec.json.decode(content) if status == 200 else None
        except (HTTPConnectionError, msgspec.DecodeError):
            return None
        return data if isinstance(data, dict) else None


def target_for(target: Tool | str, headers: dict[str, str], timeout: float) -> Target:
    """Return the target for a Tool (in-process) or a base URL (over HTTP)."""
    if isinstance(target, Tool):
        return _InProcess(target, headers)
    return _OverHTTP(target, headers, timeout)
