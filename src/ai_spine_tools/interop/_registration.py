"""The AI Spine platform registration of a tool: what ``ai-spine schema --format
spine-registration`` prints, so that a tool is registered without retyping its schema.

The shape follows the platform's agent registration (``agent_id``, ``name``, ``description``,
``endpoint``, ``capabilities``, ``environment_schema``) and adds the input as a list of typed
properties in the SDK's own vocabulary: each has ``name``, ``type`` (the AI Spine field types:
``string``, ``number``, ``boolean``, ``enum``, ``array``, ``object``, ``date``, ``datetime``,
``time``, ``email``, ``url``, ``uuid``, ``file``, ``json``), ``required``, a ``description``
(written from the constraints when the field has none), ``sensitive`` for secrets, and its
constraints under the SDK's keyword names. Config fields become the ``environment_schema`` the
platform fills per user (``type`` ``string``, ``number``, ``boolean`` or ``password``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import msgspec

from ai_spine_tools.exceptions import ToolDefinitionError
from ai_spine_tools.fields import (
    MISSING,
    ArrayField,
    BooleanField,
    DateField,
    DateTimeField,
    EmailField,
    EnumField,
    Field,
    FileField,
    JSONField,
    NumberField,
    ObjectField,
    StringField,
    TimeField,
    URLField,
    UUIDField,
)
from ai_spine_tools.interop._export import describe_keyword

if TYPE_CHECKING:
    from ai_spine_tools.interop._described import Described

__all__ = ["ENDPOINT_PLACEHOLDER", "spine_registration"]

ENDPOINT_PLACEHOLDER = "https://<your-tool-host>"
"""Stands for the tool's public URL when none is given; not a URL, so it cannot be registered."""


def spine_registration(tool: Described, endpoint: str | None = None) -> dict[str, Any]:
    """Return what the AI Spine platform's tool registration takes, for ``tool``.

    ``endpoint`` is the tool's public base URL (the platform calls ``{endpoint}/api/execute``);
    without one, ``ENDPOINT_PLACEHOLDER`` stands in. The input is a list of typed properties, each
    with a description; config fields are the ``environment_schema`` the platform fills per user.
    """
    base = ENDPOINT_PLACEHOLDER if endpoint is None else _endpoint(endpoint)
    metadata = tool.metadata
    out: dict[str, Any] = {
        "agent_id": tool.name,
        "name": tool.name,
        "description": metadata.description,
        "version": tool.version,
        "type": "tool",
        "endpoint": base,
        "execute_url": f"{base}/api/execute",
        "health_url": f"{base}/health",
        "schema_url": f"{base}/schema",
        "capabilities": list(metadata.capabilities),
        "input_schema": [_property(key, field) for key, field in tool.input_schema.fields.items()],
        "environment_schema": {
            key: _environment(field) for key, field in tool.config_schema.fields.items()
        },
    }
    if metadata.tags:
        out["tags"] = list(metadata.tags)
    return out


def _endpoint(endpoint: str) -> str:
    base = endpoint.strip().rstrip("/")
    base = base.removesuffix("/api/execute")
    if not re.fullmatch(r"https?://[^\s/?#]+(?:/[^\s?#]*)?", base):
        raise ToolDefinitionError(
            f"endpoint must be the tool's http(s) base URL, such as https://tools.example.com "
            f"(got {endpoint!r})"
        )
    return base


_SAID_IN_WORDS = frozenset(
    {"minLength", "maxLength", "minimum", "maximum", "multipleOf", "minItems", "maxItems"}
)

_KINDS: tuple[tuple[type[Field], str], ...] = (
    (FileField, "file"),
    (EmailField, "email"),
    (URLField, "url"),
    (StringField, "string"),
    (EnumField, "enum"),
    (NumberField, "number"),
    (BooleanField, "boolean"),
    (ArrayField, "array"),
    (ObjectField, "object"),
    (DateTimeField, "datetime"),
    (DateField, "date"),
    (TimeField, "time"),
    (UUIDField, "uuid"),
    (JSONField, "json"),
)
"""Field classes by the AI Spine type names (the TypeScript SDK's ``ToolInputFieldType``);
subclasses first."""


def _kind(field: Field) -> str:
    for cls, name in _KINDS:
        if isinstance(field, cls):
            return name
    return "json"


def _property(name: str | None, field: Field) -> dict[str, Any]:
    """One typed property of the registration's input schema (``name`` is ``None`` for the
    ``items`` of an array)."""
    kind = _kind(field)
    out: dict[str, Any] = {} if name is None else {"name": name}
    out["type"] = kind
    out["required"] = field.required
    out["description"] = _description(kind, field)
    if field.sensitive:
        out["sensitive"] = True  # and neither its default nor its example is shown
    else:
        if field.fills_default:
            out["default"] = _builtins(field.default)
        if field.example is not MISSING:
            out["example"] = _builtins(field.example)
    out.update(_constraints(field))
    if isinstance(field, EnumField):
        out["enum"] = list(field.values)
    elif isinstance(field, ArrayField) and field.items is not None:
        out["items"] = _property(None, field.items)
    elif isinstance(field, ObjectField) and field.properties is not None:
        out["properties"] = [_property(key, sub) for key, sub in field.properties.items()]
        out["additional_properties"] = field.unknown == "ignore"
    return out


def _constraints(field: Field) -> dict[str, Any]:
    """The field's own rules, under the snake_case names of the SDK's keyword arguments."""
    if isinstance(field, StringField):
        names = ["min_length", "max_length", "pattern"]
        if type(field) is StringField:  # email, url and secret fields say it by their type
            names.append("format")
        found = {name: getattr(field, name) for name in names}
        found["transform"] = field.transform
        if isinstance(field, URLField) and field.schemes != ("http", "https"):
            found["schemes"] = list(field.schemes)
    elif isinstance(field, NumberField):
        found = {
            "integer": field.integer or None,
            "min": field.min,
            "max": field.max,
            "multiple_of": field.multiple_of,
            "precision": None if field.integer else field.precision,
        }
    elif isinstance(field, ArrayField):
        found = {
            "min_items": field.min_items,
            "max_items": field.max_items,
            "unique_items": field.unique_items or None,
        }
    elif isinstance(field, ObjectField):
        found = {"max_properties": field.max_properties}
    elif isinstance(field, FileField):
        found = {
            "max_size": field.max_size,
            "allowed_types": None if field.allowed_types is None else list(field.allowed_types),
        }
    elif isinstance(field, DateField | DateTimeField | TimeField):
        found = {
            "min": None if field.min is None else field.min.isoformat(),
            "max": None if field.max is None else field.max.isoformat(),
        }
    else:
        found = {}
    return {key: value for key, value in found.items() if value is not None}


def _description(kind: str, field: Field) -> str:
    """The field's description, or one in words for a field declared without it."""
    if field.description:
        return field.description
    noun = {
        "json": "any JSON value",
        "url": "a URL",
        "uuid": "a UUID",
        "enum": "one of the listed values",
        "datetime": "a date-time (ISO 8601)",
        "date": "a date (YYYY-MM-DD)",
        "time": "a time of day (HH:MM:SS)",
        "file": "a file (base64 content)",
        "email": "an email address",
        "array": "an array",
        "object": "an object",
        "integer": "an integer",
    }.get(kind, f"a {kind}")
    if field.sensitive:
        noun = "a secret string"
    elif isinstance(field, NumberField) and field.integer:
        noun = "an integer"
    schema = field.json_schema()
    notes = [describe_keyword(key, value) for key, value in schema.items() if key in _SAID_IN_WORDS]
    return " ".join([noun[0].upper() + noun[1:] + ".", *(note for note in notes if note)])


def _builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


def _environment(field: Field) -> dict[str, Any]:
    """One config field as the platform's environment schema describes one
    (``type`` is ``string``, ``number``, ``boolean`` or ``password``)."""
    if field.sensitive:
        kind = "password"
    elif isinstance(field, BooleanField):
        kind = "boolean"
    elif isinstance(field, NumberField):
        kind = "number"
    else:
        kind = "string"
    out: dict[str, Any] = {
        "type": kind,
        "description": _description(_kind(field), field),
        "required": field.required,
    }
    if field.sensitive:
        out["sensitive"] = True
    elif field.fills_default:
        out["default_value"] = _builtins(field.default)
    if isinstance(field, EnumField):
        out["enum"] = list(field.values)
    if field.env:
        out["env"] = field.env
    if field.overridable:
        out["overridable"] = True
    return out
