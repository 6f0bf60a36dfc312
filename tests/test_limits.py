"""Bounds on a JSON body's shape: depth and item counts, measured on bytes, enforced by the app."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import weather
from ai_spine_tools import create_tool, json_field, object_field, string_field
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.exceptions import InvalidJSONError, PayloadTooLargeError
from ai_spine_tools.security._limits import JSONLimits, has_open_fields, json_shape
from ai_spine_tools.testing import AsyncToolTestClient, assert_success


def nested(depth: int, leaf: Any = 1) -> Any:
    """``depth`` levels of alternating arrays and objects around ``leaf``."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def reference_shape(value: Any) -> tuple[int, int]:
    """Depth and items of a decoded value, the slow and obvious way."""
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    else:
        return 0, 0
    shapes = [reference_shape(child) for child in children]
    return 1 + max((d for d, _ in shapes), default=0), len(children) + sum(i for _, i in shapes)


@pytest.mark.parametrize(
    ("body", "depth", "items"),
    [
        (b"1", 0, 0),
        (b'"[[[{{{"', 0, 0),
        (b"[]", 1, 0),
        (b"{}", 1, 0),
        (b"[1, 2, 3]", 1, 3),
        (b'{"a": 1, "b": [true, null]}', 2, 4),
        (b'{"a": "]]]", "b": "\\"[["}', 1, 2),
        (b'["\\\\", ["\\\\\\"]"]]', 2, 3),
        (b"[[], {}, [[]]]", 3, 4),
        (b' { "a" : [ 1 , { } ] } ', 3, 3),
        (b"[" * 100 + b"]" * 100, 100, 99),
    ],
)
def test_json_shape(body: bytes, depth: int, items: int) -> None:
    assert json_shape(body) == (depth, items)


def test_json_shape_stops_counting_depth_at_the_bound() -> None:
    assert json_shape(b"[" * 1000 + b"]" * 1000, stop_at_depth=65)[0] == 65


@pytest.mark.parametrize("body", [b"[[[[", b"]]]", b"[{]}", b'["unterminated]', b"[[]"])
def test_json_shape_of_malformed_json_is_a_number_not_a_crash(body: bytes) -> None:
    depth, items = json_shape(body)
    assert depth >= 0
    assert items >= 0


TRICKY_TEXT = st.text(alphabet='[]{}",:\\ ab\n', max_size=8)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(TRICKY_TEXT, children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.booleans())
def test_json_shape_agrees_with_the_decoded_value(value: Any, indented: bool) -> None:
    body = (json.dumps(value, indent=1) if indented else json.dumps(value)).encode()
    assert json_shape(body) == reference_shape(value)


@pytest.mark.parametrize(
    ("limits", "body", "error"),
    [
        (JSONLimits(max_depth=3), b'{"a": [1, [2]]}', None),
        (JSONLimits(max_depth=3), b'{"a": [1, [[2]]]}', InvalidJSONError),
        (JSONLimits(max_depth=3), b'{"a": "[[[[[[[[[[[["}', None),
        (JSONLimits(max_items=3), b"[1, 2, 3]", None),
        (JSONLimits(max_items=3), b"[1, 2, 3, 4]", PayloadTooLargeError),
        (JSONLimits(max_items=3), b'["1, 2, 3, 4, 5"]', None),
        (JSONLimits(max_items=3), b'{"a": {}, "b": []}', None),
        (JSONLimits(max_items=3), b'{"a": {"b": {"c": {}}}}', None),
        (JSONLimits(max_items=3), b'{"a": {"b": {"c": {"d": 1}}}}', PayloadTooLargeError),
    ],
)
def test_scan(limits: JSONLimits, body: bytes, error: type[Exception] | None) -> None:
    if error is None:
        limits.scan(body)
    else:
        with pytest.raises(error):
            limits.scan(body)


def test_check_depth_counts_only_when_there_are_enough_brackets() -> None:
    limits = JSONLimits(max_depth=4)
    limits.check_depth(b'{"a": [[[1]]]}')  # four levels: the bound itself
    limits.check_depth(b'{"a": "[[[[[[[[", "b": [[1]]}')  # many brackets, in a string
    with pytest.raises(InvalidJSONError, match="more than 4 levels") as info:
        limits.check_depth(b'{"a": [[[[1]]]]}')
    assert info.value.details == {"max_json_depth": 4}


@pytest.mark.parametrize(
    ("fields", "open_"),
    [
        ({"city": string_field()}, False),
        ({"address": object_field({"city": string_field()})}, False),
        ({"extra": json_field()}, True),
        ({"anything": object_field()}, True),
        ({"deep": object_field({"inner": object_field({"x": json_field()})})}, True),
    ],
)
def test_has_open_fields(fields: dict[str, Any], open_: bool) -> None:
    assert has_open_fields(fields) is open_


# -- in the app ---------------------------------------------------------------------------------

OPEN = create_tool(
    metadata={"name": "open", "version": "1.0.0", "description": "takes any JSON"},
    schema={"input": {"extra": json_field()}},
    execute=lambda input: {"ok": True},
)


def body_with(where: str, value: Any) -> bytes:
    envelope: dict[str, Any] = {"input_data": {"city": "Oslo"}}
    if where == "input":
        envelope["input_data"] = {"extra": value}
    else:
        envelope[where] = {"v": value}
    return msgspec.json.encode(envelope)


@pytest.mark.parametrize("where", ["metadata", "config", "input"])
async def test_a_body_at_the_depth_limit_passes_and_one_past_it_is_400(where: str) -> None:
    tool = OPEN if where == "input" else weather.tool
    # The envelope and the object holding the value take two of the 64 levels.
    at_limit, past = body_with(where, nested(62)), body_with(where, nested(63))
    assert json_shape(at_limit)[0] == 64
    async with AsyncToolTestClient(tool, ServerSettings()) as client:
        ok = await client.post("/api/execute", content=at_limit)
        refused = await client.post("/api/execute", content=past)
        assert (await client.get("/health")).status_code == 200
    assert_success(ok)
    assert refused.status_code == 400
    assert refused.error_code == "INVALID_JSON"
    assert refused.error_message == "Request body is nested too deeply (more than 64 levels)"
    assert refused.error_details == {"max_json_depth": 64}


async def test_the_depth_limit_is_a_setting() -> None:
    async with AsyncToolTestClient(weather.tool, ServerSettings(max_json_depth=8)) as client:
        ok = await client.post("/api/execute", content=body_with("metadata", nested(6)))
        refused = await client.post("/api/execute", content=body_with("metadata", nested(7)))
    assert (ok.status_code, refused.status_code) == (200, 400)


async def test_brackets_inside_strings_are_not_nesting() -> None:
    async with AsyncToolTestClient(weather.tool, ServerSettings()) as client:
        response = await client.execute({"city": "[{" * 40}, metadata={"note": "[[[" * 100})
    assert_success(response)


async def test_too_many_items_is_413_before_anything_is_decoded() -> None:
    settings = ServerSettings(max_json_items=1000)
    many = msgspec.json.encode({"input_data": {"extra": [{}] * 2000}})
    few = msgspec.json.encode({"input_data": {"extra": [{}] * 500}})
    async with AsyncToolTestClient(OPEN, settings) as client:
        refused = await client.post("/api/execute", content=many)
        ok = await client.post("/api/execute", content=few)
    assert refused.status_code == 413
    assert refused.error_code == "PAYLOAD_TOO_LARGE"
    assert refused.error_details == {"max_json_items": 1000}
    assert_success(ok)
