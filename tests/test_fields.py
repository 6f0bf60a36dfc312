"""Field builders: accepted values and their normalised form, rejected values with the exact code
and path, defaults, null-as-absent, and the mistakes caught when a field is declared."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _validation import accepted, fast_only, field_accepts, field_rejects, rejected, schema_of
from ai_spine_tools import (
    ToolDefinitionError,
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
from ai_spine_tools.fields import (
    ArrayField,
    EnumField,
    Field,
    NumberField,
    ObjectField,
    StringField,
    as_field,
)
from ai_spine_tools.fields._file import _BASE64
from ai_spine_tools.fields._patterns import _compile_re2
from ai_spine_tools.fields._text import (
    _EMAIL,
    _FORMATS,
    _common_url,
    _is_email,
    _is_uri,
    _is_uri_reference,
)

UTC = dt.UTC
PLUS_2 = dt.timezone(dt.timedelta(hours=2))
UUID0 = uuid.UUID("00000000-0000-4000-8000-000000000000")
HELLO = {"name": "a.txt", "content": "aGVsbG8=", "type": "text/plain"}  # b"hello"
HELLO_OUT = {**HELLO, "size": 5, "encoding": "base64"}


# -- valid values, per field type ---------------------------------------------------------------

VALID: list[tuple[Field, Any, Any]] = [
    # string
    (string_field(), "hello", "hello"),
    (string_field(), "", ""),
    (string_field(min_length=2, max_length=5), "ab", "ab"),
    (string_field(min_length=2, max_length=5), "abcde", "abcde"),
    (string_field(max_length=3), "ééé", "ééé"),
    (string_field(max_length=2), "🙂🙂", "🙂🙂"),
    (string_field(pattern=r"^[a-z]+$"), "abc", "abc"),
    (string_field(pattern=r"\d"), "a1b", "a1b"),
    (string_field(transform="trim", max_length=3), "  abc  ", "abc"),
    (string_field(transform=["trim", "lower"], max_length=3), "  ABC ", "abc"),
    (string_field(transform="upper", pattern="^[A-Z]+$"), "abc", "ABC"),
    (string_field(transform="normalize", max_length=1), "e\u0301", "\u00e9"),
    (string_field(format="email"), "user@example.com", "user@example.com"),
    (string_field(format="uri"), "https://example.com/x?y=1", "https://example.com/x?y=1"),
    (string_field(format="url", schemes=("FTP",)), "ftp://host/file", "ftp://host/file"),
    (string_field(format="uuid"), str(UUID0), str(UUID0)),
    (string_field(format="date"), "2024-02-29", "2024-02-29"),
    (string_field(format="date-time"), "2024-02-29T10:00:00Z", "2024-02-29T10:00:00Z"),
    (string_field(format="time"), "10:00:00", "10:00:00"),
    (string_field(format="hostname"), "api.example.com", "api.example.com"),
    (string_field(format="ipv4"), "192.0.2.1", "192.0.2.1"),
    (string_field(format="ipv6"), "2001:db8::1", "2001:db8::1"),
    # email, url, secret
    (email_field(), "first.last+tag@sub.example.org", "first.last+tag@sub.example.org"),
    (url_field(), "http://localhost:8080/path?q=1", "http://localhost:8080/path?q=1"),
    (url_field(), "https://example.com", "https://example.com"),
    (api_key_field(), "sk-live-123", "sk-live-123"),
    (secret_field(min_length=3), "abc", "abc"),
    # number
    (number_field(), 1, 1.0),
    (number_field(), -2.5, -2.5),
    (number_field(), 0, 0.0),
    (number_field(min=0, max=10), 0, 0.0),
    (number_field(min=0, max=10), 10.0, 10.0),
    (number_field(precision=2), 1.25, 1.25),
    (number_field(precision=2), 3, 3.0),
    (number_field(multiple_of=0.5), 1.5, 1.5),
    (number_field(multiple_of=0.1), 0.3, 0.3),
    (number_field(max=1e308), 1e308, 1e308),
    # integer
    (integer_field(), 7, 7),
    (integer_field(), -7, -7),
    (integer_field(), 2.0, 2),
    (integer_field(), 10**30, 10**30),
    (integer_field(min=-10, max=10), -10, -10),
    (integer_field(min=-10, max=10), 10, 10),
    (integer_field(min=0.5), 1, 1),
    (integer_field(max=9.5), 9, 9),
    (integer_field(multiple_of=5), 15, 15),
    (integer_field(multiple_of=5), 0, 0),
    (number_field(integer=True), 4, 4),
    # boolean
    (boolean_field(), True, True),
    (boolean_field(), False, False),
    # enum
    (enum_field(["celsius", "fahrenheit"]), "celsius", "celsius"),
    (enum_field([1, 2, 3]), 2, 2),
    (enum_field([0.5, 1.5]), 1.5, 1.5),
    (enum_field(["auto", 1, True]), "auto", "auto"),
    (enum_field(["auto", 1, True]), 1, 1),
    (enum_field(["auto", 1, True]), True, True),
    # array
    (array_field(), [1, "a", None, {"b": []}], [1, "a", None, {"b": []}]),
    (array_field(), [], []),
    (array_field(string_field()), ["a", "b"], ["a", "b"]),
    (array_field(min_items=1, max_items=3), [1], [1]),
    (array_field(min_items=1, max_items=3), [1, 2, 3], [1, 2, 3]),
    (array_field(integer_field(), unique_items=True), [1, 2, 3], [1, 2, 3]),
    (array_field(unique_items=True), [{"a": 1}, {"a": 2}], [{"a": 1}, {"a": 2}]),
    (array_field(string_field(transform="lower")), ["A", "B"], ["a", "b"]),
    (array_field(date_field()), ["2024-01-01"], [dt.date(2024, 1, 1)]),
    (array_field(json_field()), [1, None], [1, None]),
    # object
    (
        object_field({"city": string_field(required=True), "zip": string_field()}),
        {"city": "Madrid"},
        {"city": "Madrid", "zip": None},
    ),
    (
        object_field({"when": date_field(), "n": number_field(default=1)}),
        {"when": "2024-01-01", "n": None},
        {"when": dt.date(2024, 1, 1), "n": 1},
    ),
    (object_field({"a": string_field()}, unknown="ignore"), {"a": "x", "b": 1}, {"a": "x"}),
    (object_field(), {"any": [1, {"thing": None}]}, {"any": [1, {"thing": None}]}),
    (object_field(max_properties=2), {"a": 1, "b": 2}, {"a": 1, "b": 2}),
    (
        object_field({"n": string_field(transform="trim", max_length=3), "k": json_field()}),
        {"n": "  abc ", "k": [None]},
        {"n": "abc", "k": [None]},
    ),
    (
        object_field({"ids": array_field(integer_field(), unique_items=True)}),
        {"ids": [3, 1]},
        {"ids": [3, 1]},
    ),
    # date, datetime, time
    (date_field(), "2024-02-29", dt.date(2024, 2, 29)),
    (date_field(), dt.date(2024, 2, 29), dt.date(2024, 2, 29)),
    (date_field(min="2024-01-01", max="2024-12-31"), "2024-01-01", dt.date(2024, 1, 1)),
    (date_field(min="2024-01-01", max="2024-12-31"), "2024-12-31", dt.date(2024, 12, 31)),
    (datetime_field(), "2024-01-31T12:00:00Z", dt.datetime(2024, 1, 31, 12, tzinfo=UTC)),
    (datetime_field(), "2024-01-31T12:00:00", dt.datetime(2024, 1, 31, 12, tzinfo=UTC)),
    (
        datetime_field(),
        "2024-01-31T12:00:00.250+02:00",
        dt.datetime(2024, 1, 31, 12, 0, 0, 250000, tzinfo=PLUS_2),
    ),
    (
        datetime_field(min="2024-01-01T00:00:00Z"),
        "2024-01-01T01:00:00+01:00",  # the same instant as the bound
        dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    ),
    (time_field(), "12:30:00", dt.time(12, 30)),
    (time_field(), "12:30:00.5", dt.time(12, 30, 0, 500000)),
    (time_field(), "12:30:00+02:00", dt.time(12, 30, tzinfo=PLUS_2)),
    (time_field(min="09:00:00", max="17:00:00"), "17:00:00", dt.time(17)),
    # uuid
    (uuid_field(), str(UUID0), UUID0),
    (uuid_field(), str(UUID0).upper(), UUID0),
    (uuid_field(), UUID0.hex, UUID0),
    (uuid_field(), UUID0, UUID0),
    # file
    (file_field(), HELLO, HELLO_OUT),
    (file_field(), {**HELLO, "size": 5}, HELLO_OUT),
    (file_field(max_size=5), HELLO, HELLO_OUT),
    (
        file_field(),
        {"name": "a", "content": ""},
        {
            "name": "a",
            "type": "application/octet-stream",
            "size": 0,
            "content": "",
            "encoding": "base64",
        },
    ),
    (
        file_field(allowed_types=["image/*", "application/pdf"]),
        {**HELLO, "type": "image/png"},
        {**HELLO_OUT, "type": "image/png"},
    ),
    (file_field(allowed_types=["*/*"]), HELLO, HELLO_OUT),
    # json
    (json_field(), 0, 0),
    (json_field(), False, False),
    (json_field(), "x", "x"),
    (json_field(), [None, 1.5], [None, 1.5]),
    (json_field(), {"a": {"b": [1, None]}}, {"a": {"b": [1, None]}}),
]


@pytest.mark.parametrize(("field", "raw", "expected"), VALID)
def test_field_accepts_valid_value_and_normalises_it(field: Field, raw: Any, expected: Any) -> None:
    out = field_accepts(field, raw)
    assert out == expected
    assert type(out) is type(expected)


def test_datetime_without_offset_becomes_utc_aware() -> None:
    out = field_accepts(datetime_field(), "2024-05-01T08:00:00")
    assert out.tzinfo is not None
    assert out.utcoffset() == dt.timedelta(0)


def test_number_field_gives_floats_and_integer_field_gives_ints() -> None:
    assert type(field_accepts(number_field(), 3)) is float
    assert type(field_accepts(integer_field(), 3.0)) is int


# -- invalid values, per field type -------------------------------------------------------------

INVALID: list[tuple[Field, Any, str]] = [
    # string
    (string_field(), 5, "type"),
    (string_field(), True, "type"),
    (string_field(), ["a"], "type"),
    (string_field(), {"a": "b"}, "type"),
    (string_field(min_length=2), "a", "too_short"),
    (string_field(max_length=3), "abcd", "too_long"),
    (string_field(max_length=1), "e\u0301", "too_long"),
    (string_field(transform="trim", min_length=2), "  a  ", "too_short"),
    (string_field(transform="normalize", max_length=1), "ab", "too_long"),
    (string_field(pattern=r"^[a-z]+$"), "ABC", "pattern"),
    (string_field(pattern=r"^[a-z]+$", format="email"), "a@b.co", "pattern"),
    (string_field(format="email"), "not-an-email", "format"),
    (string_field(format="email"), "a@b", "format"),
    (string_field(format="email"), "x" * 65 + "@example.com", "format"),
    (string_field(format="uri"), "example.com", "format"),
    (string_field(format="uri"), "ftp://example.com", "format"),
    (string_field(format="uri"), "http://", "format"),
    (string_field(format="uri"), "http://exa mple.com", "format"),
    (string_field(format="uri"), "http://host:99999/", "format"),
    (string_field(format="uuid"), "nope", "format"),
    (string_field(format="date"), "2023-02-29", "format"),
    (string_field(format="date-time"), "yesterday", "format"),
    (string_field(format="time"), "25:00:00", "format"),
    (string_field(format="hostname"), "-bad-.example.com", "format"),
    (string_field(format="ipv4"), "256.1.1.1", "format"),
    (string_field(format="ipv6"), "192.0.2.1", "format"),
    # email, url, secret
    (email_field(), "plain", "format"),
    (email_field(), "@example.com", "format"),
    (email_field(), "a@-example.com", "format"),
    (email_field(), "a" * 60 + "@" + "b" * 190 + ".com", "too_long"),
    (url_field(), "javascript:alert(1)", "format"),
    (url_field(), "mailto:a@example.com", "format"),
    (url_field(), "//example.com/x", "format"),
    (url_field(), "https://example.com/" + "x" * 2048, "too_long"),
    (api_key_field(), 12345, "type"),
    (secret_field(min_length=10), "short", "too_short"),
    # number
    (number_field(), "1", "type"),
    (number_field(), True, "type"),
    (number_field(), [1], "type"),
    (number_field(), {"n": 1}, "type"),
    (number_field(min=0), -0.1, "minimum"),
    (number_field(max=10), 10.5, "maximum"),
    (number_field(precision=2), 1.234, "precision"),
    (number_field(precision=0), 1.5, "precision"),
    (number_field(multiple_of=0.5), 1.2, "multiple_of"),
    (number_field(), 10**400, "maximum"),
    (number_field(), -(10**400), "maximum"),
    # integer
    (integer_field(), 1.5, "type"),
    (integer_field(), "1", "type"),
    (integer_field(), True, "type"),
    (integer_field(min=1), 0, "minimum"),
    (integer_field(max=10), 11, "maximum"),
    (integer_field(min=0.5), 0, "minimum"),
    (integer_field(multiple_of=5), 7, "multiple_of"),
    (integer_field(multiple_of=2.5), 3, "multiple_of"),
    # boolean
    (boolean_field(), "true", "type"),
    (boolean_field(), 1, "type"),
    (boolean_field(), 0, "type"),
    (boolean_field(), "yes", "type"),
    (boolean_field(), [], "type"),
    # enum
    (enum_field(["a", "b"]), "c", "enum"),
    (enum_field(["a", "b"]), "A", "enum"),
    (enum_field(["a", "b"]), ["a"], "enum"),
    (enum_field(["1"]), 1, "enum"),
    (enum_field([1, 2]), True, "enum"),
    (enum_field([1, 2]), "1", "enum"),
    (enum_field([True]), 1, "enum"),
    (enum_field(["auto", 1, True]), "x", "enum"),
    (enum_field(["auto", 1, True]), {"a": 1}, "enum"),
    (enum_field(["auto", 1, True]), False, "enum"),
    # array (item problems are in the deep-path tests below)
    (array_field(), "a", "type"),
    (array_field(), {"a": 1}, "type"),
    (array_field(), 1, "type"),
    (array_field(min_items=2), [1], "too_short"),
    (array_field(max_items=2), [1, 2, 3], "too_long"),
    (array_field(max_items=2), list(range(100_000)), "too_long"),
    # object
    (object_field({"a": string_field()}), "x", "type"),
    (object_field({"a": string_field()}), [], "type"),
    (object_field(), 1, "type"),
    (object_field(max_properties=1), {"a": 1, "b": 2}, "too_long"),
    # date, datetime, time
    (date_field(), "2023-02-29", "format"),
    (date_field(), "2024/01/01", "format"),
    (date_field(), "2024-01-01T00:00:00", "format"),
    (date_field(), 20240101, "type"),
    (date_field(), True, "type"),
    (date_field(min="2024-01-01"), "2023-12-31", "minimum"),
    (date_field(max="2024-12-31"), "2025-01-01", "maximum"),
    (datetime_field(), "2024-01-31", "format"),
    (datetime_field(), "nope", "format"),
    (datetime_field(), 1700000000, "type"),
    (datetime_field(min="2024-01-01T00:00:00Z"), "2024-01-01T00:59:59+01:00", "minimum"),
    (datetime_field(max="2024-01-01T00:00:00Z"), "2024-01-01T00:00:01", "maximum"),
    (time_field(), "12:30", "format"),
    (time_field(), "25:00:00", "format"),
    (time_field(), 1230, "type"),
    (time_field(min="09:00:00"), "08:59:59", "minimum"),
    (time_field(max="17:00:00"), "17:00:01", "maximum"),
    # uuid
    (uuid_field(), "nope", "format"),
    (uuid_field(), str(UUID0)[:-1], "format"),
    (uuid_field(), "{" + str(UUID0) + "}", "format"),
    (uuid_field(), 5, "type"),
    # file
    (file_field(), "aGVsbG8=", "type"),
    (file_field(), {"content": "aGVsbG8="}, "type"),
    (file_field(), {**HELLO, "encoding": "hex"}, "type"),
    (file_field(), {**HELLO, "name": ""}, "type"),
    (file_field(), {**HELLO, "content": "not base64!"}, "format"),
    (file_field(), {**HELLO, "size": 4}, "size_mismatch"),
    (file_field(max_size=4), HELLO, "too_long"),
    (file_field(max_size=4), {**HELLO, "content": "A" * 1_000_000}, "too_long"),
    (file_field(allowed_types=["image/*"]), HELLO, "file_type"),
    (file_field(allowed_types=["image/png"]), {**HELLO, "type": "image/gif"}, "file_type"),
]


@pytest.mark.parametrize(("field", "raw", "code"), INVALID)
def test_field_rejects_invalid_value_with_code_and_path(field: Field, raw: Any, code: str) -> None:
    assert field_rejects(field, raw) == [("value", code)]


FIELDS_WITHOUT_DEFAULT = [
    string_field(),
    number_field(),
    integer_field(),
    boolean_field(),
    enum_field(["a"]),
    enum_field(["a", 1]),
    array_field(),
    object_field({"a": string_field()}),
    object_field(),
    date_field(),
    datetime_field(),
    time_field(),
    email_field(),
    url_field(),
    uuid_field(),
    file_field(),
    json_field(),
    api_key_field(),
]


@pytest.mark.parametrize("field", FIELDS_WITHOUT_DEFAULT, ids=lambda f: type(f).__name__)
def test_required_field_rejects_absent_and_null(field: Field) -> None:
    required = type(field)(**{**_options(field), "required": True})
    schema = schema_of({"value": required})
    assert rejected(schema, {}) == [("value", "required")]
    assert rejected(schema, {"value": None}) == [("value", "required")]
    assert fast_only(schema, {"value": None}) is None  # msgspec refuses it; the walker names it


@pytest.mark.parametrize("field", FIELDS_WITHOUT_DEFAULT, ids=lambda f: type(f).__name__)
def test_optional_field_without_default_reads_absent_and_null_as_none(field: Field) -> None:
    schema = schema_of({"value": field})
    assert accepted(schema, {}) == {"value": None}
    assert accepted(schema, {"value": None}) == {"value": None}
    assert fast_only(schema, {"value": None}) == {"value": None}  # no detour through the walker


def _options(field: Field) -> dict[str, Any]:
    """The constructor arguments that rebuild ``field``."""
    if isinstance(field, EnumField):
        return {"values": field.values}
    if isinstance(field, ObjectField):
        return {"properties": field.properties}
    return {}


# -- defaults -----------------------------------------------------------------------------------

DEFAULTS: list[tuple[Field, Any]] = [
    (string_field(default="x"), "x"),
    (string_field(default="  ABC ", transform=["trim", "lower"]), "abc"),
    (number_field(default=1.5), 1.5),
    (number_field(default=2), 2.0),
    (integer_field(default=3), 3),
    (boolean_field(default=False), False),
    (enum_field(["celsius", "fahrenheit"], default="celsius"), "celsius"),
    (array_field(string_field(), default=["a"]), ["a"]),
    (object_field({"a": integer_field(default=1)}, default={}), {"a": 1}),
    (date_field(default="2024-01-01"), dt.date(2024, 1, 1)),
    (datetime_field(default="2024-01-01T00:00:00"), dt.datetime(2024, 1, 1, tzinfo=UTC)),
    (time_field(default="08:00:00"), dt.time(8)),
    (uuid_field(default=str(UUID0)), UUID0),
    (json_field(default={"a": [1]}), {"a": [1]}),
]


@pytest.mark.parametrize(("field", "expected"), DEFAULTS)
def test_default_applies_when_absent_or_null(field: Field, expected: Any) -> None:
    schema = schema_of({"value": field})
    for sent in ({}, {"value": None}):
        out = accepted(schema, sent)["value"]
        assert out == expected
        assert type(out) is type(expected)
        assert fast_only(schema, sent) == {"value": expected}  # null too, on the fast path


def test_sent_value_wins_over_default() -> None:
    assert field_accepts(string_field(default="x"), "y") == "y"
    assert field_accepts(boolean_field(default=True), False) is False


def test_mutable_default_is_a_fresh_copy_each_time() -> None:
    schema = schema_of({"tags": array_field(default=["a"]), "meta": json_field(default={"k": []})})
    first = accepted(schema, {})
    first["tags"].append("mutated")
    first["meta"]["k"].append("mutated")
    assert accepted(schema, {}) == {"tags": ["a"], "meta": {"k": []}}


# -- nested paths -------------------------------------------------------------------------------


def test_array_item_issues_name_each_index() -> None:
    schema = schema_of({"tags": array_field(string_field(max_length=3))})
    assert rejected(schema, {"tags": ["ok", "fine", "abc", "toolong", 5]}) == [
        ("tags[1]", "too_long"),
        ("tags[3]", "too_long"),
        ("tags[4]", "type"),
    ]


def test_unique_items_names_the_first_repeat() -> None:
    schema = schema_of({"ids": array_field(integer_field(), unique_items=True)})
    assert rejected(schema, {"ids": [1, 2, 1, 2]}) == [("ids[2]", "unique")]


def test_unique_items_compares_objects_regardless_of_key_order() -> None:
    schema = schema_of({"items": array_field(unique_items=True)})
    assert rejected(schema, {"items": [{"a": 1, "b": 2}, {"b": 2, "a": 1}]}) == [
        ("items[1]", "unique")
    ]


def test_unique_items_compares_normalised_values() -> None:
    schema = schema_of({"words": array_field(string_field(transform="lower"), unique_items=True)})
    assert rejected(schema, {"words": ["a", "A"]}) == [("words[1]", "unique")]


def test_nested_object_issues_use_dotted_paths() -> None:
    address = object_field(
        {
            "city": string_field(required=True, max_length=5),
            "zip": string_field(pattern=r"^\d{5}$"),
            "geo": object_field({"lat": number_field(min=-90, max=90)}),
        }
    )
    schema = schema_of({"address": address})
    issues = rejected(
        schema,
        {"address": {"zip": "abc", "geo": {"lat": 91}, "country": "ES"}},
    )
    assert issues == [
        ("address.city", "required"),
        ("address.zip", "pattern"),
        ("address.geo.lat", "maximum"),
        ("address.country", "unknown_field"),
    ]


def test_arrays_of_objects_of_arrays_report_the_full_path() -> None:
    item = object_field({"sku": string_field(required=True, pattern=r"^[A-Z]{3}-\d+$")})
    order = object_field({"items": array_field(item, min_items=1)})
    schema = schema_of({"orders": array_field(order)})
    good = {"items": [{"sku": "ABC-1"}]}
    assert rejected(schema, {"orders": [good, {"items": [{"sku": "bad"}]}]}) == [
        ("orders[1].items[0].sku", "pattern")
    ]
    assert rejected(schema, {"orders": [good, good, {"items": []}]}) == [
        ("orders[2].items", "too_short")
    ]
    assert accepted(schema, {"orders": [good]}) == {"orders": [good]}


def test_nested_object_applies_nested_defaults() -> None:
    schema = schema_of(
        {"opts": object_field({"units": enum_field(["c", "f"], default="c"), "n": integer_field()})}
    )
    assert accepted(schema, {"opts": {}}) == {"opts": {"units": "c", "n": None}}
    assert accepted(schema, {"opts": {"units": None, "n": 2}}) == {"opts": {"units": "c", "n": 2}}
    assert fast_only(schema, {"opts": {"units": None}}) == {"opts": {"units": "c", "n": None}}


def test_objects_in_arrays_apply_their_defaults_to_nulls_on_the_fast_path() -> None:
    item = object_field({"qty": integer_field(default=1), "note": string_field(pattern="^[a-z]")})
    schema = schema_of({"items": array_field(item), "more": object_field({"inner": item})})
    sent = {"items": [{"qty": None}, {"qty": 3, "note": None}], "more": {"inner": {"qty": None}}}
    expected = {
        "items": [{"qty": 1, "note": None}, {"qty": 3, "note": None}],
        "more": {"inner": {"qty": 1, "note": None}},
    }
    assert accepted(schema, sent) == expected
    assert fast_only(schema, sent) == expected
    assert rejected(schema, {"items": [{"qty": None, "note": "X"}]}) == [
        ("items[0].note", "pattern")
    ]


# -- URL and email formats: the fast checks agree with their definitions ------------------------

# Decided by the one-match fast test (the common shape), and valid by urlsplit too.
COMMON_URLS = [
    "https://example.com",
    "https://example.com/ada",
    "HTTP://EXAMPLE.com/Path?q=1#frag",
    "http://localhost:8080/path?q=1",
    "http://a:0",
    "http://a:65535/",
    "http://a:00080/x",
    "http://127.0.0.1:5000/",
    "http://a.b-c_d~e%41!$&'()*+,;=/",
    "https://example.com/é?ü=1#ß",
    "https://example.com?",
    "https://example.com#",
    "http://a/[x]@y:z",
    "https://.",
]
# Valid by urlsplit, outside the common shape: decided by urlsplit itself.
UNCOMMON_URLS = [
    "http://user:pass@example.com/",
    "http://[::1]:8080/",
    "http://[v1.x]/",
    "http://a:/",
    "http://a:000080/",
    "http://bücher.example/",
    "\x00http://example.com",
]
INVALID_URLS = [
    "",
    "example.com",
    "//example.com/x",
    "ftp://example.com",
    "javascript:alert(1)",
    "mailto:a@example.com",
    "http://",
    "http:///path",
    "http://a:65536/",
    "http://a:99999",
    "http://a:12x",
    "http://a:-1",
    "http://exa mple.com",
    "http://a/b c",
    "http://a/\t",
    "http://a\n",
    " http://a",
    "http://[::1/",
    "http://[vz.x]/",
    "http://[1.2.3.4]/",
    "http\u017f://a",
    "https\u0130://a",
    "ht tp://a",
    "1http://a",
]


@pytest.mark.parametrize("text", COMMON_URLS)
def test_common_urls_pass_the_fast_test_and_urlsplit(text: str) -> None:
    fast = _common_url(("http", "https"))
    assert fast is not None
    assert fast(text) is not None
    assert _is_uri_reference(text)
    assert _is_uri(text)


@pytest.mark.parametrize("text", UNCOMMON_URLS)
def test_uncommon_valid_urls_fail_the_fast_test_and_pass_urlsplit(text: str) -> None:
    fast = _common_url(("http", "https"))
    assert fast is not None
    assert fast(text) is None
    assert _is_uri_reference(text)
    assert _is_uri(text)
    assert field_accepts(string_field(format="url"), text) == text


@pytest.mark.parametrize("text", INVALID_URLS)
def test_invalid_urls_fail_the_fast_test_and_urlsplit(text: str) -> None:
    fast = _common_url(("http", "https"))
    assert fast is not None
    assert fast(text) is None
    assert not _is_uri_reference(text)
    assert not _is_uri(text)


URL_SCHEMES = st.sampled_from(
    [("http", "https"), ("ftp",), ("git+ssh", "a.b-c"), ("HTTP",), ("",), ("h:x",), ("\u017f",)]
)
URLISH = st.builds(
    "".join,
    st.tuples(
        st.sampled_from(["", " ", "\x00", "\t"]),
        st.sampled_from(["http", "HTTPS", "ftp", "git+ssh", "a.b-c", "h", "ht tp", "1x", "\u017f"]),
        st.sampled_from(["://", ":/", ":", "//", "", ":///", ":\t//"]),
        st.sampled_from(["", "u@", "u:p@", "@"]),
        st.text(alphabet="aZ09.-_~%!$:[]@ \t\n\x00\x7f\xe9\u212a/?#", max_size=10),
        st.sampled_from(["", ":80", ":65535", ":65536", ":0", ":00080", ":", ":x", ":123456"]),
        st.text(alphabet="/?#a \t\n[]@:\xe9\ud800", max_size=8),
    ),
)


@settings(max_examples=1000, deadline=None)
@given(text=URLISH | st.text(max_size=40), schemes=URL_SCHEMES)
def test_url_check_agrees_with_urlsplit(text: str, schemes: tuple[str, ...]) -> None:
    fast = _common_url(schemes)
    if fast is not None and fast(text) is not None:
        assert _is_uri_reference(text, schemes)
    assert _is_uri(text, schemes) == _is_uri_reference(text, schemes)


_EMAIL_BEFORE = _compile_re2(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


def _email_before(text: str) -> bool:
    """The email check as it was on RE2, the definition the stdlib one must keep."""
    local, _, domain = text.rpartition("@")
    return (
        len(local) <= 64
        and len(text) <= 254
        and _EMAIL_BEFORE.search(text) is not None
        and bool(domain)
    )


LABEL = st.text(alphabet="aZ09-", min_size=0, max_size=66)
EMAILISH = st.builds(
    lambda local, at, labels, end: local + at + ".".join(labels) + end,
    st.text(alphabet="a.+_-!~@\xe9 ", max_size=70),
    st.sampled_from(["@", "", "@@"]),
    st.lists(LABEL, max_size=5),
    st.sampled_from(["", "\n", ".", " ", "-"]),
)


@settings(max_examples=500, deadline=None)
@given(EMAILISH | st.emails() | st.text(max_size=30))
def test_email_check_agrees_with_its_re2_definition(text: str) -> None:
    assert _is_email(text) == _email_before(text)
    assert (_EMAIL.fullmatch(text) is not None) == _email_before(text) or len(text) > 254


@pytest.mark.parametrize(
    "text", ["a@b.co\n", "a@b.co\n\n", "\na@b.co", "a" * 64 + "@b.co", "a@" + "b" * 63 + ".co"]
)
def test_email_check_keeps_re2_line_ends_and_limits(text: str) -> None:
    assert _is_email(text) == _email_before(text)


@pytest.mark.parametrize(
    "text",
    [
        "a" * 100_000,
        "a@" + "a" * 100_000,
        "a@" + "a." * 50_000 + "!",
        "a@" + ("a" * 63 + ".") * 1500 + "-",
        "http://" + "a" * 100_000 + " ",
        "http://a:" + "1" * 100_000,
        "http://a/" + "b" * 100_000 + " ",
        "h" * 100_000 + "://",
    ],
)
def test_format_checks_finish_on_hostile_text(text: str) -> None:
    # No timing assert: a backtracking blow-up would hang here; these finish in milliseconds.
    assert not _is_email(text)
    assert not _FORMATS["hostname"](text)
    assert not _is_uri(text)


# -- messages -----------------------------------------------------------------------------------


def test_messages_name_the_field_and_the_value() -> None:
    schema = schema_of({"city": string_field(max_length=100), "units": enum_field(["c", "f"])})
    with pytest.raises(ValueError) as info:
        schema.validate({"city": "x" * 101, "units": "k"})
    message = str(info.value)
    assert "'city' must be at most 100 characters (got 101)" in message
    assert "'units' must be one of 'c', 'f' (got 'k')" in message


@pytest.mark.parametrize(
    ("field", "secret"),
    [
        (secret_field(pattern=r"^sk-"), "hunter2-password"),
        (api_key_field(format="uuid"), "hunter2-password"),
        (string_field(sensitive=True, pattern=r"^\d+$"), "hunter2-password"),
        (enum_field(["a"], sensitive=True), "hunter2-password"),
        (number_field(sensitive=True, max=1), 987654321),
    ],
)
def test_sensitive_values_are_never_echoed_in_messages(field: Field, secret: Any) -> None:
    schema = schema_of({"value": field})
    with pytest.raises(ValueError) as info:
        schema.validate({"value": secret})
    assert str(secret) not in str(info.value)
    assert str(secret) not in repr(getattr(info.value, "details", None))


def test_secret_field_repr_and_schema_hide_the_default() -> None:
    field = secret_field(default="s3cr3t-value")
    assert "s3cr3t-value" not in repr(field)
    schema = field.json_schema()
    assert "default" not in schema
    assert schema["writeOnly"] is True


# -- JSON Schema --------------------------------------------------------------------------------


def file_schema_with(media: dict[str, Any], type_required: bool) -> dict[str, Any]:
    """A file field's schema whose ``type`` property is ``media``."""
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 255},
            "content": {"type": "string", "contentEncoding": "base64", "pattern": _BASE64},
            "type": media,
            "size": {"type": "integer", "minimum": 0},
            "encoding": {"enum": ["base64"]},
        },
        "required": ["name", "content", "type"] if type_required else ["name", "content"],
    }


JSON_SCHEMAS: list[tuple[Field, dict[str, Any]]] = [
    (string_field(min_length=1, max_length=5), {"type": "string", "minLength": 1, "maxLength": 5}),
    (
        url_field(),
        {
            "type": "string",
            "maxLength": 2048,
            "format": "uri",
            "pattern": "^(?:[hH][tT][tT][pP]|[hH][tT][tT][pP][sS]):",
        },
    ),
    (
        url_field(schemes=["s3"], pattern="^s3://bucket/"),
        {"type": "string", "maxLength": 2048, "format": "uri", "pattern": "^s3://bucket/"},
    ),
    (integer_field(min=0, max=9), {"type": "integer", "minimum": 0, "maximum": 9}),
    (number_field(precision=2), {"type": "number", "multipleOf": 0.01}),
    (enum_field(["a", "b"], default="a"), {"enum": ["a", "b"], "default": "a"}),
    (
        array_field(boolean_field(), max_items=2),
        {
            "type": "array",
            "items": {"type": "boolean"},
            "maxItems": 2,
        },
    ),
    (
        date_field(default="2024-01-01"),
        {"type": "string", "format": "date", "default": "2024-01-01"},
    ),
    (
        date_field(min="2024-01-01", max="2024-12-31"),
        {
            "type": "string",
            "format": "date",
            "formatMinimum": "2024-01-01",
            "formatMaximum": "2024-12-31",
        },
    ),
    (
        file_field(allowed_types=["application/pdf", "text/plain"]),
        file_schema_with({"type": "string", "enum": ["application/pdf", "text/plain"]}, True),
    ),
    (
        file_field(allowed_types=["image/*", "image/svg+xml"]),
        file_schema_with({"type": "string", "pattern": "^(?:image/[^/]+|image/svg\\+xml)$"}, True),
    ),
    (
        file_field(allowed_types=["application/*"]),
        file_schema_with({"type": "string", "pattern": "^(?:application/[^/]+)$"}, False),
    ),
    (
        object_field({"a": string_field(required=True)}),
        {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "required": ["a"],
            "additionalProperties": False,
        },
    ),
]


@pytest.mark.parametrize(("field", "expected"), JSON_SCHEMAS)
def test_json_schema_describes_the_constraints(field: Field, expected: dict[str, Any]) -> None:
    assert field.json_schema() == expected


# -- definition-time errors ---------------------------------------------------------------------

DEFINITION_ERRORS: list[tuple[Callable[[], object], str]] = [
    (lambda: url_field(schemes="https"), "list of URL schemes"),
    (lambda: url_field(schemes=["ht tp"]), "list of URL schemes"),
    (lambda: url_field(schemes=[]), "at least one URL scheme"),
    (lambda: string_field(min_length=5, max_length=2), "greater than max_length"),
    (lambda: string_field(min_length=-1), "non-negative"),
    (lambda: string_field(max_length=True), "non-negative"),
    (lambda: number_field(min=5, max=1), "greater than max"),
    (lambda: integer_field(min=5, max=1), "greater than max"),
    (lambda: number_field(min=float("nan")), "finite"),
    (lambda: number_field(max=float("inf")), "finite"),
    (lambda: number_field(multiple_of=0), "positive"),
    (lambda: number_field(precision=-1), "precision"),
    (lambda: array_field(min_items=3, max_items=1), "greater than max_items"),
    (lambda: array_field(min_items=-1), "non-negative"),
    (lambda: date_field(min="2024-02-01", max="2024-01-01"), "after max"),
    (lambda: date_field(min="yesterday"), "ISO-8601"),
    (lambda: time_field(max="9am"), "ISO-8601"),
    (lambda: string_field(pattern="(?=a)b"), "not supported"),
    (lambda: string_field(pattern="(?<!a)b"), "not supported"),
    (lambda: string_field(pattern=r"(a)\1"), "not supported"),
    (lambda: string_field(pattern="("), "not supported"),
    (lambda: string_field(format="colour"), "unknown format"),
    (lambda: string_field(transform="reverse"), "unknown transform"),  # type: ignore[arg-type]
    (lambda: string_field(required=True, default="x"), "cannot be required and have a default"),
    (lambda: string_field(max_length=2, default="abc"), "default does not pass"),
    (lambda: string_field(max_length=2, example="abc"), "example does not pass"),
    (lambda: integer_field(default=1.5), "default does not pass"),
    (lambda: date_field(default="soon"), "default does not pass"),
    (lambda: enum_field([]), "at least one value"),
    (lambda: enum_field(["a", "a"]), "unique"),
    (lambda: enum_field([1, 1.0]), "unique"),
    (lambda: enum_field("abc"), "must be a list"),
    (lambda: enum_field([None]), "strings, numbers or booleans"),  # type: ignore[list-item]
    (lambda: enum_field(["a"], default="b"), "default does not pass"),
    (lambda: array_field(items="string"), "items must be a field"),  # type: ignore[arg-type]
    (lambda: object_field({"": string_field()}), "non-empty strings"),
    (lambda: object_field({"a": "string"}), "must be a field"),  # type: ignore[dict-item]
    (lambda: object_field(unknown="drop"), "'reject' or 'ignore'"),  # type: ignore[arg-type]
    (lambda: file_field(max_size=-1), "non-negative"),
    (lambda: file_field(allowed_types="image/png"), "list of media types"),
    (lambda: as_field({"type": "colour"}), "unknown type"),
    (lambda: as_field({"type": "string", "maxLenght": 5}), "max_lenght"),
    (lambda: as_field("string"), "field builder or a mapping"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("declare", "match"), DEFINITION_ERRORS)
def test_field_definition_errors_raise_when_declared(
    declare: Callable[[], object], match: str
) -> None:
    with pytest.raises(ToolDefinitionError, match=match):
        declare()


UNKNOWN_KEYWORDS: list[tuple[Callable[..., object], dict[str, Any], str]] = [
    (string_field, {"maxlength": 100}, "string_field() got an unknown keyword 'maxlength'; "),
    (string_field, {"maxLength": 100}, "did you mean 'max_length'?"),
    (number_field, {"minimum": 1}, "number_field() got an unknown keyword 'minimum'"),
    (enum_field, {"values": ["a"], "defualt": "a"}, "did you mean 'default'?"),
    (array_field, {"maxItems": 3}, "array_field() got an unknown keyword 'maxItems'; did you "),
    (email_field, {"requird": True}, "email_field() got an unknown keyword 'requird'; did you "),
    (api_key_field, {"envv": "K"}, "secret_field() got an unknown keyword 'envv'; did you mean"),
    (string_field, {"colour": "red"}, "'colour'; it takes: default, description, env, "),
]


@pytest.mark.parametrize(("builder", "options", "message"), UNKNOWN_KEYWORDS)
def test_a_wrong_keyword_names_the_builder_and_the_closest_keyword(
    builder: Callable[..., object], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ToolDefinitionError) as raised:
        builder(**options)
    assert message in raised.value.message


def test_positional_options_are_refused_by_name() -> None:
    with pytest.raises(ToolDefinitionError, match=r"string_field\(\) takes its options as"):
        string_field(*[100])


def test_the_mapping_form_names_the_field_path() -> None:
    with pytest.raises(ToolDefinitionError, match=r"^input\.city: string_field\(\) got an unknown"):
        as_field({"type": "string", "maxLenght": 5}, where="input.city")


def test_required_with_a_default_names_the_builder_and_the_value() -> None:
    with pytest.raises(ToolDefinitionError) as raised:
        string_field(required=True, default="x")
    assert raised.value.message.startswith("string_field(required=True, default='x'): ")


def test_pattern_error_explains_re2() -> None:
    with pytest.raises(ToolDefinitionError, match="lookahead, lookbehind and backreferences"):
        string_field(pattern="^(?!admin).*$")


# -- the dict form ------------------------------------------------------------------------------


def test_dict_form_with_camel_case_keys_builds_the_same_field() -> None:
    field = as_field({"type": "array", "maxItems": 20, "items": string_field(max_length=50)})
    assert isinstance(field, ArrayField)
    assert field.max_items == 20
    assert field.items == string_field(max_length=50)
    schema = schema_of({"tags": field})
    assert accepted(schema, {"tags": ["a"] * 20}) == {"tags": ["a"] * 20}
    assert rejected(schema, {"tags": ["a"] * 21}) == [("tags", "too_long")]
    assert rejected(schema, {"tags": ["a", "b", "c", "x" * 51]}) == [("tags[3]", "too_long")]


DICT_FORMS: list[tuple[dict[str, Any], Field]] = [
    ({"type": "string", "maxLength": 5, "minLength": 1}, string_field(min_length=1, max_length=5)),
    ({"type": "string", "max_length": 5}, string_field(max_length=5)),
    ({"type": "number", "minimum": 0, "maximum": 1}, number_field(min=0, max=1)),
    ({"type": "integer", "multipleOf": 5}, integer_field(multiple_of=5)),
    ({"type": "boolean", "default": True}, boolean_field(default=True)),
    ({"type": "enum", "enum": ["a", "b"]}, enum_field(["a", "b"])),
    ({"type": "enum", "values": ["a", "b"]}, enum_field(["a", "b"])),
    (
        {"type": "array", "items": {"type": "string", "maxLength": 3}, "uniqueItems": True},
        array_field(string_field(max_length=3), unique_items=True),
    ),
    (
        {"type": "object", "properties": {"a": {"type": "string", "required": True}}},
        object_field({"a": string_field(required=True)}),
    ),
    ({"type": "date-time"}, datetime_field()),
    ({"type": "uri"}, url_field()),
    ({"type": "apiKey", "env": "KEY"}, api_key_field(env="KEY")),
    (
        {"type": "file", "maxSize": 10, "allowedTypes": ["image/*"]},
        file_field(max_size=10, allowed_types=["image/*"]),
    ),
]


@pytest.mark.parametrize(("declaration", "expected"), DICT_FORMS)
def test_dict_form_builds_the_matching_field(declaration: dict[str, Any], expected: Field) -> None:
    assert as_field(declaration) == expected


def test_field_builders_are_the_field_classes() -> None:
    assert string_field is StringField
    assert isinstance(integer_field(), NumberField)
    assert api_key_field is secret_field
