"""The shared outbound HTTP client: one pooled ``HTTPClient`` per process (per event loop).

Created on first use of ``context.http`` (aiohttp is not imported before), with keep-alive
connections, at most ``AI_SPINE_MAX_CONNECTIONS`` of them, the waits for one measured, and
timeouts; closed when the tool stops. A client's connections belong to the event loop that
opened them, so a process running several loops (tests) gets one client per loop.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any

from ai_spine_tools.outbound._http_client import HTTPClient, HTTPSettings

__all__ = [
    "HTTPSettings",
    "close_shared_client",
    "configure_http",
    "http_stats",
    "shared_client",
    "use_client",
]

_settings: HTTPSettings | None = None
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HTTPClient] = (
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


def shared_client() -> HTTPClient:
    """Return this process's pooled client for the running loop, creating it on first use."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = HTTPClient(_current_settings())
    return client


def use_client(client: HTTPClient | None) -> None:
    """Make ``client`` the running loop's shared client (tests install a stub this way);
    ``None`` forgets the loop's client, so the next use opens a real one."""
    loop = asyncio.get_running_loop()
    if client is None:
        _clients.pop(loop, None)
    else:
        _clients[loop] = client


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
    return client.stats()
