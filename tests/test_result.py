"""``ToolResult`` and ``normalise_result``: success and error results, and the seed's dict shape."""

from __future__ import annotations

from typing import Any

import pytest

from ai_spine_tools import ExecutionError, RateLimitError, ToolError, ToolResult
from ai_spine_tools.core._result import normalise_result


def test_success_carries_data_and_metadata() -> None:
    result = ToolResult.success({"a": 1}, metadata={"cached": True})
    assert result.ok
    assert result.status == "success"
    assert result.data == {"a": 1}
    assert result.metadata == {"cached": True}
    assert result.failure is None
    assert result.error_code is None
    assert result.error_message is None
    assert result.raise_for_error() is result


def test_error_carries_a_tool_error() -> None:
    result = ToolResult.error(
        "UPSTREAM_DOWN",
        "The weather API is down",
        type="network_error",
        retryable=True,
        retry_after_ms=2000,
        details={"provider": "acme"},
    )
    assert not result.ok
    assert result.status == "error"
    assert result.error_code == "UPSTREAM_DOWN"
    assert result.error_message == "The weather API is down"
    assert result.failure is not None
    assert result.failure.status == 503
    assert result.failure.to_dict() == {
        "error_code": "UPSTREAM_DOWN",
        "error_message": "The weather API is down",
        "error_type": "network_error",
        "error_details": {"provider": "acme"},
        "retryable": True,
        "retry_after_ms": 2000,
    }
    with pytest.raises(ToolError, match="weather API is down"):
        result.raise_for_error()


STATUSES: list[tuple[str, str, int | None, int]] = [
    ("VALIDATION_ERROR", "execution_error", None, 400),
    ("RATE_LIMIT_EXCEEDED", "execution_error", None, 429),
    ("TIMEOUT_ERROR", "execution_error", None, 408),
    ("CIRCUIT_OPEN", "execution_error", None, 503),
    ("AUTHENTICATION_REQUIRED", "execution_error", None, 401),
    ("MY_CODE", "validation_error", None, 400),
    ("MY_CODE", "authorization_error", None, 403),
    ("MY_CODE", "not_found", None, 404),
    ("MY_CODE", "timeout_error", None, 408),
    ("MY_CODE", "rate_limit_error", None, 429),
    ("MY_CODE", "network_error", None, 503),
    ("MY_CODE", "execution_error", None, 500),
    ("MY_CODE", "made_up_type", None, 500),
    ("MY_CODE", "execution_error", 418, 418),
    ("VALIDATION_ERROR", "validation_error", 422, 422),
]


@pytest.mark.parametrize(("code", "error_type", "http_status", "expected"), STATUSES)
def test_error_http_status_follows_code_then_type(
    code: str, error_type: str, http_status: int | None, expected: int
) -> None:
    result = ToolResult.error(code, "m", type=error_type, http_status=http_status)
    assert result.failure is not None
    assert result.failure.status == expected


def test_from_exception_keeps_the_exception() -> None:
    error = RateLimitError("slow down", retry_after_ms=10)
    result = ToolResult.from_exception(error)
    assert result.failure is error
    assert result.error_code == "RATE_LIMIT_EXCEEDED"


NORMALISED_SUCCESSES: list[tuple[Any, Any]] = [
    ({"a": 1}, {"a": 1}),
    ([], []),
    (0, 0),
    (None, None),
    ({"status": "success"}, None),
    ({"status": "success", "data": [1]}, [1]),
    ({"status": "pending", "data": 1}, {"status": "pending", "data": 1}),
    ({"status": "success", "data": 1, "extra": 2}, {"status": "success", "data": 1, "extra": 2}),
]


@pytest.mark.parametrize(("value", "data"), NORMALISED_SUCCESSES)
def test_normalise_result_reads_success_values(value: Any, data: Any) -> None:
    result = normalise_result(value)
    assert result.ok
    assert result.data == data


def test_normalise_result_passes_a_tool_result_through() -> None:
    result = ToolResult.error("X", "y")
    assert normalise_result(result) is result


def test_normalise_result_keeps_seed_metadata() -> None:
    result = normalise_result({"status": "success", "data": 1, "metadata": {"cache": "hit"}})
    assert result.metadata == {"cache": "hit"}


NORMALISED_ERRORS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"status": "error", "error": {"code": "E", "message": "m", "type": "network_error"}},
        {"error_code": "E", "error_message": "m", "error_type": "network_error"},
    ),
    (
        {"status": "error", "error": {"code": "E", "retryAfterMs": 1000, "retryable": True}},
        {"error_code": "E", "retry_after_ms": 1000, "retryable": True},
    ),
    ({"status": "error", "error": {"retry_after_ms": 5.7}}, {"retry_after_ms": 5}),
    ({"status": "error", "error": {"retry_after_ms": True}}, {"retry_after_ms": None}),
    (
        {"status": "error", "error": {"details": {"k": 1}}},
        {"error_details": {"k": 1}, "error_code": "EXECUTION_ERROR"},
    ),
    ({"status": "error", "error": {"details": "text"}}, {"error_details": {}}),
    (
        {"status": "error", "error": "boom"},
        {"error_message": "boom", "error_code": "EXECUTION_ERROR"},
    ),
    (
        {"status": "error"},
        {"error_message": "Tool execution failed", "error_type": "execution_error"},
    ),
]


@pytest.mark.parametrize(("value", "expected"), NORMALISED_ERRORS)
def test_normalise_result_reads_the_seed_error_shape(
    value: dict[str, Any], expected: dict[str, Any]
) -> None:
    result = normalise_result(value)
    assert result.failure is not None
    body = result.failure.to_dict()
    body.setdefault("retry_after_ms", None)
    for key, want in expected.items():
        assert body[key] == want


def test_results_are_frozen() -> None:
    result = ToolResult.success(1)
    with pytest.raises(AttributeError):
        result.data = 2  # type: ignore[misc]


def test_execution_error_is_the_default_error() -> None:
    assert ExecutionError("x").code == ToolError("x").code == "EXECUTION_ERROR"
