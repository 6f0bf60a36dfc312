"""A Hypothesis strategy for the values a JSON Schema accepts, read from the schema alone.

It covers the keywords the tool exports use (types, enum, anyOf, objects, arrays, string
lengths, patterns, formats and base64 content, numeric bounds and steps). hypothesis-jsonschema
would be the library for this, but its last release does not run on current Hypothesis.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st
from hypothesis.provisional import urls

_OFFSETS = st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-8))]
)
_FORMATS: dict[str, st.SearchStrategy[str]] = {
    "email": st.emails(),
    "uri": urls(),
    "date": st.dates().map(dt.date.isoformat),
    "date-time": st.datetimes(timezones=_OFFSETS).map(dt.datetime.isoformat),
    "time": st.times().map(dt.time.isoformat),
    "uuid": st.uuids().map(str),
}
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


def from_schema(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Return a strategy for the JSON values ``schema`` accepts."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([from_schema(option) for option in schema["anyOf"]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": one}) for one in kind])
    if kind is None:
        return JSON_VALUES
    maker = {
        "null": lambda _: st.none(),
        "boolean": lambda _: st.booleans(),
        "integer": _integers,
        "number": _numbers,
        "string": _strings,
        "array": _arrays,
        "object": _objects,
    }[kind]
    strategy: st.SearchStrategy[Any] = maker(schema)
    return strategy


def _integers(schema: Mapping[str, Any]) -> st.SearchStrategy[int]:
    low = None if "minimum" not in schema else math.ceil(schema["minimum"])
    high = None if "maximum" not in schema else math.floor(schema["maximum"])
    step = schema.get("multipleOf")
    if step is None:
        return st.integers(low, high)
    return st.integers(
        None if low is None else math.ceil(low / step),
        None if high is None else math.floor(high / step),
    ).map(lambda k: int(k * step))


def _numbers(schema: Mapping[str, Any]) -> st.SearchStrategy[float | int]:
    low, high = schema.get("minimum"), schema.get("maximum")
    step = schema.get("multipleOf")
    if step is not None:
        return st.integers(
            None if low is None else math.ceil(low / step),
            None if high is None else math.floor(high / step),
        ).map(lambda k: k * step)
    floats = st.floats(low, high, allow_nan=False, allow_infinity=False)
    whole = st.integers(
        None if low is None else math.ceil(low), None if high is None else math.floor(high)
    )
    return floats | whole  # JSON numbers include the integers


def _strings(schema: Mapping[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    strategy: st.SearchStrategy[str]
    if schema.get("contentEncoding") == "base64":
        most = None if high is None else high // 4 * 3
        strategy = st.binary(max_size=most if most is not None else 64).map(
            lambda data: base64.b64encode(data).decode()
        )
    elif schema.get("format") == "uri" and schema.get("pattern", "").endswith("):"):
        # URLs of the schemes the pattern names (any case): a scheme drawn from the pattern, the
        # rest of a generated URL after it.
        schemes = st.from_regex(schema["pattern"], fullmatch=True)
        strategy = st.tuples(schemes, urls()).map(lambda pair: pair[0] + pair[1].split(":", 1)[1])
    elif schema.get("format") in _FORMATS:
        strategy = _FORMATS[schema["format"]]
    elif "pattern" in schema:
        strategy = st.from_regex(_ecma_end(schema["pattern"]))
    else:
        return st.text(min_size=low, max_size=high)
    return strategy.filter(lambda text: low <= len(text) <= (high if high is not None else 1e9))


def _ecma_end(pattern: str) -> str:
    """In JSON Schema (ECMA-262) ``$`` matches at the very end only; in Python also before a
    final newline, which Hypothesis would then generate. ``\\Z`` is ECMA's ``$`` in Python."""
    return re.sub(r"(?<!\\)\$", r"\\Z", pattern)


def _arrays(schema: Mapping[str, Any]) -> st.SearchStrategy[list[Any]]:
    items = from_schema(schema.get("items", {}))
    return st.lists(
        items,
        min_size=schema.get("minItems", 0),
        max_size=schema.get("maxItems", 5),
        unique_by=(lambda item: json.dumps(item, sort_keys=True))
        if schema.get("uniqueItems")
        else None,
    )


def _objects(schema: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties")
    if properties is None:
        return st.dictionaries(st.text(), JSON_VALUES, max_size=schema.get("maxProperties", 3))
    required = set(schema.get("required", ()))
    return st.fixed_dictionaries(
        {key: from_schema(sub) for key, sub in properties.items() if key in required},
        optional={key: from_schema(sub) for key, sub in properties.items() if key not in required},
    )
