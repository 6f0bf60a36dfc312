"""The one error tree of ai-spine-tools.

Every error the SDK raises or maps onto the wire derives from ``ToolError``. Each class carries its
wire ``code``, its HTTP ``status`` and its error ``type`` as class data, so the server turns any
``ToolError`` into a response in one place.

    ToolError                          EXECUTION_ERROR        500
    ├── ValidationError (ValueError)   VALIDATION_ERROR       400
    ├── InvalidJSONError               INVALID_JSON           400
    ├── ConfigurationError             CONFIGURATION_ERROR    400  (a request's config)
    │   └── ServerConfigurationError   CONFIGURATION_ERROR    500  (the server's own settings)
    │       ├── UnknownSettingError    CONFIGURATION_ERROR    500  (a near miss of a security
    │       │                                                      setting: start-up stops)
    │       └── MissingExtraError (ImportError)
    │                                  CONFIGURATION_ERROR    500  (an optional package missing)
    ├── ToolDefinitionError (TypeError) TOOL_DEFINITION_ERROR 500  (raised while declaring a tool)
    ├── AuthenticationError            AUTHENTICATION_REQUIRED 401
    ├── EndpointNotFoundError          ENDPOINT_NOT_FOUND     404
    ├── MethodNotAllowedError          METHOD_NOT_ALLOWED     405
    ├── ExecutionTimeoutError          TIMEOUT_ERROR          408  retryable
    ├── RequestTimeoutError            REQUEST_TIMEOUT        408  (the client sent too slowly)
    ├── PayloadTooLargeError           PAYLOAD_TOO_LARGE      413
    ├── UnsupportedContentTypeError    INVALID_CONTENT_TYPE   415
    ├── RateLimitError                 RATE_LIMIT_EXCEEDED    429  retryable
    ├── HeadersTooLargeError           HEADERS_TOO_LARGE      431
    ├── ExecutionError                 EXECUTION_ERROR        500
    │   ├── OutputNotSerializableError OUTPUT_NOT_SERIALIZABLE 500 (a value JSON cannot hold)
    │   ├── UnpicklableError (TypeError) EXECUTION_ERROR      500  (a to_process call or result)
    │   └── WorkerCrashedError         EXECUTION_ERROR        500  (a process-pool worker died)
    ├── ServiceUnavailableError        SERVICE_UNAVAILABLE    503  retryable
    │   ├── CircuitOpenError           CIRCUIT_OPEN           503  retryable
    │   ├── OverloadedError            OVERLOADED             503  retryable
    │   └── ToolUnavailableError       TOOL_UNAVAILABLE       503  (its setup failed, in a suite)
    └── UpstreamError                  UPSTREAM_ERROR         502  (a call through context.http)
        ├── UpstreamStatusError        UPSTREAM_ERROR         502  retryable for 408/425/429/5xx
        ├── UpstreamDecodeError (ValueError) UPSTREAM_ERROR   502  (.json() of a body not JSON)
        ├── UpstreamConnectionError (ConnectionError)
        │                              UPSTREAM_UNAVAILABLE   503  retryable
        └── UpstreamTimeoutError (TimeoutError)
                                       UPSTREAM_TIMEOUT       504  retryable

Tool code may raise any of these (or a subclass with its own ``code``). A connection error or a
timeout of another client escaping ``execute`` (aiohttp's, httpx's, redis's, asyncpg's, or the
builtin ``ConnectionError`` and ``TimeoutError``) becomes an ``UpstreamConnectionError`` or an
``UpstreamTimeoutError``; anything else raised from ``execute`` becomes an ``ExecutionError``
whose message hides the internals unless debug is on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AuthenticationError",
    "CircuitOpenError",
    "ConfigurationError",
    "EndpointNotFoundError",
    "ExecutionError",
    "ExecutionTimeoutError",
    "HeadersTooLargeError",
    "InvalidJSONError",
    "MethodNotAllowedError",
    "MissingExtraError",
    "OutputNotSerializableError",
    "OverloadedError",
    "PayloadTooLargeError",
    "RateLimitError",
    "RequestTimeoutError",
    "ServerConfigurationError",
    "ServiceUnavailableError",
    "ToolDefinitionError",
    "ToolError",
    "ToolUnavailableError",
    "UnknownSettingError",
    "UnpicklableError",
    "UnsupportedContentTypeError",
    "UpstreamConnectionError",
    "UpstreamDecodeError",
    "UpstreamError",
    "UpstreamStatusError",
    "UpstreamTimeoutError",
    "ValidationError",
    "ValidationIssue",
    "WorkerCrashedError",
    "status_for",
]


class ToolError(Exception):
    """Base of every error with a wire code, an HTTP status and an error type."""

    code: str = "EXECUTION_ERROR"
    status: int = 500
    type: str = "execution_error"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        retry_after_ms: int | None = None,
        code: str | None = None,
        status: int | None = None,
        type: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details) if details else {}
        self.retry_after_ms = retry_after_ms
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if retryable is not None:
            self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        """Return the error fields of the response envelope."""
        body: dict[str, Any] = {
            "error_code": self.code,
            "error_message": self.message,
            "error_type": self.type,
            "error_details": self.details,
            "retryable": self.retryable,
        }
        if self.retry_after_ms is not None:
            body["retry_after_ms"] = self.retry_after_ms
        return body


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One failing field: where it is, a stable code, and a message for people."""

    path: str
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """Return the issue as ``{path, code, message}``."""
        return {"path": self.path, "code": self.code, "message": self.message}


class ValidationError(ToolError, ValueError):
    """Input did not match the tool's schema; ``issues`` lists every failing field."""

    code = "VALIDATION_ERROR"
    status = 400
    type = "validation_error"

    def __init__(
        self, issues: Iterable[ValidationIssue], *, subject: str = "input", dropped: int = 0
    ) -> None:
        self.issues = tuple(issues)
        count = len(self.issues) + dropped
        shown = [issue.message for issue in self.issues[:5]]
        if count == 1 and shown:
            message = f"Invalid {subject}: {shown[0]}"
        elif count == 0:  # raised without issues: nothing to count or quote
            message = f"Invalid {subject}"
        else:
            message = f"Invalid {subject}: " + (
                "1 field is invalid" if count == 1 else f"{count} fields are invalid"
            )
            if shown:
                message += ": " + "; ".join(shown)
            if count > len(shown):
                message += f"; and {count - len(shown)} more" if shown else " (none shown)"
        details: dict[str, Any] = {"errors": [issue.to_dict() for issue in self.issues]}
        if dropped:
            details["errors_not_shown"] = dropped
        super().__init__(message, details=details)


def status_for(code: str, error_type: str) -> int:
    """Return the HTTP status for an error ``code``, falling back on its ``error_type``."""
    known = _STATUS_BY_CODE.get(code)
    if known is not None:
        return known
    return _STATUS_BY_TYPE.get(error_type, 500)


class InvalidJSONError(ToolError):
    """The request body is not well-formed JSON (or not UTF-8)."""

    code = "INVALID_JSON"
    status = 400
    type = "validation_error"


class ConfigurationError(ToolError):
    """The configuration sent with a request is missing or invalid."""

    code = "CONFIGURATION_ERROR"
    status = 400
    type = "configuration_error"


class ServerConfigurationError(ConfigurationError):
    """The server's own settings (environment, ``configure``) are invalid."""

    status = 500


class UnknownSettingError(ServerConfigurationError):
    """An environment variable is a near miss of a security setting (``AI_SPINE_API_KEY`` for
    ``AI_SPINE_API_KEYS``): serving would leave open what was meant to be closed, so start-up
    stops (exit status 2) unless ``AI_SPINE_ALLOW_UNKNOWN_SETTINGS=true``."""


class MissingExtraError(ServerConfigurationError, ImportError):
    """A feature needs an optional package that is not installed; the message names the extra
    that installs it (``pip install 'ai-spine-tools[redis]'``)."""

    def __init__(
        self, feature: str, package: str, extra: str, *, variable: str | None = None
    ) -> None:
        details = {"extra": extra} if variable is None else {"extra": extra, "variable": variable}
        super().__init__(
            f"{feature} needs {package}, which is not installed: "
            f"pip install 'ai-spine-tools[{extra}]'",
            details=details,
        )
        self.extra = extra


class ToolDefinitionError(ToolError, TypeError):
    """A tool, field or schema was declared wrongly; raised when it is declared."""

    code = "TOOL_DEFINITION_ERROR"
    status = 500
    type = "configuration_error"


class AuthenticationError(ToolError):
    """The request carries no valid API key."""

    code = "AUTHENTICATION_REQUIRED"
    status = 401
    type = "authentication_error"


class EndpointNotFoundError(ToolError):
    """No route matches the request path."""

    code = "ENDPOINT_NOT_FOUND"
    status = 404
    type = "client_error"


class MethodNotAllowedError(ToolError):
    """The route exists but not for this HTTP method."""

    code = "METHOD_NOT_ALLOWED"
    status = 405
    type = "client_error"


class ExecutionTimeoutError(ToolError):
    """The execution passed its deadline and was cancelled."""

    code = "TIMEOUT_ERROR"
    status = 408
    type = "timeout_error"
    retryable = True


class RequestTimeoutError(ToolError):
    """The client did not send its whole request (headers and body) in time."""

    code = "REQUEST_TIMEOUT"
    status = 408
    type = "client_error"


class HeadersTooLargeError(ToolError):
    """The request line and headers are larger than the server accepts."""

    code = "HEADERS_TOO_LARGE"
    status = 431
    type = "client_error"


class PayloadTooLargeError(ToolError):
    """The request body is larger than the server accepts."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413
    type = "client_error"


class UnsupportedContentTypeError(ToolError):
    """The request body is not sent as JSON."""

    code = "INVALID_CONTENT_TYPE"
    status = 415
    type = "client_error"


class RateLimitError(ToolError):
    """The caller sent more requests than its rate limit allows."""

    code = "RATE_LIMIT_EXCEEDED"
    status = 429
    type = "rate_limit_error"
    retryable = True


class ExecutionError(ToolError):
    """The tool failed while executing."""


class OutputNotSerializableError(ExecutionError):
    """``execute`` returned a value JSON cannot hold (``NaN``, an infinity, an object of an
    unsupported type); the message names its path in ``output_data``."""

    code = "OUTPUT_NOT_SERIALIZABLE"


class UnpicklableError(ExecutionError, TypeError):
    """A call sent to the process pool (its function, an argument or its result) cannot be
    pickled; the message says which and what must be picklable."""


class WorkerCrashedError(ExecutionError):
    """The process-pool worker running a call died (a crash, ``os._exit``, a kill); the pool
    replaces it."""


class ServiceUnavailableError(ToolError):
    """A dependency of the tool is unavailable; try again later."""

    code = "SERVICE_UNAVAILABLE"
    status = 503
    type = "network_error"
    retryable = True


class CircuitOpenError(ServiceUnavailableError):
    """A circuit breaker is open: the dependency failed too often recently."""

    code = "CIRCUIT_OPEN"


class OverloadedError(ServiceUnavailableError):
    """The instance is running as many executions as it allows."""

    code = "OVERLOADED"
    type = "overloaded_error"


class ToolUnavailableError(ServiceUnavailableError):
    """The tool cannot serve: its ``setup`` failed when the server (a suite) started; the other
    tools of the suite serve. Retrying here helps only once the server has restarted."""

    code = "TOOL_UNAVAILABLE"
    type = "execution_error"
    retryable = False


class UpstreamError(ToolError):
    """A call to another service through ``context.http`` failed.

    Its message names the method, host and path (never the query or credentials);
    ``response`` is the upstream's answer when there was one.
    """

    code = "UPSTREAM_ERROR"
    status = 502
    type = "network_error"

    def __init__(self, message: str, *, response: Any = None, **options: Any) -> None:
        super().__init__(message, **options)
        self.response = response


class UpstreamStatusError(UpstreamError):
    """An upstream answered with a 4xx or 5xx status (``response.raise_for_status()``).

    ``status_code`` is the upstream's status (also in ``details["upstream_status"]``).
    """

    def __init__(self, message: str, *, status_code: int, **options: Any) -> None:
        super().__init__(message, **options)
        self.status_code = status_code
        self.details.setdefault("upstream_status", status_code)


class UpstreamDecodeError(UpstreamError, ValueError):
    """An upstream's body is not what was asked for: ``response.json()`` of a body that is not
    JSON."""


class UpstreamConnectionError(UpstreamError, ConnectionError):
    """No answer came from the upstream: it could not be reached, or it dropped the
    connection."""

    code = "UPSTREAM_UNAVAILABLE"
    status = 503
    retryable = True


class UpstreamTimeoutError(UpstreamError, TimeoutError):
    """The upstream did not answer within the request's timeout."""

    code = "UPSTREAM_TIMEOUT"
    status = 504
    type = "timeout_error"
    retryable = True


_ERRORS: tuple[type[ToolError], ...] = (
    ToolError,
    *ToolError.__subclasses__(),
    CircuitOpenError,
    OverloadedError,
    OutputNotSerializableError,
    ServerConfigurationError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
_STATUS_BY_CODE: dict[str, int] = {}
for _error in _ERRORS:
    _STATUS_BY_CODE.setdefault(_error.code, _error.status)
_STATUS_BY_TYPE = {
    "validation_error": 400,
    "configuration_error": 400,
    "authentication_error": 401,
    "authorization_error": 403,
    "not_found": 404,
    "timeout_error": 408,
    "rate_limit_error": 429,
    "network_error": 503,
}
