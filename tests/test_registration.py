"""The AI Spine platform registration: name, description, endpoint, capabilities, the input as
typed properties each with a description, secrets marked sensitive."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from ai_spine_tools import (
    Tool,
    ToolDefinitionError,
    api_key_field,
    boolean_field,
    create_tool,
    date_field,
    enum_field,
    integer_field,
    number_field,
    string_field,
    url_field,
)
from ai_spine_tools.cli import main
from ai_spine_tools.interop._registration import ENDPOINT_PLACEHOLDER, spine_registration
from serverproc import EXAMPLES
from tools.guarded import tool as guarded
from weather import tool as weather

KINDS = [
    "string",
    "number",
    "boolean",
    "enum",
    "array",
    "object",
    "date",
    "datetime",
    "time",
    "email",
    "url",
    "uuid",
    "file",
    "json",
]
_PROPERTY: dict[str, Any] = {
    "type": "object",
    "required": ["type", "required", "description"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "type": {"enum": KINDS},
        "required": {"type": "boolean"},
        "description": {"type": "string", "minLength": 1},
        "sensitive": {"const": True},
        "default": {},
        "example": {},
        "enum": {"type": "array", "minItems": 1},
        "items": {"$ref": "#/$defs/property"},
        "properties": {"type": "array", "items": {"$ref": "#/$defs/named"}},
        "additional_properties": {"type": "boolean"},
        "integer": {"const": True},
        "transform": {},
        "schemes": {"type": "array", "items": {"type": "string"}},
        "allowed_types": {"type": "array", "items": {"type": "string"}},
        "pattern": {"type": "string"},
        "format": {"type": "string"},
        **{
            key: {"type": "number"}
            for key in ("min_length", "max_length", "min_items", "max_items", "max_properties")
        },
        **{key: {"type": "number"} for key in ("multiple_of", "precision", "max_size")},
        "unique_items": {"const": True},
        "min": {"type": ["number", "string"]},
        "max": {"type": ["number", "string"]},
    },
    "additionalProperties": False,
}
REGISTRATION: dict[str, Any] = {
    "$defs": {
        "property": _PROPERTY,
        "named": {"allOf": [{"$ref": "#/$defs/property"}, {"required": ["name"]}]},
    },
    "type": "object",
    "required": [
        "agent_id",
        "name",
        "description",
        "version",
        "type",
        "endpoint",
        "execute_url",
        "capabilities",
        "input_schema",
        "environment_schema",
    ],
    "properties": {
        "agent_id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
        "name": {"type": "string"},
        "description": {"type": "string", "minLength": 1},
        "version": {"type": "string"},
        "type": {"const": "tool"},
        "endpoint": {"type": "string"},
        "execute_url": {"type": "string"},
        "health_url": {"type": "string"},
        "schema_url": {"type": "string"},
        "capabilities": {"type": "array", "items": {"type": "string"}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "input_schema": {"type": "array", "items": {"$ref": "#/$defs/named"}},
        "environment_schema": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["type", "description", "required"],
                "properties": {
                    "type": {"enum": ["string", "number", "boolean", "password"]},
                    "description": {"type": "string", "minLength": 1},
                    "required": {"type": "boolean"},
                    "default_value": {},
                    "sensitive": {"const": True},
                    "enum": {"type": "array"},
                    "env": {"type": "string"},
                    "overridable": {"const": True},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}

configured = create_tool(
    metadata={
        "name": "configured",
        "version": "0.3.0",
        "description": "Has config of every kind",
        "capabilities": ["demo.config"],
        "tags": ["demo"],
    },
    schema={
        "input": {
            "when": date_field(min="2020-01-01", required=True),
            "count": integer_field(min=1, max=10, default=3),
            "site": url_field(schemes=("https",)),
        },
        "config": {
            "api_key": api_key_field(required=True, env="DEMO_KEY", overridable=True),
            "region": enum_field(["eu", "us"], default="eu", description="Where to call"),
            "retries": number_field(min=0, max=5, default=2),
            "verbose": boolean_field(),
            "base_url": string_field(default="https://api.example.com"),
        },
    },
    execute=lambda input: {},
)


def properties(listed: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for prop in listed:
        yield prop
        if "items" in prop:
            yield from properties([prop["items"]])
        yield from properties(prop.get("properties", []))


@pytest.mark.parametrize("tool", [weather, guarded, configured], ids=lambda t: t.name)
def test_registration_has_the_documented_shape(tool: Tool) -> None:
    registration = spine_registration(tool)
    jsonschema.Draft202012Validator(REGISTRATION).validate(registration)
    assert [p["name"] for p in registration["input_schema"]] == list(tool.input_schema.fields)
    assert [p["required"] for p in registration["input_schema"]] == [
        f.required for f in tool.input_schema.fields.values()
    ]
    assert list(registration["environment_schema"]) == list(tool.config_schema.fields)
    json.dumps(registration)


def test_every_field_type_is_registered_with_its_type() -> None:
    types = {p["name"]: p["type"] for p in spine_registration(guarded)["input_schema"]}
    assert types == {
        "name": "string",
        "code": "string",
        **dict.fromkeys(("nested_plus", "nested_star", "alternation", "overlap"), "string"),
        **dict.fromkeys(("words", "double"), "string"),
        "ratio": "number",
        "count": "number",
        "flag": "boolean",
        "units": "enum",
        "tags": "array",
        "address": "object",
        "day": "date",
        "at": "datetime",
        "clock": "time",
        "email": "email",
        "site": "url",
        "id": "uuid",
        "upload": "file",
        "extra": "json",
        "password": "string",
    }


def test_each_property_has_a_description_even_when_the_field_has_none() -> None:
    for prop in properties(spine_registration(guarded)["input_schema"]):
        assert prop["description"].strip()
    by_name = {p["name"]: p for p in spine_registration(configured)["input_schema"]}
    assert by_name["count"]["description"] == "An integer. At least 1. At most 10."
    assert by_name["count"]["integer"] is True
    assert by_name["when"]["min"] == "2020-01-01"
    assert by_name["site"]["schemes"] == ["https"]


def test_secrets_are_marked_sensitive_and_never_shown() -> None:
    password = next(
        p for p in spine_registration(guarded)["input_schema"] if p["name"] == "password"
    )
    assert password["sensitive"] is True
    assert "default" not in password
    assert "example" not in password
    environment = spine_registration(configured)["environment_schema"]
    assert environment["api_key"] == {
        "type": "password",
        "description": "A secret string.",
        "required": True,
        "sensitive": True,
        "env": "DEMO_KEY",
        "overridable": True,
    }
    assert environment["region"] == {
        "type": "string",
        "description": "Where to call",
        "required": False,
        "default_value": "eu",
        "enum": ["eu", "us"],
    }
    assert environment["retries"]["type"] == "number"
    assert environment["verbose"]["type"] == "boolean"


@pytest.mark.parametrize(
    ("endpoint", "base"),
    [
        (None, ENDPOINT_PLACEHOLDER),
        ("https://tools.example.com", "https://tools.example.com"),
        ("https://tools.example.com/", "https://tools.example.com"),
        ("https://tools.example.com/weather/api/execute", "https://tools.example.com/weather"),
        ("http://10.0.0.5:3000", "http://10.0.0.5:3000"),
    ],
)
def test_endpoint_is_the_base_url(endpoint: str | None, base: str) -> None:
    registration = spine_registration(weather, endpoint)
    assert registration["endpoint"] == base
    assert registration["execute_url"] == f"{base}/api/execute"
    assert registration["health_url"] == f"{base}/health"


@pytest.mark.parametrize("endpoint", ["ftp://tools.example.com", "tools.example.com", "https://"])
def test_endpoint_must_be_an_http_url(endpoint: str) -> None:
    with pytest.raises(ToolDefinitionError, match="base URL"):
        spine_registration(weather, endpoint)


def test_cli_prints_the_registration() -> None:
    target = str(EXAMPLES / "weather.py")
    arguments = ["schema", target, "--format", "spine-registration"]
    printed = CliRunner().invoke(main, [*arguments, "--endpoint", "https://w.example.com"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == spine_registration(weather, "https://w.example.com")
    refused = CliRunner().invoke(main, [*arguments, "--endpoint", "nope"])
    assert refused.exit_code != 0
    assert "base URL" in refused.output
