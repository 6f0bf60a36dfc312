"""Schemas for agents: the input's JSON Schema, OpenAI and Anthropic function tools, the MCP tool.

For every field type: each export has its provider's published tool shape (written below as JSON
Schema), strict exports stay inside the provider's strict subset, values generated from the
exported schema pass our validation, and values our validation accepts pass the exported schema.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings

from _from_schema import from_schema
from ai_spine_tools import (
    Tool,
    ToolDefinitionError,
    ToolError,
    api_key_field,
    array_field,
    boolean_field,
    create_tool,
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
from ai_spine_tools.fields import EnumField, Field
from ai_spine_tools.interop._export import ANTHROPIC, OPENAI, NotStrictError, strict_schema
from ai_spine_tools.testing import valid_input

# -- every field type --------------------------------------------------------------------------

FIELDS: list[tuple[str, Field]] = [
    ("string", string_field(min_length=2, max_length=10, description="A short name")),
    ("pattern", string_field(pattern=r"^[A-Z]{3}-[0-9]{4}$", example="ABC-1234")),
    ("transform", string_field(max_length=20, transform="lower")),
    ("number", number_field(min=-5, max=5.5, description="A reading")),
    ("step", number_field(min=0, max=10, multiple_of=0.25)),
    ("precision", number_field(min=0, max=100, precision=2)),
    ("integer", integer_field(min=0, max=1000, multiple_of=5)),
    ("boolean", boolean_field(description="A switch")),
    ("enum", enum_field(["celsius", "fahrenheit"], description="Units")),
    ("mixed-enum", enum_field([1, "two", True])),
    ("array", array_field(string_field(max_length=5), min_items=1, max_items=3, unique_items=True)),
    (
        "object",
        object_field(
            {"street": string_field(required=True, max_length=20), "zip": string_field()},
            description="An address",
        ),
    ),
    ("objects", array_field(object_field({"sku": string_field(required=True)}), max_items=4)),
    ("date", date_field()),
    ("bounded-date", date_field(min="2024-01-01", max="2024-12-31")),
    ("datetime", datetime_field(description="When")),
    ("time", time_field()),
    ("email", email_field()),
    ("url", url_field()),
    ("ftp-url", url_field(schemes=["ftp", "sftp"])),
    ("uuid", uuid_field()),
    ("file", file_field(max_size=1024)),
    ("typed-file", file_field(max_size=1024, allowed_types=["text/*", "application/pdf"])),
    ("json", json_field(description="Anything")),
    ("open-object", object_field(max_properties=5)),
    ("any-array", array_field(max_items=3)),
    ("secret", secret_field(min_length=8, max_length=64)),
    ("api-key", api_key_field(description="The caller's key")),
]
IDS = [name for name, _ in FIELDS]
OPEN = {"json", "open-object", "any-array"}  # strict mode cannot say "any value"


def _required(field: Field) -> Field:
    if isinstance(field, EnumField):
        return enum_field(field.values, required=True, description=field.description)
    return dataclasses.replace(field, required=True)


def tool_with(name: str, field: Field) -> Tool:
    """A tool taking the field twice: required as ``value`` and optional as ``other``."""
    return create_tool(
        metadata={"name": f"field.{name}", "version": "1.0.0", "description": f"Takes a {name}"},
        schema={"input": {"value": _required(field), "other": field}},
        execute=lambda input: {"ok": True},
    )


TOOLS = {name: tool_with(name, field) for name, field in FIELDS}


def walk(schema: Any) -> Iterator[dict[str, Any]]:
    """Every schema object inside ``schema``, itself included."""
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from walk(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from walk(value)


# -- the providers' published tool shapes, as JSON Schema ---------------------------------------

_NAME = {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"}
_PARAMETERS = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"const": "object"}, "properties": {"type": "object"}},
}
OPENAI_FUNCTION = {
    "type": "object",
    "required": ["name", "parameters", "strict"],
    "properties": {
        "name": _NAME,
        "description": {"type": "string"},
        "parameters": _PARAMETERS,
        "strict": {"type": ["boolean", "null"]},
    },
    "additionalProperties": False,
}
OPENAI_CHAT_TOOL = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {"type": {"const": "function"}, "function": OPENAI_FUNCTION},
    "additionalProperties": False,
}
OPENAI_RESPONSES_TOOL = {
    "type": "object",
    "required": ["type", "name", "parameters", "strict"],
    "properties": {"type": {"const": "function"}, **OPENAI_FUNCTION["properties"]},  # type: ignore[dict-item]
    "additionalProperties": False,
}
ANTHROPIC_TOOL = {
    "type": "object",
    "required": ["name", "input_schema"],
    "properties": {
        "name": _NAME,
        "description": {"type": "string"},
        "input_schema": _PARAMETERS,
        "strict": {"type": "boolean"},
        "cache_control": {"type": ["object", "null"]},
        "type": {"enum": ["custom", None]},
    },
    "additionalProperties": False,
}


def strict_subset(
    keywords: dict[str, list[str]], formats: list[str], *, min_items: list[int] | None
) -> dict[str, Any]:
    """The JSON Schema of the schemas a provider's strict mode takes: only the keywords it lists,
    every object closed, no references."""
    common = ["type", "description", "enum"]
    node: dict[str, Any] = {
        "type": "object",
        "properties": {
            "type": {
                "anyOf": [
                    {"enum": ["string", "number", "integer", "boolean", "object", "array", "null"]},
                    {"type": "array", "items": {"type": "string"}},
                ]
            },
            "description": {"type": "string"},
            "enum": {"type": "array", "items": {"type": ["string", "number", "boolean", "null"]}},
            "format": {"enum": formats},
            "properties": {"type": "object", "additionalProperties": {"$ref": "#/$defs/node"}},
            "required": {"type": "array", "items": {"type": "string"}},
            "additionalProperties": {"const": False},
            "items": {"$ref": "#/$defs/node"},
            "anyOf": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            "minItems": {"enum": min_items} if min_items else {"type": "integer"},
        },
        "propertyNames": {
            "enum": sorted(
                {*common, "format", "properties", "required", "additionalProperties", "items"}
                | {"anyOf"}
                | {key for keys in keywords.values() for key in keys}
            )
        },
        "if": {"required": ["type"], "properties": {"type": {"const": "object"}}},
        "then": {"required": ["properties", "additionalProperties"]},
    }
    return {"$defs": {"node": node}, "$ref": "#/$defs/node"}


OPENAI_STRICT = strict_subset(
    {
        "string": ["pattern"],
        "number": ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"],
        "array": ["minItems", "maxItems"],
    },
    ["date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"],
    min_items=None,
)
ANTHROPIC_STRICT = strict_subset(
    {"array": ["minItems"]},
    ["date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"],
    min_items=[0, 1],
)


def assert_matches(instance: Any, shape: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(shape).validate(instance)


def assert_self_contained(schema: dict[str, Any]) -> None:
    """A valid JSON Schema with no ``$ref``/``$defs`` anywhere (several providers reject them)."""
    jsonschema.Draft202012Validator.check_schema(schema)
    assert not any({"$ref", "$defs", "definitions"} & set(node) for node in walk(schema))


# -- the shapes --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", IDS)
def test_json_schema_is_2020_12_and_self_contained(name: str) -> None:
    schema = TOOLS[name].json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["value"]
    assert schema["additionalProperties"] is False
    assert_self_contained(schema)


@pytest.mark.parametrize("name", IDS)
@pytest.mark.parametrize(
    ("api", "shape"), [("chat", OPENAI_CHAT_TOOL), ("responses", OPENAI_RESPONSES_TOOL)]
)
def test_openai_tool_has_the_published_shape(name: str, api: str, shape: dict[str, Any]) -> None:
    exported = TOOLS[name].to_openai_tool(api=api)  # type: ignore[arg-type]
    assert_matches(exported, shape)
    function = exported["function"] if api == "chat" else exported
    assert function["name"] == f"field_{name}"  # the dot is not allowed in function names
    assert function["strict"] is (name not in OPEN)
    assert_self_contained(function["parameters"])
    if function["strict"]:
        assert_matches(function["parameters"], OPENAI_STRICT)
        for node in walk(function["parameters"]):
            if node.get("type") == "object":
                assert node["required"] == list(node["properties"])  # every property listed


@pytest.mark.parametrize("name", IDS)
def test_anthropic_tool_has_the_published_shape(name: str) -> None:
    exported = TOOLS[name].to_anthropic_tool()
    assert_matches(exported, ANTHROPIC_TOOL)
    assert_self_contained(exported["input_schema"])
    assert exported.get("strict", False) is (name not in OPEN)
    if exported.get("strict"):
        assert_matches(exported["input_schema"], ANTHROPIC_STRICT)
        assert exported["input_schema"]["required"] == ["value"]  # optional stays optional


@pytest.mark.parametrize("name", IDS)
def test_exports_carry_the_field_descriptions(name: str) -> None:
    described = dict(FIELDS)[name].description
    if described is None:
        return
    openai = TOOLS[name].to_openai_tool()["function"]["parameters"]["properties"]["value"]
    anthropic = TOOLS[name].to_anthropic_tool()["input_schema"]["properties"]["value"]
    assert TOOLS[name].json_schema()["properties"]["value"]["description"] == described
    for exported in (openai, anthropic):
        assert exported.get("description", "").startswith(described)


def test_strict_mode_says_the_dropped_constraints_in_words() -> None:
    parameters = TOOLS["string"].to_openai_tool()["function"]["parameters"]
    value, other = parameters["properties"]["value"], parameters["properties"]["other"]
    assert value == {
        "type": "string",
        "description": "A short name. At least 2 characters. At most 10 characters.",
    }
    assert other["type"] == ["string", "null"]  # optional: listed in required, and nullable
    units = TOOLS["enum"].to_openai_tool()["function"]["parameters"]["properties"]["other"]
    assert units["enum"] == ["celsius", "fahrenheit", None]
    number = TOOLS["number"].to_anthropic_tool()["input_schema"]["properties"]["value"]
    assert number["description"] == "A reading. At least -5. At most 5.5."


@pytest.mark.parametrize("name", sorted(OPEN))
def test_strict_true_refuses_what_strict_mode_cannot_say(name: str) -> None:
    with pytest.raises(ToolDefinitionError, match="strict mode"):
        TOOLS[name].to_openai_tool(strict=True)
    with pytest.raises(ToolDefinitionError, match="strict mode"):
        TOOLS[name].to_anthropic_tool(strict=True)


@pytest.mark.parametrize("name", ["string", "object", "json"])
def test_strict_false_exports_the_plain_schema(name: str) -> None:
    plain = {k: v for k, v in TOOLS[name].json_schema().items() if k != "$schema"}
    assert TOOLS[name].to_openai_tool(strict=False)["function"] == {
        "name": f"field_{name}",
        "description": f"Takes a {name}",
        "parameters": plain,
        "strict": False,
    }
    assert "strict" not in TOOLS[name].to_anthropic_tool(strict=False)
    assert TOOLS[name].to_anthropic_tool(strict=False)["input_schema"] == plain


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "object", "properties": {"a": {}}}, "any JSON value"),
        ({"type": "object", "properties": {"a": {"type": "object"}}}, "open keys"),
        ({"type": "object", "properties": {"a": {"type": "array"}}}, "array of any"),
        ({"type": "array", "items": {"type": "string"}}, "must be an object"),
    ],
)
def test_strict_schema_names_what_it_cannot_express(schema: dict[str, Any], reason: str) -> None:
    for profile in (OPENAI, ANTHROPIC):
        with pytest.raises(NotStrictError, match=reason):
            strict_schema(schema, profile)


def test_strict_schema_keeps_to_openai_limits() -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(11):
        deep = {"type": "object", "properties": {"a": deep}}
    with pytest.raises(NotStrictError, match="nested deeper"):
        strict_schema(deep, OPENAI)
    many = {"type": "object", "properties": {f"p{i}": {"enum": list(range(60))} for i in range(20)}}
    with pytest.raises(NotStrictError, match="1000 enum values"):
        strict_schema(many, OPENAI)


def test_an_open_root_object_is_closed_for_strict_mode() -> None:
    lenient = create_tool(
        metadata={"name": "lenient", "version": "1.0.0", "description": "Ignores extras"},
        schema={"input": {"q": string_field(required=True)}},
        execute=lambda input: {},
        unknown_fields="ignore",
    )
    assert "additionalProperties" not in lenient.json_schema()
    assert lenient.to_openai_tool()["function"]["parameters"]["additionalProperties"] is False


def test_openai_api_must_be_chat_or_responses() -> None:
    with pytest.raises(ValueError, match="chat"):
        TOOLS["string"].to_openai_tool(api="assistants")  # type: ignore[arg-type]


# -- round trips -------------------------------------------------------------------------------


def _accepts(tool: Tool, value: Any) -> dict[str, Any]:
    """Validate ``value`` as the server does: from JSON bytes."""
    return tool.input_schema.decode_json(msgspec.json.encode(value))


def _size_matches(value: dict[str, Any]) -> bool:
    """JSON Schema cannot say that a file's declared size must be its content's: the one rule
    of ours the export does not carry. Inputs that break it are not counted."""
    import base64

    return all(
        not isinstance(item, dict)
        or "size" not in item
        or item["size"] == len(base64.b64decode(item.get("content", "")))
        for item in value.values()
    )


def _into_2024(date: str | None) -> str | None:
    """Date bounds travel as formatMinimum and formatMaximum, which the generator (like most
    validators) does not know: a generated date is moved into the bounds' year."""
    return None if date is None else "2024" + date[4:]


@pytest.mark.parametrize("name", IDS)
def test_values_generated_from_the_exported_schema_pass_our_validation(name: str) -> None:
    tool = TOOLS[name]

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(from_schema(tool.json_schema()))
    def generated(value: dict[str, Any]) -> None:
        assume(not name.endswith("file") or _size_matches(value))
        if name == "bounded-date":  # the generator does not know the bounds: take the year
            value = {key: _into_2024(item) for key, item in value.items()}
        _accepts(tool, value)

    generated()


ACCEPTED: dict[str, list[Any]] = {
    "string": ["ab", "ten chars!"],
    "pattern": ["XYZ-0000"],
    "transform": ["MiXeD"],
    "number": [-5, 0, 5.5, 1.25],
    "step": [0, 0.25, 9.75],
    "precision": [0, 1.5, 99.25, 0.07],
    "integer": [0, 5, 1000, 10.0],
    "boolean": [True, False],
    "enum": ["celsius", "fahrenheit"],
    "mixed-enum": [1, "two", True],
    "array": [["a"], ["a", "b", "c"]],
    "object": [{"street": "Main St"}, {"street": "x", "zip": "12345"}],
    "objects": [[], [{"sku": "A1"}, {"sku": "B2"}]],
    "date": ["2024-02-29"],
    "bounded-date": ["2024-01-01", "2024-12-31"],
    "datetime": ["2024-01-31T12:00:00Z", "2024-01-31T12:00:00.123+05:30"],
    "time": ["12:00:00", "23:59:59.5"],
    "email": ["ada@example.com", "a.b+c@sub.example.org"],
    "url": ["https://example.com/", "http://localhost:3000/api?q=1"],
    "ftp-url": ["ftp://files.example.com/a.txt", "SFTP://host/path"],
    "uuid": ["00000000-0000-4000-8000-000000000000"],
    "file": [{"name": "a.txt", "content": "aGVsbG8=", "type": "text/plain", "size": 5}],
    "typed-file": [
        {"name": "a.txt", "content": "aGVsbG8=", "type": "text/csv"},
        {"name": "a.pdf", "content": "aGVsbG8=", "type": "application/pdf"},
    ],
    "json": [{"a": [1, None]}, "text", 0, False, []],
    "open-object": [{}, {"a": 1, "b": [None]}],
    "any-array": [[], [1, "two", None]],
    "secret": ["s3cr3t-value"],
    "api-key": ["k"],
}


def accepted_inputs(name: str) -> Iterator[dict[str, Any]]:
    """Inputs our validation accepts: the testing toolkit's valid input, the table above."""
    yield valid_input(TOOLS[name])
    for value in ACCEPTED[name]:
        yield {"value": value}
        yield {"value": value, "other": value}


@pytest.mark.parametrize("name", IDS)
def test_inputs_our_validation_accepts_pass_the_exported_schema(name: str) -> None:
    tool = TOOLS[name]
    validator = jsonschema.Draft202012Validator(
        tool.json_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for value in accepted_inputs(name):
        _accepts(tool, value)  # the table holds accepted inputs only
        if name == "precision" and value.get("value") == 0.07:
            continue  # 0.07 / 0.01 is not whole in binary floating point (see the README)
        validator.validate(value)


@pytest.mark.parametrize("name", sorted(set(IDS) - OPEN))
def test_a_strict_model_input_passes_both_ways(name: str) -> None:
    """What a strict-mode model sends (every property, null for the ones it leaves out) fits
    the OpenAI strict schema, and our validation reads the nulls as absent."""
    tool = TOOLS[name]
    strict = tool.to_openai_tool()["function"]["parameters"]
    for value in accepted_inputs(name):
        sent = {"value": value["value"], "other": value.get("other")}
        jsonschema.Draft202012Validator(strict).validate(_nulls_everywhere(sent, strict))
        _accepts(tool, _nulls_everywhere(sent, strict))


def _nulls_everywhere(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` with every property a strict schema lists and the value leaves out as null."""
    options = schema.get("anyOf", [schema])
    for option in options:
        if option.get("type") == "object" and isinstance(value, dict):
            return {
                key: _nulls_everywhere(value.get(key), sub)
                for key, sub in option["properties"].items()
            }
        if option.get("type") == "array" and isinstance(value, list):
            return [_nulls_everywhere(item, option["items"]) for item in value]
    return value


def test_guarded_tool_inputs_round_trip() -> None:
    """The tool with every kind of field at once (the hostile-input target)."""
    from tools.guarded import tool as guarded

    example = valid_input(guarded)
    _accepts(guarded, example)
    jsonschema.Draft202012Validator(guarded.json_schema()).validate(example)
    assert_self_contained(guarded.json_schema())
    try:
        _accepts(guarded, {"extra": None})
    except ToolError:  # a null optional field reads as absent
        pytest.fail("null for an optional field must read as absent")


def test_json_schema_output_is_json() -> None:
    for tool in TOOLS.values():
        json.dumps([tool.json_schema(), tool.to_openai_tool(), tool.to_anthropic_tool()])
