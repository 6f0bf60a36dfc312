"""valid_input and invalid_inputs: generated data passes, or fails with the expected code."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import weather
from ai_spine_tools import (
    Tool,
    ValidationError,
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
from ai_spine_tools.fields import Field
from ai_spine_tools.testing import (
    InvalidInput,
    assert_success,
    assert_validation_error,
    invalid_inputs,
    test_tool,
    valid_input,
)

V = "value"
ALWAYS = {(V, "required"), ("__unknown_field__", "unknown_field")}

# Each field type with constraints, and every (path, code) its invalid inputs must cover.
FIELDS: dict[str, tuple[Field, set[tuple[str, str]]]] = {
    "string": (
        string_field(required=True, min_length=2, max_length=5),
        {(V, "type"), (V, "too_short"), (V, "too_long")},
    ),
    "string-pattern": (
        string_field(required=True, pattern="^[a-z]+$", example="abc"),
        {(V, "type"), (V, "pattern")},
    ),
    "string-format": (string_field(required=True, format="ipv4"), {(V, "type"), (V, "format")}),
    "string-transform": (
        string_field(required=True, transform=["trim", "upper"], max_length=3),
        {(V, "type"), (V, "too_long")},
    ),
    "number": (
        number_field(required=True, min=-1.5, max=2.5, precision=1),
        {(V, "type"), (V, "minimum"), (V, "maximum"), (V, "precision")},
    ),
    "number-step": (
        number_field(required=True, multiple_of=0.25),
        {(V, "type"), (V, "multiple_of")},
    ),
    "integer": (
        integer_field(required=True, min=1, max=10, multiple_of=3),
        {(V, "type"), (V, "minimum"), (V, "maximum"), (V, "multiple_of")},
    ),
    "integer-fractional-bounds": (
        integer_field(required=True, min=0.5, max=9.5),
        {(V, "type"), (V, "minimum"), (V, "maximum")},
    ),
    "boolean": (boolean_field(required=True), {(V, "type")}),
    "enum": (enum_field(["a", "b"], required=True), {(V, "enum")}),
    "enum-numbers": (enum_field([1, 2, 3], required=True), {(V, "enum")}),
    "enum-mixed": (enum_field(["a", 1, True], required=True), {(V, "enum")}),
    "array": (
        array_field(string_field(max_length=3), required=True, min_items=1, max_items=3),
        {(V, "type"), (V, "too_short"), (V, "too_long"), (f"{V}[0]", "type")}
        | {(f"{V}[0]", "too_long")},
    ),
    "array-unique": (
        array_field(integer_field(min=0), required=True, unique_items=True),
        {(V, "type"), (f"{V}[1]", "unique"), (f"{V}[0]", "type"), (f"{V}[0]", "minimum")},
    ),
    "array-untyped": (array_field(required=True, max_items=2), {(V, "type"), (V, "too_long")}),
    "object": (
        object_field(
            {"x": integer_field(required=True, max=5), "y": string_field(min_length=2)},
            required=True,
        ),
        {(V, "type"), (f"{V}.x", "required"), (f"{V}.x", "type"), (f"{V}.x", "maximum")}
        | {
            (f"{V}.y", "type"),
            (f"{V}.y", "too_short"),
            (f"{V}.__unknown_field__", "unknown_field"),
        },
    ),
    "object-nested": (
        object_field(
            {"inner": object_field({"z": date_field(required=True)}, required=True)},
            required=True,
            unknown="ignore",
        ),
        {(V, "type"), (f"{V}.inner", "required"), (f"{V}.inner", "type")}
        | {(f"{V}.inner.z", "required"), (f"{V}.inner.z", "type"), (f"{V}.inner.z", "format")}
        | {(f"{V}.inner.__unknown_field__", "unknown_field")},
    ),
    "object-free": (object_field(required=True, max_properties=2), {(V, "type"), (V, "too_long")}),
    "date": (
        date_field(required=True, min="2024-01-01", max="2024-12-31"),
        {(V, "type"), (V, "format"), (V, "minimum"), (V, "maximum")},
    ),
    "datetime": (
        datetime_field(required=True, min="2024-01-01T00:00:00Z"),
        {(V, "type"), (V, "format"), (V, "minimum")},
    ),
    "time": (
        time_field(required=True, min="08:00:00", max="18:00:00"),
        {(V, "type"), (V, "format"), (V, "minimum"), (V, "maximum")},
    ),
    "email": (email_field(required=True), {(V, "type"), (V, "too_long"), (V, "format")}),
    "url": (url_field(required=True), {(V, "type"), (V, "too_long"), (V, "format")}),
    "uuid": (uuid_field(required=True), {(V, "type"), (V, "format")}),
    "file": (
        file_field(required=True, max_size=100, allowed_types=["text/plain"]),
        {(V, "type"), (V, "format"), (V, "size_mismatch"), (V, "too_long"), (V, "file_type")},
    ),
    "json": (json_field(required=True), set()),
    "api-key": (api_key_field(required=True, min_length=10), {(V, "type"), (V, "too_short")}),
    "secret": (secret_field(required=True, max_length=8), {(V, "type"), (V, "too_long")}),
}


async def _noop(input: dict[str, Any]) -> dict[str, Any]:
    return {}


def tool_with(name: str, field: Field) -> Tool:
    return create_tool(
        metadata={"name": f"data-{name}", "version": "1.0.0", "description": f"one {name} field"},
        schema={"input": {V: field}},
        execute=_noop,
    )


TOOLS = {name: tool_with(name, field) for name, (field, _) in FIELDS.items()}
CASES = [
    pytest.param(TOOLS[name], case, id=f"{name} | {case.description}")
    for name in FIELDS
    for case in invalid_inputs(TOOLS[name])
]


@pytest.mark.parametrize("name", list(FIELDS))
def test_valid_input_passes_validation(name: str) -> None:
    tool = TOOLS[name]
    data = valid_input(tool)
    assert msgspec.json.decode(msgspec.json.encode(data)) == data  # JSON-ready as it is
    tool.input_schema.validate(data)
    assert_success(test_tool(tool, data))


@pytest.mark.parametrize(("tool", "case"), CASES)
def test_invalid_input_fails_with_the_expected_code(tool: Tool, case: InvalidInput) -> None:
    response = test_tool(tool, case.input)
    assert response.status_code == 400
    assert [(e["path"], e["code"]) for e in response.validation_errors] == [
        (case.expected_path, case.expected_code)
    ]
    with pytest.raises(ValidationError) as caught:  # the in-process path agrees
        tool.input_schema.validate(case.input)
    assert [(i.path, i.code) for i in caught.value.issues] == [
        (case.expected_path, case.expected_code)
    ]


@pytest.mark.parametrize("name", list(FIELDS))
def test_invalid_inputs_cover_every_rule(name: str) -> None:
    covered = {(case.expected_path, case.expected_code) for case in invalid_inputs(TOOLS[name])}
    assert covered == FIELDS[name][1] | ALWAYS


def test_required_fields_are_missing_once_and_null_once() -> None:
    cases = [c for c in invalid_inputs(TOOLS["boolean"]) if c.expected_code == "required"]
    assert [c.input for c in cases] == [{}, {V: None}]


def test_optional_fields_can_be_left_out() -> None:
    tool = create_tool(
        metadata={"name": "mixed", "version": "1.0.0", "description": "x"},
        schema={"input": {"a": string_field(required=True), "b": integer_field(min=3)}},
        execute=_noop,
    )
    assert valid_input(tool) == {"a": "example", "b": 3}
    assert valid_input(tool, optional=False) == {"a": "example"}


def test_a_tool_that_ignores_unknown_fields_gets_no_unknown_case() -> None:
    tool = create_tool(
        metadata={"name": "lenient", "version": "1.0.0", "description": "x"},
        schema={"input": {"a": boolean_field()}},
        execute=_noop,
        unknown_fields="ignore",
    )
    assert [c.expected_code for c in invalid_inputs(tool)] == ["type"]


def test_a_required_field_that_cannot_be_invented_is_named() -> None:
    tool = create_tool(
        metadata={"name": "coded", "version": "1.0.0", "description": "x"},
        schema={"input": {"code": string_field(required=True, pattern="^[A-Z]{3}$")}},
        execute=_noop,
    )
    with pytest.raises(ValueError, match="required input field 'code' of coded; declare example="):
        valid_input(tool)


def test_an_optional_field_that_cannot_be_invented_is_left_out() -> None:
    tool = create_tool(
        metadata={"name": "coded", "version": "1.0.0", "description": "x"},
        schema={"input": {"code": string_field(pattern="^[A-Z]{3}$")}},
        execute=_noop,
    )
    assert valid_input(tool) == {}


# Dogfood: the seed's weather tool, checked with the tables generated from its own schema.


def test_weather_valid_input_succeeds() -> None:
    assert valid_input(weather.tool) == {"city": "Madrid", "units": "celsius"}
    assert_success(test_tool(weather.tool, valid_input(weather.tool)))


@pytest.mark.parametrize("case", list(invalid_inputs(weather.tool)), ids=lambda c: c.description)
def test_weather_rejects_each_invalid_input(case: InvalidInput) -> None:
    response = test_tool(weather.tool, case.input)
    assert_validation_error(response, case.expected_path, case.expected_code)
