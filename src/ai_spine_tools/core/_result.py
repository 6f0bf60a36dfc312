"""``ToolResult``: what an execution produced, a success with data or an error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from ai_spine_tools.exceptions import ToolError, status_for

__all__ = ["ToolResult", "normalise_result"]

_SEED_KEYS = frozenset({"status", "data", "error", "metadata", "cache"})


class ToolResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one execution.

    Build one with ``ToolResult.success(data)`` or ``ToolResult.error(code, message, ...)``.
    ``failure`` holds the ``ToolError`` of an error result. (A msgspec ``Struct``: one is made
    per request, and a frozen dataclass takes three times as long to build.)
    """

    status: Literal["success", "error"]
    data: Any = None
    failure: ToolError | None = None
    metadata: Mapping[str, Any] | None = None

    @classmethod
    def success(cls, data: Any = None, *, metadata: Mapping[str, Any] | None = None) -> ToolResult:
        """Return a successful result carrying ``data``."""
        return cls(status="success", data=data, metadata=metadata)

    @classmethod
    def error(
        cls,
        code: str,
        message: str,
        *,
        type: str = "execution_error",
        retryable: bool = False,
        retry_after_ms: int | None = None,
        details: Mapping[str, Any] | None = None,
        http_status: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ToolResult:
        """Return an error result; the HTTP status follows ``code`` (or ``type``) unless given."""
        failure = ToolError(
            message,
            code=code,
            type=type,
            retryable=retryable,
            retry_after_ms=retry_after_ms,
            details=details,
            status=http_status if http_status is not None else status_for(code, type),
        )
        return cls(status="error", failure=failure, metadata=metadata)

    @classmethod
    def from_exception(cls, exc: ToolError) -> ToolResult:
        """Return the error result for a raised ``ToolError``."""
        return cls(status="error", failure=exc)

    @property
    def ok(self) -> bool:
        """True for a success."""
        return self.status == "success"

    @property
    def error_code(self) -> str | None:
        """The error code of an error result, else ``None``."""
        return None if self.failure is None else self.failure.code

    @property
    def error_message(self) -> str | None:
        """The error message of an error result, else ``None``."""
        return None if self.failure is None else self.failure.message

    def raise_for_error(self) -> ToolResult:
        """Raise the ``ToolError`` of an error result; return a success unchanged."""
        if self.failure is not None:
            raise self.failure
        return self


def normalise_result(value: Any) -> ToolResult:
    """Turn what ``execute`` returned into a ``ToolResult``.

    A ``ToolResult`` passes through. A mapping shaped like the TypeScript SDK's results
    (``{"status": "success" | "error", "data"?, "error"?, "metadata"?}``, no other keys) is read
    as such. Anything else is success data.
    """
    if isinstance(value, ToolResult):
        return value
    if type(value) is dict and "status" not in value:
        return ToolResult(status="success", data=value)
    if (
        isinstance(value, dict)
        and value.get("status") in ("success", "error")
        and _SEED_KEYS.issuperset(value)
    ):
        metadata = value.get("metadata")
        if value["status"] == "success":
            return ToolResult.success(value.get("data"), metadata=metadata)
        error = value.get("error") or {}
        if not isinstance(error, Mapping):
            error = {"message": str(error)}
        return ToolResult.error(
            str(error.get("code") or "EXECUTION_ERROR"),
            str(error.get("message") or "Tool execution failed"),
            type=str(error.get("type") or "execution_error"),
            retryable=bool(error.get("retryable", False)),
            retry_after_ms=_int_or_none(error.get("retryAfterMs", error.get("retry_after_ms"))),
            details=error.get("details") if isinstance(error.get("details"), Mapping) else None,
            metadata=metadata,
        )
    return ToolResult.success(value)


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return None
