"""ai-spine-tools: build fast, production-ready AI Spine tools in Python.

Declare a tool with ``create_tool`` (or ``@tool``) and field builders; run it in-process with
``await tool.run(input)`` or serve it over HTTP with ``tool.serve()`` / ``ai-spine serve``.
"""

from __future__ import annotations

from ai_spine_tools._version import __version__
from ai_spine_tools.core._context import SecurityContext, ToolContext
from ai_spine_tools.core._decorator import tool
from ai_spine_tools.core._metadata import ToolMetadata
from ai_spine_tools.core._result import ToolResult
from ai_spine_tools.core._tool import Tool, create_tool
from ai_spine_tools.exceptions import (
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    EndpointNotFoundError,
    ExecutionError,
    ExecutionTimeoutError,
    InvalidJSONError,
    OutputNotSerializableError,
    OverloadedError,
    PayloadTooLargeError,
    RateLimitError,
    ServerConfigurationError,
    ServiceUnavailableError,
    ToolDefinitionError,
    ToolError,
    UnpicklableError,
    UnsupportedContentTypeError,
    UpstreamConnectionError,
    UpstreamDecodeError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    ValidationError,
    ValidationIssue,
    WorkerCrashedError,
)
from ai_spine_tools.fields import (
    api_key_field,
    array_field,
    boolean_field,
    date_field,
    datetime_field,
    email_field,
    enum_field,
    file_field,
    integer_field,
    json_field,
    number_field,
    object_field,
    secret_field,
    string_field,
    time_field,
    url_field,
    uuid_field,
)
from ai_spine_tools.outbound._http_client import HTTPClient, HTTPTimeout
from ai_spine_tools.outbound._http_response import HTTPResponse, StreamedHTTPResponse
from ai_spine_tools.resilience._batch import map_concurrent
from ai_spine_tools.resilience._breaker import CircuitBreaker
from ai_spine_tools.resilience._retry import retry
from ai_spine_tools.security._auth import sign_request

__all__ = [
    "AuthenticationError",
    "CircuitBreaker",
    "CircuitOpenError",
    "ConfigurationError",
    "EndpointNotFoundError",
    "ExecutionError",
    "ExecutionTimeoutError",
    "HTTPClient",
    "HTTPResponse",
    "HTTPTimeout",
    "InvalidJSONError",
    "OutputNotSerializableError",
    "OverloadedError",
    "PayloadTooLargeError",
    "RateLimitError",
    "SecurityContext",
    "ServerConfigurationError",
    "ServiceUnavailableError",
    "StreamedHTTPResponse",
    "Tool",
    "ToolContext",
    "ToolDefinitionError",
    "ToolError",
    "ToolMetadata",
    "ToolResult",
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
    "__version__",
    "api_key_field",
    "array_field",
    "boolean_field",
    "create_tool",
    "date_field",
    "datetime_field",
    "email_field",
    "enum_field",
    "file_field",
    "integer_field",
    "json_field",
    "map_concurrent",
    "number_field",
    "object_field",
    "retry",
    "secret_field",
    "sign_request",
    "string_field",
    "time_field",
    "tool",
    "url_field",
    "uuid_field",
]
