"""The compiled schema: every failing field at once, unknown fields, the issue cap, hostile input,
and the fast path agreeing with the field-by-field walker."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _validation import Outcome, accepted, fast_only, outcome, rejected, run_both, schema_of
from ai_spine_tools import (
    InvalidJSONError,
    ToolError,
    ValidationError,
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
    string_field,
    uuid_field,
)
from ai_spine_tools.fields import Field
from ai_spine_tools.fields._schema import MAX_ISSUES, Schema

RICH: dict[str, Field] = {
    "city": string_field(required=True, max_length=20, transform="trim"),
    "code": string_field(pattern=r"^[A-Z]{2}\d$"),
    "email": email_field(),
    "count": integer_field(min=0, max=100),
    "ratio": number_field(min=0, max=1, precision=2),
    "flag": boolean_field(default=False),
    "units": enum_field(["c", "f"], default="c"),
    "mixed": enum_field(["auto", 1, True]),
    "tags": array_field(string_field(max_length=5), max_items=4, unique_items=True),
    "when": date_field(min="2000-01-01"),
    "at": datetime_field(),
    "id": uuid_field(),
    "address": object_field(
        {"city": string_field(required=True), "zip": string_field(pattern=r"^\d{5}$")}
    ),
    "extra": json_field(),
    "file": file_field(max_size=10),
}
RICH_SCHEMA = schema_of(RICH)


def test_every_failing_field_is_reported_at_once() -> None:
    issues = rejected(
        RICH_SCHEMA,
        {
            "city": "x" * 21,
            "code": "abc",
            "count": 101,
            "units": "kelvin",
            "tags": ["a", "a"],
            "when": "1999-12-31",
            "flag": True,
        },
    )
    assert issues == [
        ("city", "too_long"),
        ("code", "pattern"),
        ("count", "maximum"),
        ("units", "enum"),
        ("tags[1]", "unique"),
        ("when", "minimum"),
    ]


def test_five_bad_fields_give_five_issues_and_one_summary() -> None:
    schema = schema_of({f"f{i}": integer_field(max=1) for i in range(5)})
    with pytest.raises(ValidationError) as info:
        schema.decode_json(msgspec.json.encode({f"f{i}": 2 for i in range(5)}))
    error = info.value
    assert len(error.issues) == 5
    assert [issue["path"] for issue in error.details["errors"]] == [f"f{i}" for i in range(5)]
    assert error.message.startswith("Invalid input: 5 fields are invalid: ")
    assert error.code == "VALIDATION_ERROR"
    assert error.status == 400


def test_null_for_every_optional_field_stays_on_the_fast_path() -> None:
    sent = {"city": "Madrid", **{key: None for key, field in RICH.items() if not field.required}}
    out = accepted(RICH_SCHEMA, sent)
    assert fast_only(RICH_SCHEMA, sent) == out
    assert (out["flag"], out["units"], out["code"]) == (False, "c", None)


def test_null_for_a_required_field_is_still_required() -> None:
    assert rejected(RICH_SCHEMA, {"city": None}) == [("city", "required")]


def test_an_input_that_is_not_an_object_is_one_type_issue() -> None:
    for value in ([1], "x", 1, None, True):
        assert rejected(RICH_SCHEMA, value) == [("", "type")]


def test_a_valid_rich_input_is_accepted_by_both_paths() -> None:
    out = accepted(
        RICH_SCHEMA,
        {
            "city": "  Madrid ",
            "code": "ES1",
            "count": 3,
            "ratio": 0.25,
            "mixed": 1,
            "tags": ["a", "b"],
            "when": "2024-01-01",
            "address": {"city": "Madrid"},
            "extra": [1, {"a": None}],
        },
    )
    assert out["city"] == "Madrid"
    assert out["flag"] is False
    assert out["units"] == "c"
    assert out["address"] == {"city": "Madrid", "zip": None}
    assert out["email"] is None


@pytest.mark.parametrize(
    "keys",
    [
        ["city", "units"],
        ["first-name", "class", "_private", "f0", "f1"],
        ["ünïcode", "with space", "1st", "__dunder__"],
    ],
)
def test_any_key_names_come_back_as_sent(keys: list[str]) -> None:
    fields: dict[str, Field] = {
        key: object_field({key: string_field(pattern="^x")}) for key in keys
    }
    schema = schema_of(fields)
    value = {key: {key: "x" + key} for key in keys}
    assert accepted(schema, value) == value
    bad = {key: {key: "y"} for key in keys}
    assert rejected(schema, bad) == [(f"{key}.{key}", "pattern") for key in keys]


def test_nested_key_names_come_back_as_sent_under_plain_ones() -> None:
    person = object_field({"first-name": string_field(), "class": integer_field()})
    schema = schema_of({"people": array_field(person), "owner": person})
    value = {"people": [{"first-name": "Ada", "class": 1}], "owner": {"first-name": "Bo"}}
    assert accepted(schema, value) == {
        "people": [{"first-name": "Ada", "class": 1}],
        "owner": {"first-name": "Bo", "class": None},
    }


# -- unknown fields -----------------------------------------------------------------------------


async def _echo(input: dict[str, Any]) -> dict[str, Any]:
    return input


async def test_unknown_fields_are_rejected_by_default() -> None:
    tool = create_tool(
        metadata={"name": "echo", "version": "1.0.0", "description": "Echo"},
        schema={"input": {"a": string_field()}},
        execute=_echo,
    )
    result = await tool.run({"a": "x", "b": 1, "c": 2})
    assert result.failure is not None
    assert result.error_code == "VALIDATION_ERROR"
    assert [(e["path"], e["code"]) for e in result.failure.details["errors"]] == [
        ("b", "unknown_field"),
        ("c", "unknown_field"),
    ]


async def test_unknown_fields_are_dropped_when_ignored() -> None:
    tool = create_tool(
        metadata={"name": "echo", "version": "1.0.0", "description": "Echo"},
        schema={"input": {"a": string_field()}},
        execute=_echo,
        unknown_fields="ignore",
    )
    result = await tool.run({"a": "x", "b": 1})
    assert result.ok
    assert result.data == {"a": "x"}


def test_unknown_field_is_still_reported_with_other_issues() -> None:
    schema = schema_of({"a": integer_field()})
    assert rejected(schema, {"a": "x", "zzz": 1}) == [("a", "type"), ("zzz", "unknown_field")]


# -- the issue cap ------------------------------------------------------------------------------


def test_issues_are_capped_and_the_rest_counted() -> None:
    schema = schema_of({"ids": array_field(integer_field())})
    with pytest.raises(ValidationError) as info:
        schema.decode_json(msgspec.json.encode({"ids": ["x"] * 250}))
    error = info.value
    assert len(error.issues) == MAX_ISSUES == 100
    assert error.details["errors_not_shown"] == 150
    assert error.issues[-1].path == "ids[99]"
    assert "250 fields are invalid" in error.message


def test_many_unknown_fields_are_capped_too() -> None:
    schema = schema_of({"a": string_field()})
    with pytest.raises(ValidationError) as info:
        schema.validate({f"k{i}": i for i in range(1000)})
    assert len(info.value.issues) == 100
    assert info.value.details["errors_not_shown"] == 900


def test_a_few_issues_carry_no_count_of_hidden_ones() -> None:
    with pytest.raises(ValidationError) as info:
        schema_of({"a": string_field()}).validate({"a": 1})
    assert "errors_not_shown" not in info.value.details


# -- hostile input ------------------------------------------------------------------------------

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
HOSTILE_JSON: list[tuple[str, bytes]] = [
    ("deep array as a field", b'{"extra": ' + DEEP_ARRAY + b"}"),
    ("deep object as a field", b'{"extra": ' + DEEP_OBJECT + b"}"),
    ("deep array at the top", DEEP_ARRAY),
    ("deep object at the top", DEEP_OBJECT),
    ("deep array in a typed array", b'{"tags": ' + DEEP_ARRAY + b"}"),
    ("megabyte string", msgspec.json.encode({"city": "x" * 1_000_000})),
    ("megabyte key", msgspec.json.encode({"k" * 1_000_000: 1})),
    ("million items", msgspec.json.encode({"city": "x", "tags": ["a"] * 1_000_000})),
    ("invalid utf-8 in a value", b'{"city": "\xff\xfe"}'),
    ("invalid utf-8 in a key", b'{"\xc3\x28": 1}'),
    ("overlong utf-8", b'{"city": "\xc0\xaf"}'),
    ("lone surrogate escape", b'{"city": "\\ud800"}'),
    ("nul byte in a string", b'{"city": "a\x00b"}'),
    ("huge integer", b'{"city": "x", "count": 1' + b"0" * 400 + b"}"),
    ("huge integer for a number", b'{"city": "x", "ratio": 1' + b"0" * 400 + b"}"),
    ("number out of float range", b'{"city": "x", "ratio": 1e400}'),
    ("negative number out of range", b'{"city": "x", "ratio": -1e400}'),
    ("NaN literal", b'{"city": "x", "ratio": NaN}'),
    ("Infinity literal", b'{"city": "x", "ratio": Infinity}'),
    ("empty body", b""),
    ("whitespace body", b"   "),
    ("truncated", b'{"city": "x"'),
    ("trailing garbage", b'{"city": "x"} {}'),
    ("byte order mark", b'\xef\xbb\xbf{"city": "x"}'),
    ("single quotes", b"{'city': 'x'}"),
    ("comment", b'{"city": "x" /* hi */}'),
    ("duplicate keys", b'{"city": "x", "city": 5}'),
    ("null body", b"null"),
    ("string body", b'"city"'),
]


@pytest.mark.parametrize(("label", "body"), HOSTILE_JSON, ids=[label for label, _ in HOSTILE_JSON])
def test_hostile_json_only_raises_validation_or_invalid_json(label: str, body: bytes) -> None:
    with pytest.raises((ValidationError, InvalidJSONError)):
        RICH_SCHEMA.decode_json(body)


def test_megabyte_string_fails_on_max_length() -> None:
    body = msgspec.json.encode({"city": "x" * 1_000_000})
    with pytest.raises(ValidationError) as info:
        RICH_SCHEMA.decode_json(body)
    assert [(i.path, i.code) for i in info.value.issues] == [("city", "too_long")]


def test_million_items_fail_on_max_items() -> None:
    schema = schema_of({"ids": array_field(integer_field(), max_items=10)})
    with pytest.raises(ValidationError) as info:
        schema.decode_json(msgspec.json.encode({"ids": list(range(1_000_000))}))
    assert [(i.path, i.code) for i in info.value.issues] == [("ids", "too_long")]


def test_deep_nesting_is_invalid_json_not_a_crash() -> None:
    with pytest.raises(InvalidJSONError, match="nested too deeply"):
        RICH_SCHEMA.decode_json(b'{"city": "x", "extra": ' + DEEP_ARRAY + b"}")


def _nested(depth: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(depth):
        child: list[Any] = []
        node.append(child)
        node = child
    return root


@pytest.mark.parametrize(
    "fields",
    [
        {"extra": json_field()},
        {"extra": array_field()},
        {"extra": array_field(unique_items=True)},
        {"extra": array_field(array_field(array_field()))},
    ],
)
def test_deep_nesting_in_process_is_never_a_crash(fields: dict[str, Field]) -> None:
    schema = schema_of(fields)
    deep = _nested(100_000)
    try:
        out = schema.validate({"extra": [deep, deep]})
    except (ValidationError, InvalidJSONError):
        return
    assert list(out) == ["extra"]  # accepted: in-process values need not be walked to the end


def test_invalid_utf8_is_invalid_json() -> None:
    with pytest.raises(InvalidJSONError, match="UTF-8") as info:
        RICH_SCHEMA.decode_json(b'{"city": "\xff"}')
    assert info.value.status == 400
    assert info.value.code == "INVALID_JSON"


def test_huge_integer_text_is_out_of_range_for_a_number() -> None:
    schema = schema_of({"n": number_field()})
    with pytest.raises(ValidationError) as info:
        schema.decode_json(b'{"n": 1' + b"0" * 400 + b"}")
    assert [(i.path, i.code) for i in info.value.issues] == [("n", "maximum")]


def test_huge_integer_text_is_kept_exact_for_an_unbounded_integer() -> None:
    schema = schema_of({"n": integer_field()})
    assert schema.decode_json(b'{"n": 1' + b"0" * 400 + b"}") == {"n": 10**400}


NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
@pytest.mark.parametrize(
    "field",
    [number_field(), number_field(min=0, max=1), integer_field(), integer_field(max=5)],
    ids=repr,
)
def test_non_finite_numbers_in_process_are_type_issues(field: Field, value: float) -> None:
    with pytest.raises(ValidationError) as info:
        schema_of({"n": field}).validate({"n": value})
    assert [(i.path, i.code) for i in info.value.issues] == [("n", "type")]


WRONG_TYPES: list[Any] = [None, True, 0, -1.5, "", "x", [], [None], {}, {"a": None}]


@pytest.mark.parametrize("value", WRONG_TYPES, ids=repr)
def test_any_json_value_in_any_field_gives_a_dict_or_validation_error(value: Any) -> None:
    for key in RICH:
        for sent in ({"city": "x", key: value}, {"city": "x", "address": {key: value}}):
            outcome = run_both(RICH_SCHEMA, sent)
            assert isinstance(outcome, dict | list)


def test_values_json_cannot_hold_are_rejected_in_process() -> None:
    schema = schema_of({"a": string_field(), "b": integer_field()})
    with pytest.raises(ValidationError) as info:
        schema.validate({"a": object(), "b": b"1"})
    assert [(i.path, i.code) for i in info.value.issues] == [("a", "type"), ("b", "type")]


@pytest.mark.parametrize("size", [40, 100_000])
def test_catastrophic_pattern_completes_with_a_pattern_issue(size: int) -> None:
    schema = schema_of({"value": string_field(pattern=r"^(a+)+$")})
    assert rejected(schema, {"value": "a" * size + "!"}) == [("value", "pattern")]
    assert accepted(schema, {"value": "a" * size}) == {"value": "a" * size}


# -- the fast path and the walker agree ---------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=20,
)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "city": st.text(max_size=24),
    "code": st.from_regex(r"^[A-Z]{2}\d$", fullmatch=True) | st.text(max_size=4),
    "email": st.emails() | st.text(max_size=8),
    "count": st.integers(-5, 105) | st.floats(-5, 105),
    "ratio": st.floats(-0.5, 1.5) | st.sampled_from([0, 1, 0.25, 0.5]),
    "flag": st.booleans(),
    "units": st.sampled_from(["c", "f", "k"]),
    "mixed": st.sampled_from(["auto", 1, True, 1.0, False, "1"]),
    "tags": st.lists(st.sampled_from(["a", "b", "toolong", ""]), max_size=6),
    "when": st.dates().map(str),
    "at": st.datetimes().map(lambda d: d.isoformat()),
    "id": st.uuids().map(str),
    "address": st.fixed_dictionaries(
        {}, optional={"city": st.text(max_size=5), "zip": st.from_regex(r"^\d{5}$", fullmatch=True)}
    ),
    "extra": JSON_VALUES,
    "file": st.fixed_dictionaries(
        {"name": st.sampled_from(["a.txt", ""]), "content": st.sampled_from(["aGVsbG8=", "!"])},
        optional={"size": st.integers(0, 6), "type": st.sampled_from(["text/plain", "x"])},
    ),
}
RECORDS = st.fixed_dictionaries(
    {"city": PLAUSIBLE["city"]}, optional={k: v for k, v in PLAUSIBLE.items() if k != "city"}
)
# Mostly plausible records (so the fast path accepts often), some keys swapped for any JSON.
INPUTS = (
    st.tuples(
        RECORDS,
        st.dictionaries(st.sampled_from([*RICH, "unknown"]), st.none() | JSON_VALUES, max_size=2),
    ).map(lambda pair: {**pair[0], **pair[1]})
    | RECORDS
    | JSON_VALUES
)


def _walker(schema: Schema, data: bytes) -> Outcome:
    return outcome(lambda: schema.diagnose(msgspec.json.decode(data)))


def _fast(schema: Schema, data: bytes) -> Outcome | None:
    """The fast path alone: ``None`` when msgspec rejects (and the walker would take over)."""
    try:
        return schema._finish(schema._decoder.decode(data))
    except msgspec.ValidationError:
        return None
    except ValidationError as exc:
        return [(issue.path, issue.code) for issue in exc.issues]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(INPUTS)
def test_random_json_gives_a_dict_or_validation_error(value: Any) -> None:
    try:
        outcome = run_both(RICH_SCHEMA, value)
    except ToolError as exc:  # pragma: no cover - reported with the failing example
        pytest.fail(f"raised {type(exc).__name__}: {exc}")
    assert isinstance(outcome, dict | list)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(INPUTS)
def test_fast_path_agrees_with_the_walker(value: Any) -> None:
    data = msgspec.json.encode(value)
    fast = _fast(RICH_SCHEMA, data)
    walker = _walker(RICH_SCHEMA, data)
    if fast is not None:
        assert repr(fast) == repr(walker)
    assert repr(outcome(lambda: RICH_SCHEMA.decode_json(data))) == repr(walker)
