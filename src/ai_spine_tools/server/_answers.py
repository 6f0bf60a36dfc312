"""What goes back: the envelopes of the HTTP contract, encoded once each, the headers every
answer carries and its sending; and the request envelope decoded with the error it deserves."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from ai_spine_tools.core._context import new_execution_id
from ai_spine_tools.core._output import ENCODER, check_finite, unserializable
from ai_spine_tools.exceptions import (
    ConfigurationError,
    ToolError,
    ValidationError,
    ValidationIssue,
)
from ai_spine_tools.fields._schema import invalid_json
from ai_spine_tools.security._headers import API_SECURITY_HEADERS, page_security_headers
from ai_spine_tools.server._wire import (
    _JSON,
    _X_CACHE_HIT,
    _X_CACHE_MISS,
    Request,
    Response,
    Send,
    _CacheBlock,
    _CachedSuccess,
    _Envelope,
    _now_iso,
    _Success,
    error_envelope,
)

if TYPE_CHECKING:
    from ai_spine_tools._settings import ServerSettings
    from ai_spine_tools.cache import CacheOutcome
    from ai_spine_tools.core._tool import Tool

__all__ = ["Answers", "Headers"]

Headers = list[tuple[bytes, bytes]]

logger = logging.getLogger("ai_spine_tools.server")


class Answers:
    """The request envelope in, and the answers out, of one tool (or of a suite's root, which
    answers no execution: ``tool`` is ``None``): the success, cached and error envelopes, the
    headers each answer carries and its sending."""

    def __init__(self, settings: ServerSettings, tool: Tool | None = None) -> None:
        self.tool_name = "" if tool is None else tool.name
        own: Headers = [] if tool is None else [(b"x-tool-version", tool.version.encode())]
        self._own = own
        self.fixed_headers: Headers = [*own, *API_SECURITY_HEADERS]
        """What every answer but a page carries after its request id and response time: the
        tool's version, then the security headers of an answer that loads nothing."""
        self._page_policy = settings.content_security_policy
        self._errors_as_200 = settings.errors_as_200
        self._envelope = msgspec.json.Decoder(_Envelope)
        self._encoder = ENCODER
        self._warn_none = settings.debug  # on in ai-spine dev

    def decode(self, body: bytes) -> _Envelope:
        """The request envelope in ``body``; a ``ToolError`` saying what is wrong with it."""
        try:
            return self._envelope.decode(body)
        except msgspec.ValidationError as exc:
            message = str(exc)
            if message.startswith("Number out of range"):  # not JSON a float can hold
                raise invalid_json(exc, body) from None
            if "at `$.config" in message:
                raise ConfigurationError("'config' must be an object") from None
            if "at `$" not in message:
                message = 'Request body must be a JSON object like {"input_data": {...}}'
            path = message.rsplit("at `$.", 1)[1].rstrip("`") if "at `$." in message else ""
            raise ValidationError(
                [ValidationIssue(path, "type", message)], subject="request"
            ) from None
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise invalid_json(exc, body) from None

    def success(self, execution_id: str, data: Any, metadata: Any, took_ms: float) -> Response:
        """The success envelope of what ``execute`` returned (a dict as it is, ``None`` as ``{}``,
        anything else as ``{"result": value}``); a value JSON cannot hold raises."""
        if type(data) is dict:
            output = data
        elif data is None:
            output = {}
            if self._warn_none:  # ai-spine dev: a forgotten return looks like an empty success
                self._warn_none = False
                logger.warning(
                    "tool %r: execute returned None, so the caller gets output_data {}; "
                    "did it forget a return? (logged once)",
                    self.tool_name,
                )
        else:
            output = data if isinstance(data, dict) else {"result": data}
        extra = dict(metadata) if metadata else None
        envelope = _Success(
            execution_id=execution_id,
            status="success",
            output_data=output,
            execution_time_ms=round(took_ms, 3),
            timestamp=_now_iso(),
            metadata=extra,
        )
        try:
            body = self._encoder.encode(envelope)
            if b"null" in body:  # perhaps a NaN or an infinity msgspec wrote as null
                check_finite(body, output_data=output, metadata=extra)
        except (TypeError, ValueError, OverflowError) as exc:
            failure = unserializable(exc, output_data=output, metadata=extra)
            logger.error("tool %s: %s", self.tool_name, failure.message)
            raise failure from None
        except ToolError as exc:
            logger.error("tool %s: %s", self.tool_name, exc.message)
            raise
        return Response(200, body, [])

    def cached(self, execution_id: str, outcome: CacheOutcome, took_ms: float) -> Response:
        """The success envelope of a cached (or just cached) result, with its cache block."""
        answer = _CachedSuccess(
            execution_id=execution_id,
            status="success",
            output_data=outcome.output,
            execution_time_ms=round(took_ms, 3),
            timestamp=_now_iso(),
            metadata=outcome.metadata,
            cache=_CacheBlock(outcome.hit, outcome.key, outcome.age_ms),
        )
        header = _X_CACHE_HIT if outcome.hit else _X_CACHE_MISS
        return Response(200, self._encoder.encode(answer), [header])

    def error(
        self,
        request: Request,
        exc: ToolError,
        *,
        execution_id: str | None = None,
        errors_as_200: bool = False,
    ) -> Response:
        """The error envelope of ``exc`` as the answer to ``request`` (with ``Retry-After`` for a
        429 or 503 that says when; status 200 for ``/api/execute`` under ``errors_as_200``)."""
        body = error_envelope(
            exc,
            execution_id=execution_id,
            took_ms=round((time.perf_counter() - request.started) * 1000.0, 3),
            timestamp=_now_iso(),
        )
        headers = []
        if exc.retry_after_ms is not None and exc.status in (429, 503):
            headers.append((b"retry-after", str(max(1, -(-exc.retry_after_ms // 1000))).encode()))
        status = 200 if errors_as_200 and self._errors_as_200 else exc.status
        return Response(status, self._encoder.encode(body), headers)

    # -- the way out ---------------------------------------------------------------------------

    def headers(self, request: Request, response: Response) -> Headers:
        """The headers of ``response``: content type and length first, then ours, then its own."""
        elapsed_ms = (time.perf_counter() - request.started) * 1000.0
        content_type = response.content_type
        return [
            (b"content-type", content_type),
            (b"content-length", str(len(response.body)).encode()),
            (b"x-request-id", request.request_id or new_execution_id().encode()),
            (b"x-response-time", f"{elapsed_ms:.3f}ms".encode()),
            *(
                self.fixed_headers
                if content_type is _JSON or not content_type.startswith(b"text/html")
                else [*self._own, *page_security_headers(self._page_policy, response.body)]
            ),
            *request.extra_headers,
            *response.headers,
        ]

    async def send(self, send: Send, request: Request, response: Response, *, head: bool) -> None:
        """Send ``response`` over ASGI (a stream as it is produced; no body for ``HEAD``)."""
        headers = self.headers(request, response)
        stream = response.stream
        if stream is not None:
            del headers[1]  # no content-length: the body goes out as it is produced
            try:
                await send({"type": "http.response.start", "status": 200, "headers": headers})
            except BaseException:
                await stream.abort()
                raise
            await stream.send(send, request.receive)
            return
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else response.body})
