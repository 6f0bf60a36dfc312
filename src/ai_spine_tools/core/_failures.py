"""What an exception escaping a tool's ``execute`` becomes on the wire.

A ``ToolError`` is already an answer. A connection error or a timeout raised by a client the tool
uses directly (aiohttp, httpx, redis, asyncpg, or a plain socket's ``ConnectionError`` and
``TimeoutError``) means a dependency failed, not the tool: it becomes a retryable 503
``UPSTREAM_UNAVAILABLE`` or 504 ``UPSTREAM_TIMEOUT``, as the same failure through
``context.http`` does. Anything else is a 500 ``EXECUTION_ERROR``. Messages carry the exception's
text only with debug on (it may name hosts, paths or credentials); the log has the traceback.

Optional clients are looked up in ``sys.modules``, never imported: an exception of a package
that is not loaded cannot be in flight.
"""

from __future__ import annotations

import logging
import socket
import sys

from ai_spine_tools.exceptions import (
    ExecutionError,
    ToolError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)

__all__ = ["error_for", "upstream_kind"]

logger = logging.getLogger("ai_spine_tools")


def error_for(exc: Exception, tool: str, *, execution_id: str | None, debug: bool) -> ToolError:
    """The ``ToolError`` answering ``exc``, raised by ``tool``'s execute; logs the traceback of
    anything that is not a ``ToolError``."""
    if isinstance(exc, ToolError):
        return exc
    kind = upstream_kind(exc)
    text = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
    shown = f" ({text}: {exc})" if debug else f" ({text})"
    if kind == "timeout":
        logger.warning(
            "tool %s: an upstream call timed out (execution %s)",
            tool,
            execution_id,
            exc_info=exc,
        )
        return UpstreamTimeoutError(f"An upstream service did not answer in time{shown}")
    if kind is not None:
        logger.warning(
            "tool %s: an upstream service could not be reached (execution %s)",
            tool,
            execution_id,
            exc_info=exc,
        )
        error = UpstreamConnectionError(f"An upstream service could not be reached{shown}")
        if kind == "tls":  # a certificate problem does not go away by trying again
            error.retryable = False
        return error
    logger.error("tool %s failed (execution %s)", tool, execution_id, exc_info=exc)
    message = f"{type(exc).__name__}: {exc}" if debug else "Tool execution failed"
    return ExecutionError(message)


def upstream_kind(exc: BaseException) -> str | None:
    """``"timeout"``, ``"connection"`` or ``"tls"`` for a failure to reach another service,
    else ``None``."""
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None and isinstance(exc, aiohttp.ClientError):
        if isinstance(exc, aiohttp.ServerTimeoutError):
            return "timeout"
        if isinstance(exc, aiohttp.ClientSSLError):
            return "tls"
        if isinstance(exc, aiohttp.ClientConnectionError):
            return "connection"
        return None
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(exc, httpx.TransportError):
        if isinstance(exc, httpx.TimeoutException):
            return "timeout"
        if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
            return "connection"
        return None
    redis = sys.modules.get("redis.exceptions")
    if redis is not None:
        if isinstance(exc, redis.TimeoutError):
            return "timeout"
        if isinstance(exc, redis.ConnectionError):
            return "connection"
    asyncpg = sys.modules.get("asyncpg")
    if asyncpg is not None and isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.ConnectionDoesNotExistError,
    ):
        return "connection"
    ssl = sys.modules.get("ssl")
    if ssl is not None and isinstance(exc, ssl.SSLCertVerificationError):
        return "tls"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError | socket.gaierror):  # refused, reset; a name not found
        return "connection"
    return None
