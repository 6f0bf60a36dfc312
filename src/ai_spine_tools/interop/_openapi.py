"""The OpenAPI 3.1 document of a tool server, generated once from the tool's fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ai_spine_tools.exceptions import ToolError

if TYPE_CHECKING:
    from ai_spine_tools.interop._described import Described

__all__ = ["openapi_document"]

_ERROR_STATUSES = {
    "400": "Invalid JSON, input or config",
    "401": "Missing or invalid API key",
    "408": "Execution timed out",
    "413": "Request body too large",
    "415": "Request body is not JSON",
    "429": "Rate limit exceeded",
    "500": "Execution failed",
    "503": "Dependency unavailable or instance overloaded",
}

_ERROR_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "execution_id": {"type": ["string", "null"]},
        "status": {"const": "error"},
        "error_code": {"type": "string"},
        "error_message": {"type": "string"},
        "error_type": {"type": "string"},
        "error_details": {"type": "object"},
        "retryable": {"type": "boolean"},
        "retry_after_ms": {"type": "integer"},
        "execution_time_ms": {"type": "number"},
        "timestamp": {"type": "string", "format": "date-time"},
    },
    "required": ["status", "error_code", "error_message", "error_type", "timestamp"],
}


def openapi_document(tool: Described, *, auth: bool) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document describing ``tool``'s routes and its input and config."""
    example = _valid_example(tool)
    execute_body: dict[str, Any] = {
        "type": "object",
        "properties": {
            "input_data": {"$ref": "#/components/schemas/Input"},
            "config": {"$ref": "#/components/schemas/Config"},
            "execution_id": {"type": "string", "minLength": 1, "maxLength": 128},
            "metadata": {"type": "object"},
        },
    }
    # What the server demands of each request, so that every body the document allows is one the
    # server accepts (found by schemathesis): an absent input_data reads as {}, which lacks
    # required input, and config fields the server has no value for must come with the request.
    config_schema = tool.config_schema.json_schema()
    config_schema.pop("required", None)
    per_request = tool.config.required_per_request()
    if per_request:
        config_schema["required"] = list(per_request)
    required = [
        *(["input_data"] if any(f.required for f in tool.input_schema.fields.values()) else []),
        *(["config"] if per_request else []),
    ]
    if required:
        execute_body["required"] = required
    for key, schema in execute_body["properties"].items():
        if key not in required:  # the server reads null as absent
            execute_body["properties"][key] = _or_null(schema)
    media: dict[str, Any] = {"schema": execute_body}
    if example is not None:
        media["example"] = {"input_data": example}
    error_response = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    }
    execute: dict[str, Any] = {
        "operationId": "execute",
        "summary": f"Run {tool.name}",
        "description": tool.metadata.description,
        "requestBody": {"required": True, "content": {"application/json": media}},
        "responses": {
            "200": {
                "description": "Execution succeeded",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Success"}}
                },
            },
            **{
                code: {"description": text, **error_response}
                for code, text in _ERROR_STATUSES.items()
            },
        },
    }
    if auth:
        execute["security"] = [{"ApiKey": []}, {"Bearer": []}]
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": tool.name,
            "version": tool.version,
            "description": tool.metadata.description,
        },
        "paths": {
            "/api/execute": {"post": execute},
            "/health": _probe("health", "Liveness and a summary of the tool's state"),
            "/ready": _probe(
                "ready", "Readiness: setup done, dependencies reachable, not draining"
            ),
            "/schema": _probe("schema", "This OpenAPI document"),
            "/metrics": _probe(
                "metrics", "Execution metrics (JSON, or Prometheus text on request)"
            ),
            "/": _probe("info", "Tool information and the list of endpoints"),
        },
        "components": {
            "schemas": {
                "Input": _nullable_optionals(tool.input_schema.json_schema()),
                "Config": _nullable_optionals(config_schema),
                "Success": {
                    "type": "object",
                    "properties": {
                        "execution_id": {"type": "string"},
                        "status": {"const": "success"},
                        "output_data": {"type": "object"},
                        "execution_time_ms": {"type": "number"},
                        "timestamp": {"type": "string", "format": "date-time"},
                        "metadata": {"type": "object"},
                    },
                    "required": ["execution_id", "status", "output_data", "timestamp"],
                },
                "Error": _ERROR_ENVELOPE,
            },
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "x-tool-metadata": tool.metadata.to_dict(),
    }
    if tool.cache.enabled:  # result caching adds the cache block (and X-Cache: HIT | MISS)
        document["components"]["schemas"]["Success"]["properties"]["cache"] = {
            "type": "object",
            "properties": {
                "hit": {"type": "boolean"},
                "key": {"type": "string"},
                "age_ms": {"type": "number"},
            },
            "required": ["hit", "key", "age_ms"],
        }
    return document


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _nullable_optionals(schema: dict[str, Any]) -> dict[str, Any]:
    """Document that an optional property may be ``null`` (read as absent), at every level."""
    properties = schema.get("properties")
    if isinstance(properties, dict):
        required = set(schema.get("required", ()))
        schema["properties"] = {
            key: _nullable_optionals(value)
            if key in required
            else _or_null(_nullable_optionals(value))
            for key, value in properties.items()
        }
    items = schema.get("items")
    if isinstance(items, dict):
        schema["items"] = _nullable_optionals(items)
    return schema


def _probe(operation: str, summary: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation,
            "summary": summary,
            "responses": {"200": {"description": "OK", "content": {"application/json": {}}}},
        }
    }


def _valid_example(tool: Described) -> dict[str, Any] | None:
    """Return an example input only if it passes the tool's own validation."""
    example = tool.input_schema.example()
    try:
        tool.input_schema.validate(example)
    except ToolError:
        return None
    return example
