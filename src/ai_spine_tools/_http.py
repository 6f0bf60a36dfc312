"""The shared outbound HTTP client: one pooled ``httpx.AsyncClient`` per process (per event loop).

Created on first use of ``context.http`` (``httpx`` is not imported before), with keep-alive
connections, at most ``AI_SPINE_MAX_CONNECTIONS`` of them, the waits for one measured
(``_http_transport``), and timeouts; closed when the tool stops. A client's connections belong
to the event loop that opened them, so a process running several loops (tests) gets one client
per loop.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = ["HTTPSettings", "close_shared_client", "configure_http", "http_stats", "shared_client"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPSettings:
    """How the shared client is built: pool sizes and timeouts (seconds)."""

    max_connections: int = 100
    max_keepalive_connections: int = 20
    keepalive_expiry: float = 30.0
    connect_timeout: float = 5.0
    timeout: float = 10.0
    max_redirects: int = 3


_settings: HTTPSettings | None = None
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def configure_http(**options: Any) -> HTTPSettings:
    """Set how clients created from now on are built (the server passes its settings here)."""
    global _settings
    _settings = HTTPSettings(**options)
    return _settings


def _current_settings() -> HTTPSettings:
    if _settings is not None:
        return _settings
    raw = os.environ.get("AI_SPINE_MAX_CONNECTIONS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return HTTPSettings(max_connections=int(raw))
    return HTTPSettings()


def shared_client() -> httpx.AsyncClient:
    """Return this process's pooled client for the running loop, creating it on first use."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        import httpx

        from ai_spine_tools._http_transport import MeteredTransport

        settings = _current_settings()
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=min(
                settings.max_keepalive_connections, settings.max_connections
            ),
            keepalive_expiry=settings.keepalive_expiry,
        )
        pooled = httpx.AsyncHTTPTransport(limits=limits)
        client = httpx.AsyncClient(
            transport=MeteredTransport(pooled, settings.max_connections, http_stats),
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            follow_redirects=True,
            max_redirects=settings.max_redirects,
            headers={"user-agent": "ai-spine-tools"},
        )
        _clients[loop] = client
    return client


async def close_shared_client() -> None:
    """Close the running loop's shared client, if one was created (a later use makes another)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    client = _clients.pop(loop, None)
    if client is not None:
        await client.aclose()


def http_stats() -> dict[str, Any] | None:
    """Return the shared client's pool figures for metrics, or ``None`` if none is open."""
    try:
        client = _clients.get(asyncio.get_running_loop())
    except RuntimeError:
        return None
    if client is None or client.is_closed:
        return None
    from ai_spine_tools._http_transport import MeteredTransport

    settings = _current_settings()
    stats: dict[str, Any] = {"max_connections": settings.max_connections}
    transport = getattr(client, "_transport", None)
    if isinstance(transport, MeteredTransport):
        stats.update(transport.waits.figures())
        connections = getattr(getattr(transport.inner, "_pool", None), "connections", None)
        if connections is not None:  # httpcore's pool lists them; be lenient if that moves
            stats["open"] = len(connections)
            stats["idle"] = sum(1 for c in connections if c.is_idle())
            stats["in_use"] = stats["open"] - stats["idle"]
    return stats
