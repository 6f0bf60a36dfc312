"""The error tree: wire codes, HTTP statuses and types as class data, and the error body."""

from __future__ import annotations

import pytest

from ai_spine_tools import (
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    EndpointNotFoundError,
    ExecutionError,
    ExecutionTimeoutError,
    InvalidJSONError,
    OverloadedError,
    PayloadTooLargeError,
    RateLimitError,
    ServerConfigurationError,
    ServiceUnavailableError,
    ToolDefinitionError,
    ToolError,
    UnsupportedContentTypeError,
    ValidationError,
    ValidationIssue,
)
from ai_spine_tools.exceptions import MethodNotAllowedError, status_for

TREE: list[tuple[type[ToolError], str, int, bool]] = [
    (ToolError, "EXECUTION_ERROR", 500, False),
    (ValidationError, "VALIDATION_ERROR", 400, False),
    (InvalidJSONError, "INVALID_JSON", 400, False),
    (ConfigurationError, "CONFIGURATION_ERROR", 400, False),
    (ServerConfigurationError, "CONFIGURATION_ERROR", 500, False),
    (ToolDefinitionError, "TOOL_DEFINITION_ERROR", 500, False),
    (AuthenticationError, "AUTHENTICATION_REQUIRED", 401, False),
    (EndpointNotFoundError, "ENDPOINT_NOT_FOUND", 404, False),
    (MethodNotAllowedError, "METHOD_NOT_ALLOWED", 405, False),
    (ExecutionTimeoutError, "TIMEOUT_ERROR", 408, True),
    (PayloadTooLargeError, "PAYLOAD_TOO_LARGE", 413, False),
    (UnsupportedContentTypeError, "INVALID_CONTENT_TYPE", 415, False),
    (RateLimitError, "RATE_LIMIT_EXCEEDED", 429, True),
    (ExecutionError, "EXECUTION_ERROR", 500, False),
    (ServiceUnavailableError, "SERVICE_UNAVAILABLE", 503, True),
    (CircuitOpenError, "CIRCUIT_OPEN", 503, True),
    (OverloadedError, "OVERLOADED", 503, True),
]


@pytest.mark.parametrize(("cls", "code", "status", "retryable"), TREE)
def test_each_error_carries_its_wire_code_and_status(
    cls: type[ToolError], code: str, status: int, retryable: bool
) -> None:
    assert (cls.code, cls.status, cls.retryable) == (code, status, retryable)
    assert issubclass(cls, ToolError)


@pytest.mark.parametrize(("cls", "code", "status", "retryable"), TREE)
def test_status_for_maps_each_code_to_its_status(
    cls: type[ToolError], code: str, status: int, retryable: bool
) -> None:
    if code != "CONFIGURATION_ERROR":  # one code, two statuses: the request's one is listed
        assert status_for(code, "made_up") == status


def test_validation_and_definition_errors_are_also_builtin_errors() -> None:
    assert issubclass(ValidationError, ValueError)
    assert issubclass(ToolDefinitionError, TypeError)


def test_to_dict_is_the_error_part_of_the_envelope() -> None:
    error = RateLimitError("Too many requests", retry_after_ms=1000, details={"limit": 100})
    assert error.to_dict() == {
        "error_code": "RATE_LIMIT_EXCEEDED",
        "error_message": "Too many requests",
        "error_type": "rate_limit_error",
        "error_details": {"limit": 100},
        "retryable": True,
        "retry_after_ms": 1000,
    }
    assert "retry_after_ms" not in ToolError("x").to_dict()


def test_instance_options_override_class_data() -> None:
    error = ToolError("m", code="C", status=418, type="t", retryable=True)
    assert (error.code, error.status, error.type, error.retryable) == ("C", 418, "t", True)
    assert ToolError.code == "EXECUTION_ERROR"


def test_validation_error_lists_every_issue_and_summarises() -> None:
    issues = [ValidationIssue(f"f{i}", "type", f"'f{i}' must be a string") for i in range(7)]
    error = ValidationError(issues, subject="config")
    assert error.message.startswith("Invalid config: 7 fields are invalid: 'f0' must be")
    assert error.message.endswith("; and 2 more")
    assert error.details == {"errors": [issue.to_dict() for issue in issues]}


@pytest.mark.parametrize(
    ("count", "dropped", "message"),
    [
        (0, 0, "Invalid input"),
        (0, 3, "Invalid input: 3 fields are invalid (none shown)"),
        (0, 1, "Invalid input: 1 field is invalid (none shown)"),
        (2, 1, "Invalid input: 3 fields are invalid: 'f0' is bad; 'f1' is bad; and 1 more"),
    ],
)
def test_validation_error_message_counts_what_it_was_given(
    count: int, dropped: int, message: str
) -> None:
    issues = [ValidationIssue(f"f{i}", "type", f"'f{i}' is bad") for i in range(count)]
    assert ValidationError(issues, dropped=dropped).message == message


def test_validation_error_with_one_issue_uses_its_message() -> None:
    error = ValidationError([ValidationIssue("city", "required", "'city' is required")])
    assert error.message == "Invalid input: 'city' is required"
    assert error.issues[0].to_dict() == {
        "path": "city",
        "code": "required",
        "message": "'city' is required",
    }
