"""What ``context.http`` answers: ``HTTPResponse`` (body read) and ``StreamedHTTPResponse``.

Both read like httpx's response: ``status_code``, ``headers`` (case-insensitive, several values
per name), ``url``, ``reason_phrase``, ``raise_for_status()``; the read one adds ``content``,
``text`` and ``json()``, the streamed one ``aiter_bytes()``, ``aiter_lines()`` and ``aread()``.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Self

import msgspec

from ai_spine_tools.exceptions import UpstreamDecodeError, UpstreamStatusError
from ai_spine_tools.outbound._http_errors import describe_url, upstream_error

if TYPE_CHECKING:
    import aiohttp
    from multidict import CIMultiDictProxy
    from yarl import URL

__all__ = ["HTTPResponse", "StreamedHTTPResponse", "retry_after_ms"]

_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_decode_json = msgspec.json.decode


def retry_after_ms(headers: Mapping[str, str]) -> int | None:
    """The ``Retry-After`` header given in seconds, as milliseconds (``None`` if absent/odd)."""
    raw = headers.get("retry-after", "")
    if raw.isdigit():
        return int(raw) * 1000
    return None


class _Head:
    """The status line and headers of an upstream's answer."""

    __slots__ = ("_url", "headers", "method", "reason_phrase", "status_code")

    def __init__(
        self,
        method: str,
        url: URL,
        status_code: int,
        reason_phrase: str,
        headers: CIMultiDictProxy[str],
    ) -> None:
        self.method = method
        self._url = url
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.headers = headers

    @property
    def url(self) -> str:
        """The URL that answered (after redirects)."""
        return str(self._url)

    @property
    def is_success(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status_code < 300

    @property
    def is_error(self) -> bool:
        """True for a 4xx or 5xx status."""
        return self.status_code >= 400

    @property
    def encoding(self) -> str:
        """The charset the ``Content-Type`` header names, else ``utf-8``."""
        content_type = self.headers.get("content-type", "")
        for part in content_type.split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip("\"' ")
                try:
                    return codecs.lookup(charset).name
                except LookupError:
                    break
        return "utf-8"

    def raise_for_status(self) -> Self:
        """Raise ``UpstreamStatusError`` for a 4xx or 5xx status; return the response otherwise.

        The error is retryable for 408, 425, 429, 500, 502, 503 and 504 (with the upstream's
        ``Retry-After``), so ``retry`` tries again and a breaker counts it; other statuses are
        the upstream's answer and are not retried.
        """
        status = self.status_code
        if status < 400:
            return self
        retryable = status in _RETRYABLE_STATUS
        raise UpstreamStatusError(
            f"{describe_url(self.method, self._url)} answered {status} {self.reason_phrase}",
            status_code=status,
            response=self,
            retryable=retryable,
            retry_after_ms=retry_after_ms(self.headers) if retryable else None,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{self.status_code} {self.reason_phrase}]>"


class HTTPResponse(_Head):
    """An upstream's whole answer, its body read and its connection back in the pool."""

    __slots__ = ("content",)

    def __init__(
        self,
        method: str,
        url: URL,
        status_code: int,
        reason_phrase: str,
        headers: CIMultiDictProxy[str],
        content: bytes,
    ) -> None:
        super().__init__(method, url, status_code, reason_phrase, headers)
        self.content = content

    @property
    def text(self) -> str:
        """The body decoded with the response's charset (``utf-8`` if it names none)."""
        return self.content.decode(self.encoding, errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (msgspec); ``UpstreamDecodeError`` (a ``ValueError``) when
        it is not JSON."""
        try:
            return _decode_json(self.content)
        except msgspec.DecodeError as exc:
            raise UpstreamDecodeError(
                f"{describe_url(self.method, self._url)} answered {self.status_code} with a body "
                f"that is not JSON ({exc})",
                response=self,
            ) from exc


class StreamedHTTPResponse(_Head):
    """An upstream's answer whose body is read as it arrives, inside ``context.http.stream()``;
    it holds its connection until the block ends."""

    __slots__ = ("_raw",)

    def __init__(self, method: str, raw: aiohttp.ClientResponse) -> None:
        super().__init__(method, raw.url, raw.status, raw.reason or "", raw.headers)
        self._raw = raw

    async def aiter_bytes(self, chunk_size: int = 65_536) -> AsyncIterator[bytes]:
        """Yield the body in chunks of at most ``chunk_size`` bytes, as they arrive."""
        async for chunk in _mapped(self._raw.content.iter_chunked(chunk_size), self):
            yield chunk

    async def aiter_lines(self) -> AsyncIterator[str]:
        """Yield the body line by line (without line endings), decoded with its charset."""
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="replace")
        pending = ""
        async for chunk in self.aiter_bytes():
            pending += decoder.decode(chunk)
            *lines, pending = pending.split("\n")
            for line in lines:
                yield line.removesuffix("\r")
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending.removesuffix("\r")

    async def aread(self) -> bytes:
        """Read the rest of the body and return it."""
        return b"".join([chunk async for chunk in self.aiter_bytes()])


async def _mapped(chunks: AsyncIterator[bytes], head: _Head) -> AsyncIterator[bytes]:
    """``chunks``, with a body the upstream cut short raised as ``UpstreamConnectionError``."""
    try:
        async for chunk in chunks:
            yield chunk
    except Exception as exc:
        raise upstream_error(exc, head.method, head._url) from exc
