"""ai-spine-tools: build fast, production-ready AI Spine tools in Python.

Declare a tool with ``create_tool`` (or ``@tool``) and field builders; run it in-process with
``await tool.run(input)`` or serve it over HTTP with ``tool.serve()`` / ``ai-spine serve``;
serve several in one server with ``serve_tools([...])`` / ``ai-spine serve a.py b.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ai_spine_tools._version import __version__
from ai_spine_tools.core._context import SecurityContext, ToolContext
from ai_spine_tools.core._create import create_tool
from ai_spine_tools.core._decorator import tool
from ai_spine_tools.core._metadata import ToolMetadata
from ai_spine_tools.core._result import ToolResult
from ai_spine_tools.core._tool import Tool
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
    ToolUnavailableError,
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
    "ToolUnavailableError",
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
    "serve_tools",
    "sign_request",
    "string_field",
    "time_field",
    "tool",
    "tools_asgi",
    "url_field",
    "uuid_field",
]


def tools_asgi(
    tools: Sequence[Tool],
    *,
    api_keys: Mapping[str, Sequence[str]] | None = None,
    **settings: Any,
) -> Any:
    """Return the ASGI application serving ``tools`` together, each under ``/<tool name>`` (one
    tool: at the root, as ``tool.asgi()``). ``api_keys`` gives tools keys of their own; other
    settings override the environment (``ServerSettings`` names)."""
    from ai_spine_tools._settings import ServerSettings
    from ai_spine_tools.server._server import build_app
    from ai_spine_tools.server._suite import check_names

    listed = list(tools)
    check_names(listed)
    return build_app(listed, ServerSettings.from_env().replace(**settings), api_keys=api_keys)


def serve_tools(
    tools: Sequence[Tool | str],
    host: str | None = None,
    port: int | None = None,
    *,
    workers: int | None = None,
    log_level: str | None = None,
    api_keys: Mapping[str, Sequence[str]] | None = None,
    strict_startup: bool | None = None,
) -> None:
    """Serve ``tools`` (tools, or targets such as ``tools/weather.py`` or ``tools/``) in one
    server until stopped: each with the whole HTTP contract under ``/<tool name>``, the server's
    own ``/health``, ``/ready``, ``/metrics`` and tool list at the root."""
    from ai_spine_tools.server._server import serve

    serve(
        list(tools),
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        api_keys=api_keys,
        strict_startup=strict_startup,
    )
