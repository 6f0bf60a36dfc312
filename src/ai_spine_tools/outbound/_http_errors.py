"""aiohttp's errors as the SDK's: what ``context.http`` raises when a call gets no usable answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ai_spine_tools.exceptions import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)

if TYPE_CHECKING:
    from yarl import URL

__all__ = ["describe_url", "upstream_error"]


def describe_url(method: str, url: URL) -> str:
    """``GET host/path``: what an error message may say of a request (no query, no userinfo,
    which may hold keys)."""
    port = "" if url.explicit_port is None else f":{url.explicit_port}"
    return f"{method} {url.host or ''}{port}{url.path}"


def upstream_error(exc: BaseException, method: str, url: URL) -> UpstreamError:
    """Return the ``UpstreamError`` for ``exc``, raised by aiohttp while calling ``url``.

    A timeout becomes ``UpstreamTimeoutError``; an unreachable host, a dropped connection or a
    body cut short ``UpstreamConnectionError`` (retryable, but not for a TLS failure, which
    another try does not mend); anything else (a bad URL, too many redirects, a malformed
    answer) a plain, non-retryable ``UpstreamError``.
    """
    import aiohttp

    target = describe_url(method, url)
    if isinstance(exc, TimeoutError):
        return UpstreamTimeoutError(f"{target} did not answer in time")
    if isinstance(exc, aiohttp.ClientSSLError):
        return UpstreamConnectionError(f"{target} failed: TLS error ({exc})", retryable=False)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamConnectionError(f"{target} failed: cannot connect ({exc.strerror})")
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return UpstreamConnectionError(f"{target} failed: {_reason(exc)}")
    if isinstance(exc, aiohttp.TooManyRedirects):
        return UpstreamError(f"{target} failed: more than {len(exc.history) - 1} redirects")
    if isinstance(exc, aiohttp.InvalidURL):
        return UpstreamError(f"{method} failed: the URL is not a valid http(s) URL")
    return UpstreamError(f"{target} failed: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
