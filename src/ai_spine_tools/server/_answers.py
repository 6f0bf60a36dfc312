"""What goes back: the envelopes of the HTTP contract, encoded once each, and the request
envelope decoded with the error it deserves."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from ai_spine_tools.core._output import ENCODER, check_finite, unserializable
from ai_spine_tools.exceptions import (
    ConfigurationError,
    ToolError,
    ValidationError,
    ValidationIssue,
)
from ai_spine_tools.fields._schema import invalid_json
from ai_spine_tools.server._wire import (
    _X_CACHE_HIT,
    _X_CACHE_MISS,
    Request,
    Response,
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

__all__ = ["Answers"]

logger = logging.getLogger("ai_spine_tools.server")


class Answers:
    """The request envelope in, and the success, cached and error envelopes out, of one tool."""

    def __init__(self, tool_name: str, settings: ServerSettings) -> None:
        self.tool_name = tool_name
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
