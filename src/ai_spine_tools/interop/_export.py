"""One tool, every agent: its input as JSON Schema, as OpenAI and Anthropic function-calling
tools, and as an MCP tool (the AI Spine platform registration is in ``_registration``).

Every export starts from the same place, the JSON Schema the field builders publish
(``Field.json_schema()``), so descriptions, defaults and constraints are declared once. None of
them uses ``$ref``/``$defs`` (several providers reject them): nested objects are written inline.

Strict mode (OpenAI Structured Outputs, Anthropic strict tool use) accepts a subset of JSON Schema.
``strict_schema`` rewrites a schema into a provider's subset: every object closed
(``additionalProperties: false``), for OpenAI every property listed in ``required`` with the
optional ones made nullable (the server reads ``null`` as absent), and each keyword the provider
does not support moved into the description in words ("At most 100 characters."), where the model
still reads it and the server still enforces it. A schema that cannot be rewritten (an open object,
a free-form JSON value, an array of anything) is exported as plain JSON Schema with
``strict: false``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ai_spine_tools.exceptions import ToolDefinitionError

if TYPE_CHECKING:
    from ai_spine_tools.interop._described import Described

__all__ = [
    "ANTHROPIC",
    "DIALECT",
    "OPENAI",
    "NotStrictError",
    "StrictProfile",
    "anthropic_tool",
    "describe_keyword",
    "function_name",
    "input_json_schema",
    "mcp_tool",
    "openai_tool",
    "strict_schema",
]

DIALECT = "https://json-schema.org/draft/2020-12/schema"

_ANY_JSON = ["string", "number", "boolean", "array", "object"]
_FUNCTION_NAME = re.compile(r"[^A-Za-z0-9_-]")


class NotStrictError(ValueError):
    """A schema uses something a provider's strict mode cannot express."""


# -- the input as JSON Schema ----------------------------------------------------------------


def input_json_schema(tool: Described) -> dict[str, Any]:
    """Return the JSON Schema (2020-12) of ``tool``'s input, self-contained (no ``$ref``).

    It is the schema the field builders publish, with one refinement: a required JSON field,
    which takes any value but ``null``, says so with a list of types.
    """
    schema = _refine(tool.input_schema.json_schema())
    return {"$schema": DIALECT, **schema}


def _refine(schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties")
    if isinstance(properties, dict):
        required = set(schema.get("required", ()))
        for key, sub in properties.items():
            if isinstance(sub, dict):
                _refine(sub)
                if key in required and _is_any(sub):
                    sub["type"] = list(_ANY_JSON)
    items = schema.get("items")
    if isinstance(items, dict):
        _refine(items)
    return schema


def _is_any(schema: Mapping[str, Any]) -> bool:
    """True for a schema that constrains nothing (a JSON field): annotations only."""
    return not set(schema) - {"description", "default", "examples", "title"}


# -- strict mode -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StrictProfile:
    """What one provider's strict mode accepts."""

    name: str
    all_required: bool
    """Every property must be listed in ``required``; optional ones become nullable."""
    keywords: Mapping[str, frozenset[str]]
    """Constraint keywords kept as they are, by JSON type."""
    formats: frozenset[str]
    min_items: frozenset[int] | None = None
    """The ``minItems`` values allowed (``None``: any)."""
    max_depth: int | None = None
    max_properties: int | None = None
    max_enum_values: int | None = None


OPENAI = StrictProfile(
    name="OpenAI",
    all_required=True,
    keywords={
        "string": frozenset({"pattern"}),
        "number": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}),
        "integer": frozenset(
            {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
        ),
        "array": frozenset({"minItems", "maxItems"}),
    },
    formats=frozenset(
        {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
    ),
    max_depth=10,
    max_properties=5000,
    max_enum_values=1000,
)
"""OpenAI Structured Outputs (``strict: true`` function tools), as its guide documents them.

``multipleOf`` is kept for integers only: a fractional step (our ``precision``) would be read in
binary floating point there, so it goes into the description, with every other keyword.
"""

ANTHROPIC = StrictProfile(
    name="Anthropic",
    all_required=False,
    keywords={},  # no numeric, length or pattern constraints
    formats=frozenset(
        {
            "date-time",
            "time",
            "date",
            "duration",
            "email",
            "hostname",
            "uri",
            "ipv4",
            "ipv6",
            "uuid",
        }
    ),
    min_items=frozenset({0, 1}),
)
"""Anthropic strict tool use (``strict: true``), per its JSON Schema limitations."""

_STRUCTURE = frozenset({"type", "enum", "description", "properties", "required", "items"})
_IGNORED = frozenset({"additionalProperties", "writeOnly", "title", "$schema"})


def strict_schema(schema: Mapping[str, Any], profile: StrictProfile) -> dict[str, Any]:
    """Rewrite an object schema into ``profile``'s strict subset.

    Raises:
        NotStrictError: naming the property that strict mode cannot express.
    """
    counts = {"properties": 0, "enum": 0}
    out = _strict(schema, profile, "input", 1, counts)
    if out.get("type") != "object":
        raise NotStrictError("the input must be an object")
    if profile.max_properties is not None and counts["properties"] > profile.max_properties:
        raise NotStrictError(
            f"{profile.name} strict mode allows {profile.max_properties} properties "
            f"(got {counts['properties']})"
        )
    if profile.max_enum_values is not None and counts["enum"] > profile.max_enum_values:
        raise NotStrictError(
            f"{profile.name} strict mode allows {profile.max_enum_values} enum values "
            f"(got {counts['enum']})"
        )
    return out


def _strict(
    schema: Mapping[str, Any],
    profile: StrictProfile,
    path: str,
    depth: int,
    counts: dict[str, int],
) -> dict[str, Any]:
    if profile.max_depth is not None and depth > profile.max_depth:
        raise NotStrictError(
            f"{path} is nested deeper than {profile.name} strict mode allows "
            f"({profile.max_depth} levels)"
        )
    kind = schema.get("type")
    out: dict[str, Any] = {}
    if "enum" in schema:
        values = list(schema["enum"])
        if not all(isinstance(v, str | int | float | bool) for v in values):
            raise NotStrictError(f"{path} has enum values that are not scalars")
        counts["enum"] += len(values)
        out["type"] = kind if isinstance(kind, str) else _enum_type(values)
        out["enum"] = values
    elif isinstance(kind, str):
        out["type"] = kind
    else:
        raise NotStrictError(f"{path} accepts any JSON value, which strict mode cannot express")
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            raise NotStrictError(f"{path} is an object with open keys")
        required = set(schema.get("required", ()))
        converted: dict[str, Any] = {}
        for key, sub in properties.items():
            counts["properties"] += 1
            item = _strict(sub, profile, f"{path}.{key}", depth + 1, counts)
            if profile.all_required and key not in required:
                item = _nullable(item)
            converted[key] = item
        out["properties"] = converted
        if profile.all_required:
            out["required"] = list(properties)
        elif required:
            out["required"] = [key for key in properties if key in required]
        out["additionalProperties"] = False
    elif kind == "array":
        items = schema.get("items")
        if not isinstance(items, Mapping):
            raise NotStrictError(f"{path} is an array of any JSON values")
        out["items"] = _strict(items, profile, f"{path}[]", depth + 1, counts)
    notes: list[str] = []
    kept = profile.keywords.get(str(kind), frozenset())
    for key, value in schema.items():
        if key in _STRUCTURE or key in _IGNORED:
            continue
        if (
            key in kept
            or (key == "format" and value in profile.formats)
            or (key == "minItems" and profile.min_items is not None and value in profile.min_items)
        ):
            out[key] = value
        else:
            notes.append(describe_keyword(key, value))
    description = _join(schema.get("description"), notes)
    if not description:
        return out
    return {"type": out.pop("type"), "description": description, **out}


def _enum_type(values: list[Any]) -> str | list[str]:
    """The JSON type(s) of enum values, so that strict schemas always state a type."""
    kinds = []
    for value in values:
        kind = (
            "boolean"
            if isinstance(value, bool)
            else "integer"
            if isinstance(value, int)
            else "number"
            if isinstance(value, float)
            else "string"
        )
        if kind not in kinds:
            kinds.append(kind)
    if set(kinds) == {"integer", "number"}:
        kinds.remove("integer")
    return kinds[0] if len(kinds) == 1 else kinds


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """Make ``schema`` also accept ``null``: how strict mode spells an optional property."""
    kind = schema["type"]
    if kind in ("object", "array"):
        return {"anyOf": [schema, {"type": "null"}]}
    out = dict(schema)
    out["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


_WORDS: dict[str, Callable[[Any], str]] = {
    "minLength": lambda v: f"At least {v} characters.",
    "maxLength": lambda v: f"At most {v} characters.",
    "pattern": lambda v: f"Must match the regular expression {v}.",
    "format": lambda v: f"Format: {v}.",
    "minimum": lambda v: f"At least {_number(v)}.",
    "maximum": lambda v: f"At most {_number(v)}.",
    "exclusiveMinimum": lambda v: f"Greater than {_number(v)}.",
    "exclusiveMaximum": lambda v: f"Less than {_number(v)}.",
    "multipleOf": lambda v: f"A multiple of {_number(v)}.",
    "minItems": lambda v: f"At least {v} items.",
    "maxItems": lambda v: f"At most {v} items.",
    "uniqueItems": lambda v: "Items must be unique." if v else "",
    "maxProperties": lambda v: f"At most {v} keys.",
    "contentEncoding": lambda v: f"Encoded as {v}.",
    "formatMinimum": lambda v: f"Not before {v}.",
    "formatMaximum": lambda v: f"Not after {v}.",
    "default": lambda v: f"Default: {_json(v)}.",
    "examples": lambda v: f"Example: {_json(v[0])}." if isinstance(v, list) and v else "",
}


def describe_keyword(key: str, value: Any) -> str:
    """Say a JSON Schema keyword in words ("At most 100 characters."), for descriptions."""
    words = _WORDS.get(key)
    return words(value) if words is not None else f"{key}: {_json(value)}."


def _join(description: Any, notes: list[str]) -> str:
    parts = [str(description).strip()] if description else []
    if parts and parts[0][-1:] not in ".!?":
        parts[0] += "."
    parts.extend(note for note in notes if note)
    return " ".join(parts)


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _plain(tool: Described) -> dict[str, Any]:
    schema = input_json_schema(tool)
    schema.pop("$schema", None)
    return schema


def _export(
    tool: Described, profile: StrictProfile, strict: bool | None
) -> tuple[dict[str, Any], bool]:
    """Return the schema to export and whether it is strict-mode compliant."""
    if strict is False:
        return _plain(tool), False
    try:
        return strict_schema(_plain(tool), profile), True
    except NotStrictError as exc:
        if strict:
            raise ToolDefinitionError(
                f"{tool.name} cannot be exported in {profile.name} strict mode: {exc}"
            ) from None
        return _plain(tool), False


def function_name(tool: Described) -> str:
    """Return the tool's name as providers accept function names (``^[A-Za-z0-9_-]{1,64}$``)."""
    return _FUNCTION_NAME.sub("_", tool.name)[:64]


# -- the exports -----------------------------------------------------------------------------


def openai_tool(
    tool: Described,
    *,
    strict: bool | None = None,
    api: Literal["chat", "responses"] = "chat",
) -> dict[str, Any]:
    """Return ``tool`` as an OpenAI function tool.

    ``api="chat"`` gives the Chat Completions shape (``{"type": "function", "function": {...}}``),
    ``api="responses"`` the Responses API one (the same keys, flat). ``strict`` is ``None`` for
    strict mode whenever the schema can be written in it, ``True`` to insist (raising
    ``ToolDefinitionError`` if it cannot), ``False`` for the plain schema. The ``strict`` key is
    always sent: the Responses API turns strict mode on when it is absent.
    """
    parameters, compliant = _export(tool, OPENAI, strict)
    function = {
        "name": function_name(tool),
        "description": tool.metadata.description,
        "parameters": parameters,
        "strict": compliant,
    }
    if api == "responses":
        return {"type": "function", **function}
    if api != "chat":
        raise ValueError(f"api must be 'chat' or 'responses' (got {api!r})")
    return {"type": "function", "function": function}


def anthropic_tool(tool: Described, *, strict: bool | None = None) -> dict[str, Any]:
    """Return ``tool`` as an Anthropic Messages API tool (``name``, ``description``,
    ``input_schema``), with ``"strict": true`` when the schema fits strict tool use (see
    ``openai_tool`` for ``strict``)."""
    schema, compliant = _export(tool, ANTHROPIC, strict)
    out: dict[str, Any] = {
        "name": function_name(tool),
        "description": tool.metadata.description,
        "input_schema": schema,
    }
    if compliant:
        out["strict"] = True
    return out


def mcp_tool(tool: Described) -> dict[str, Any]:
    """Return ``tool`` as the MCP ``Tool`` its server lists: ``inputSchema`` is
    ``tool.json_schema()``."""
    return {
        "name": tool.name,
        "title": tool.name,
        "description": tool.metadata.description,
        "inputSchema": input_json_schema(tool),
    }
