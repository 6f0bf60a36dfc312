"""Assertions on execute responses, with failure messages that say what went wrong and where."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["assert_success", "assert_validation_error", "describe"]


class Outcome(Protocol):
    """What both ``ToolResponse`` and ``SpineResult`` offer."""

    @property
    def ok(self) -> bool: ...

    @property
    def output_data(self) -> dict[str, Any] | None: ...

    @property
    def error_code(self) -> str | None: ...

    @property
    def error_message(self) -> str | None: ...

    @property
    def validation_errors(self) -> list[dict[str, Any]]: ...


def describe(outcome: Outcome) -> str:
    """Return a short account of an error outcome: code, HTTP status, message, each field."""
    status = getattr(outcome, "status_code", None) or getattr(outcome, "http_status", None)
    lines = [
        f"{outcome.error_code or 'no error code'}"
        + (f" (HTTP {status})" if status is not None else "")
        + f": {outcome.error_message or 'no error message'}"
    ]
    lines.extend(
        f"  - {issue.get('path') or '(input)'}: [{issue.get('code')}] {issue.get('message')}"
        for issue in outcome.validation_errors
    )
    return "\n".join(lines)


def assert_success(outcome: Outcome) -> dict[str, Any]:
    """Assert that an execution succeeded and return its ``output_data``."""
    __tracebackhide__ = True
    if not outcome.ok:
        raise AssertionError(f"expected a success, got {describe(outcome)}")
    return outcome.output_data or {}


def assert_validation_error(
    outcome: Outcome, field: str, code: str | None = None
) -> dict[str, Any]:
    """Assert a ``VALIDATION_ERROR`` that names ``field`` (with ``code``, when given).

    ``field`` is the issue's path as the server reports it: ``city``, ``address.zip``,
    ``tags[0]``. Returns the matching ``{path, code, message}``.
    """
    __tracebackhide__ = True
    if outcome.ok:
        raise AssertionError(f"expected a validation error on {field!r}, got a success")
    if outcome.error_code != "VALIDATION_ERROR":
        raise AssertionError(f"expected a validation error on {field!r}, got {describe(outcome)}")
    for issue in outcome.validation_errors:
        if issue.get("path") == field and (code is None or issue.get("code") == code):
            return issue
    wanted = f"{field!r} with code {code!r}" if code else repr(field)
    raise AssertionError(f"expected a validation error on {wanted}, got {describe(outcome)}")
