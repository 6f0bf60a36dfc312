"""Fuzzing: random schemas x random JSON on the validation engine, and schemathesis against the
server's own OpenAPI document over real HTTP.

Bounded so that the whole module runs in well under a minute. What fuzzing found (and is kept
here as regression tests at the end): the OpenAPI document allowed bodies the server refuses (a
body without ``input_data`` when the tool has required input; an empty ``execution_id``; a
request without ``config`` when a required config field has no server-side value) and did not
say that optional properties accept ``null``; a file's ``size`` of ``5.0`` was refused where
``integer_field`` takes it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import weather
from _validation import run_both
from ai_spine_tools import (
    ToolDefinitionError,
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
from ai_spine_tools.fields import (
    ArrayField,
    BooleanField,
    DateField,
    DateTimeField,
    EnumField,
    Field,
    FileField,
    IntegerField,
    JSONField,
    NumberField,
    ObjectField,
    StringField,
    TimeField,
    UUIDField,
)
from ai_spine_tools.fields._schema import Schema
from ai_spine_tools.interop._openapi import openapi_document
from ai_spine_tools.testing import AsyncToolTestClient
from serverproc import EXAMPLES, TOOLS, ServerProcess, running_server
from tools import guarded

# -- random schemas x random JSON -------------------------------------------------------------


def _build(builder: Callable[..., Field], **options: Any) -> Field | None:
    """The field, or None when the drawn options contradict each other (refused at declaration)."""
    try:
        return builder(**{key: value for key, value in options.items() if value is not None})
    except ToolDefinitionError:
        return None


SMALL = st.none() | st.integers(0, 6)
NUMBERS = st.none() | st.integers(-50, 50) | st.floats(-50, 50, allow_nan=False)
PATTERNS = [r"^[a-z]+$", r"^(a+)+$", r"\d", r"^[A-Z]{2}\d$", r"(?i)^ab"]
FORMATS = ["email", "uri", "uuid", "date", "date-time", "time", "hostname", "ipv4", "ipv6"]
DATES = st.none() | st.sampled_from(["2000-01-01", "2030-12-31"])
ENUM_VALUES = st.lists(
    st.sampled_from(["a", "b", "", 0, 1, 1.5, True, False, None]), min_size=1, max_size=4
)

SCALARS: st.SearchStrategy[Field | None] = st.one_of(
    st.builds(
        _build,
        st.just(string_field),
        min_length=SMALL,
        max_length=SMALL | st.just(40),
        pattern=st.none() | st.sampled_from(PATTERNS),
        format=st.none() | st.sampled_from(FORMATS),
        transform=st.none() | st.sampled_from(["trim", "lower", "upper", "normalize"]),
    ),
    st.builds(
        _build,
        st.just(number_field),
        min=NUMBERS,
        max=NUMBERS,
        integer=st.none() | st.booleans(),
        precision=st.none() | st.integers(0, 3),
        multiple_of=st.none() | st.sampled_from([0.5, 0.25, 2, 3]),
    ),
    st.builds(
        _build,
        st.just(integer_field),
        min=st.none() | st.integers(-5, 5),
        max=st.none() | st.integers(0, 100),
        multiple_of=st.none() | st.integers(1, 4),
    ),
    st.builds(_build, st.just(boolean_field)),
    st.builds(_build, st.just(enum_field), values=ENUM_VALUES),
    st.builds(_build, st.just(date_field), min=DATES, max=DATES),
    st.builds(_build, st.just(datetime_field)),
    st.builds(_build, st.just(time_field)),
    st.builds(_build, st.just(email_field)),
    st.builds(_build, st.just(url_field), schemes=st.none() | st.just(("https",))),
    st.builds(_build, st.just(uuid_field)),
    st.builds(
        _build,
        st.just(file_field),
        max_size=st.none() | st.integers(0, 16),
        allowed_types=st.none() | st.just(["text/*"]),
    ),
    st.builds(_build, st.just(json_field)),
    st.builds(_build, st.just(secret_field), min_length=SMALL),
    st.builds(_build, st.just(api_key_field), max_length=st.none() | st.just(12)),
)
KEYS = st.sampled_from(["a", "b", "city", "x-y", "1", "_p", "class", "é", ""])


def _containers(children: st.SearchStrategy[Field | None]) -> st.SearchStrategy[Field | None]:
    present = children.filter(lambda field: field is not None)
    return st.one_of(
        st.builds(
            _build,
            st.just(array_field),
            items=st.none() | present,
            min_items=st.none() | st.integers(0, 2),
            max_items=st.none() | st.integers(1, 5),
            unique_items=st.none() | st.booleans(),
        ),
        st.builds(
            _build,
            st.just(object_field),
            properties=st.none() | st.dictionaries(KEYS, present, max_size=4),
            unknown=st.none() | st.sampled_from(["reject", "ignore"]),
        ),
    )


def _presence(field: Field | None, required: bool, with_default: bool) -> Field | None:
    """Make the field required, or optional with a default (its own example), or leave it."""
    if field is None:
        return None
    try:
        if required:
            return dataclasses.replace(field, required=True)
        example = field.example_value()
        if with_default and example is not None:
            return dataclasses.replace(field, default=example)
    except (ToolDefinitionError, TypeError, ValueError):
        return None
    return field


FIELDS = st.builds(
    _presence,
    st.recursive(SCALARS, _containers, max_leaves=6),
    required=st.booleans(),
    with_default=st.booleans(),
).filter(lambda field: field is not None)
SCHEMAS = st.builds(
    lambda fields, closed: Schema(fields, subject="input", forbid_unknown=closed),
    st.dictionaries(KEYS, FIELDS, max_size=5),
    st.booleans(),
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)


def _value_for(field: Field) -> st.SearchStrategy[Any]:
    """Mostly what the field would accept, sometimes anything at all."""
    example = msgspec.to_builtins(field.example_value())
    plausible: st.SearchStrategy[Any] = st.just(example)
    if isinstance(field, ObjectField) and field.properties:
        plausible = st.fixed_dictionaries(
            {}, optional={key: _value_for(child) for key, child in field.properties.items()}
        )
    elif isinstance(field, ArrayField) and field.items is not None:
        plausible = st.lists(_value_for(field.items), max_size=6)
    return st.one_of(plausible, plausible, st.none(), JSON_VALUES)


def _conforms(field: Field, value: Any) -> bool:
    """True when ``value`` is of the type and within the bounds ``field`` promises execute."""
    if isinstance(field, StringField):
        size = len(value) if isinstance(value, str) else -1
        return size >= (field.min_length or 0) and (
            field.max_length is None or size <= field.max_length
        )
    if isinstance(field, BooleanField):
        return isinstance(value, bool)
    if isinstance(field, IntegerField | NumberField):
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (field.min is None or value >= field.min)
            and (field.max is None or value <= field.max)
            and (isinstance(value, int) or not isinstance(field, IntegerField))
        )
    if isinstance(field, EnumField):
        return any(type(value) is type(option) and value == option for option in field.values)
    if isinstance(field, DateTimeField):
        return isinstance(value, dt.datetime) and value.tzinfo is not None
    if isinstance(field, DateField):
        return isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    if isinstance(field, TimeField):
        return isinstance(value, dt.time)
    if isinstance(field, UUIDField):
        return isinstance(value, uuid.UUID)
    if isinstance(field, FileField):
        return isinstance(value, dict) and set(value) == {
            "name",
            "type",
            "size",
            "content",
            "encoding",
        }
    if isinstance(field, ArrayField):
        return (
            isinstance(value, list)
            and len(value) >= (field.min_items or 0)
            and (field.max_items is None or len(value) <= field.max_items)
            and (field.items is None or all(_conforms(field.items, item) for item in value))
        )
    if isinstance(field, ObjectField):
        if not isinstance(value, dict):
            return False
        if field.properties is None:
            return True
        return set(value) == set(field.properties) and all(
            item is None or _conforms(field.properties[key], item) for key, item in value.items()
        )
    return isinstance(field, JSONField)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(schema=SCHEMAS, data=st.data())
def test_random_schemas_give_conforming_output_or_a_validation_error(
    schema: Schema, data: st.DataObject
) -> None:
    value = data.draw(
        st.one_of(
            st.fixed_dictionaries(
                {}, optional={key: _value_for(field) for key, field in schema.fields.items()}
            ),
            st.dictionaries(KEYS, JSON_VALUES, max_size=4),
            JSON_VALUES,
        )
    )
    # Anything but a ValidationError escaping either path (or the paths disagreeing) fails here.
    outcome = run_both(schema, value)
    if isinstance(outcome, list):
        assert outcome, "a validation error names at least one field"
        return
    assert set(outcome) == set(schema.fields)
    for key, field in schema.fields.items():
        if outcome[key] is None:
            assert not field.required, f"required {key!r} came out as None"
        else:
            assert _conforms(field, outcome[key]), (key, field, outcome[key])
    # What execute receives is itself valid input, unchanged by validating it again.
    again = run_both(schema, msgspec.json.decode(msgspec.json.encode(outcome)))
    assert repr(again) == repr(outcome)


# -- schemathesis over real HTTP --------------------------------------------------------------

# Every check of the HTTP contract: no 5xx, and status codes, content types, headers and bodies
# as the document says.
CONTRACT = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
GUARDED = schemathesis.openapi.from_dict(openapi_document(guarded.tool, auth=False))
WEATHER = schemathesis.openapi.from_dict(openapi_document(weather.tool, auth=False))


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


@pytest.fixture(scope="module")
def guarded_server() -> Iterator[ServerProcess]:
    with running_server(TOOLS / "guarded.py") as server:
        yield server


@pytest.fixture(scope="module")
def weather_server() -> Iterator[ServerProcess]:
    with running_server(EXAMPLES / "weather.py") as server:
        yield server


def _fuzz(operation: Any, mode: GenerationMode, url: str, checks: list[Any], count: int) -> None:
    @settings(max_examples=count, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(mode))
    def run(case: Any) -> None:
        case.call_and_validate(base_url=url, checks=checks)

    run()


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
@pytest.mark.parametrize("operation", _operations(GUARDED), ids=lambda op: op.label)
def test_every_operation_keeps_the_contract(
    guarded_server: ServerProcess, operation: Any, mode: GenerationMode
) -> None:
    if operation.method != "post":
        if mode is GenerationMode.NEGATIVE:
            pytest.skip("a GET without parameters has nothing to violate")
        _fuzz(operation, mode, guarded_server.url, CONTRACT, 5)
        return
    # Schema-violating bodies must be refused too. (Schema-valid ones may still fail rules JSON
    # Schema cannot state: RE2 patterns read \s without \v, a file's size against its content.)
    extra = [negative_data_rejection] if mode is GenerationMode.NEGATIVE else []
    _fuzz(operation, mode, guarded_server.url, CONTRACT + extra, 60)


@pytest.mark.slow
def test_every_body_the_document_allows_is_accepted(weather_server: ServerProcess) -> None:
    # The weather tool's rules are all expressible in JSON Schema: the document is exact.
    (execute,) = [op for op in _operations(WEATHER) if op.method == "post"]
    checks = [*CONTRACT, positive_data_acceptance]
    _fuzz(execute, GenerationMode.POSITIVE, weather_server.url, checks, 40)


# -- what fuzzing found, kept ---------------------------------------------------------------


async def test_the_document_requires_input_data_when_input_is_required() -> None:
    document = openapi_document(weather.tool, auth=False)
    body = document["paths"]["/api/execute"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["required"] == ["input_data"]
    async with AsyncToolTestClient(weather.tool) as client:
        assert (await client.post("/api/execute", json={})).status_code == 400


def test_the_document_says_execution_id_is_never_empty() -> None:
    document = openapi_document(weather.tool, auth=False)
    schema = document["paths"]["/api/execute"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    assert schema["properties"]["execution_id"]["anyOf"][0]["minLength"] == 1


def test_the_document_requires_config_the_server_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    def build() -> dict[str, Any]:
        tool = create_tool(
            metadata={"name": "needs-key", "version": "1.0.0", "description": "x"},
            schema={"config": {"token": api_key_field(required=True, env="FUZZ_TOKEN")}},
            execute=dict,
        )
        return openapi_document(tool, auth=False)

    monkeypatch.delenv("FUZZ_TOKEN", raising=False)
    lacking = build()
    monkeypatch.setenv("FUZZ_TOKEN", "server-side-token")
    provided = build()
    body = "paths", "/api/execute", "post", "requestBody", "content", "application/json", "schema"
    for document, required in ((lacking, ["config"]), (provided, None)):
        schema: Any = document
        for step in body:
            schema = schema[step]
        assert schema.get("required") == required
        config = document["components"]["schemas"]["Config"]
        assert config.get("required") == (["token"] if required else None)


async def test_optional_properties_are_documented_as_nullable() -> None:
    document = openapi_document(guarded.tool, auth=False)
    properties = document["components"]["schemas"]["Input"]["properties"]
    assert properties["name"]["anyOf"][1] == {"type": "null"}
    street = properties["address"]["anyOf"][0]["properties"]["street"]
    assert "anyOf" not in street  # required inside its object: null is refused there
    async with AsyncToolTestClient(guarded.tool) as client:
        assert (await client.execute({"name": None, "address": None})).status_code == 200
        refused = await client.execute({"address": {"street": None}})
    assert refused.validation_errors[0]["path"] == "address.street"


@pytest.mark.parametrize("size", [5, 5.0])
async def test_a_file_size_may_be_an_integral_float(size: float) -> None:
    upload = {"name": "a.txt", "content": "aGVsbG8=", "size": size}
    async with AsyncToolTestClient(guarded.tool) as client:
        response = await client.execute({"upload": upload})
    assert response.status_code == 200, response.json
