"""Values out: each Python value becomes the JSON the README's table says, and a value JSON cannot
hold is OUTPUT_NOT_SERIALIZABLE naming its path, never a silent null."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import msgspec
import pydantic
import pytest

from ai_spine_tools import ToolResult, create_tool
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.testing import AsyncToolTestClient


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Box(msgspec.Struct):
    width: int


class Person(pydantic.BaseModel):
    name: str
    born: dt.date


WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
ID = uuid.UUID("12345678-1234-5678-1234-567812345678")

CONVERSIONS: list[tuple[Any, bytes]] = [
    (Decimal("9.99"), b"9.99"),
    (Decimal("1E+2"), b"1E+2"),
    (b"\x00\xff", b'"AP8="'),
    (WHEN, b'"2026-01-02T03:04:05Z"'),
    (WHEN.replace(tzinfo=None), b'"2026-01-02T03:04:05"'),
    (dt.date(2026, 1, 2), b'"2026-01-02"'),
    (dt.time(3, 4), b'"03:04:00"'),
    (dt.timedelta(minutes=90), b'"PT5400S"'),
    (ID, b'"12345678-1234-5678-1234-567812345678"'),
    ({3}, b"[3]"),
    ((1, "a"), b'[1,"a"]'),
    (Colour.RED, b'"red"'),
    (Point(1.0, 2.5), b'{"x":1.0,"y":2.5}'),
    (Box(width=3), b'{"width":3}'),
    (Person(name="Ada", born=dt.date(1815, 12, 10)), b'{"name":"Ada","born":"1815-12-10"}'),
    (None, b"null"),
]


def _returning(value: Any) -> Any:
    async def execute() -> Any:
        return value

    return create_tool(
        metadata={"name": "values", "version": "1.0.0", "description": "Returns a value"},
        execute=execute,
    )


@pytest.mark.parametrize(("value", "encoded"), CONVERSIONS)
async def test_each_value_becomes_the_documented_json(value: Any, encoded: bytes) -> None:
    async with AsyncToolTestClient(_returning({"value": value}), ServerSettings()) as client:
        response = await client.execute({})
    assert response.status_code == 200
    assert b'"output_data":{"value":' + encoded + b"}" in response.content


async def test_a_decimal_is_a_number_to_json_readers() -> None:
    async with AsyncToolTestClient(_returning({"price": Decimal("9.99")}), ServerSettings()) as c:
        response = await c.execute({})
    assert json.loads(response.content)["output_data"]["price"] == 9.99


NOT_JSON: list[tuple[Any, str, str]] = [
    ({"price": math.nan}, "output_data.price", "nan"),
    ({"values": [1.0, math.inf]}, "output_data.values[1]", "inf"),
    ({"a": {"b": [{"c": -math.inf}]}}, "output_data.a.b[0].c", "-inf"),
    ({"point": Point(1.0, math.nan)}, "output_data.point.y", "nan"),
    (math.nan, "output_data.result", "nan"),
    ({"price": Decimal("NaN")}, "output_data.price", "Decimal('NaN')"),
    ({"when": object()}, "output_data.when", "builtins.object"),
    ({"rows": [1, (2, object())]}, "output_data.rows[1][1]", "builtins.object"),
    (ToolResult.success({"a": 1}, metadata={"score": math.nan}), "metadata.score", "nan"),
]


@pytest.mark.parametrize(("value", "path", "shown"), NOT_JSON)
async def test_a_value_json_cannot_hold_is_an_error_naming_its_path(
    value: Any, path: str, shown: str
) -> None:
    async with AsyncToolTestClient(_returning(value), ServerSettings()) as client:
        response = await client.execute({})
    assert (response.status_code, response.error_code) == (500, "OUTPUT_NOT_SERIALIZABLE")
    assert response.error_details["path"] == path
    message = response.error_message or ""
    assert message.startswith(path)
    assert shown in message


async def test_genuine_nulls_pass_untouched() -> None:
    value = {"a": None, "b": [None, 1.5], "c": {"d": None}}
    async with AsyncToolTestClient(_returning(value), ServerSettings()) as client:
        response = await client.execute({})
    assert response.output_data == value


async def test_a_streamed_item_json_cannot_hold_ends_the_stream_with_the_error() -> None:
    async def execute() -> AsyncIterator[Any]:
        yield {"n": 1.0}
        yield {"n": math.nan}

    streaming = create_tool(
        metadata={"name": "nan-stream", "version": "1.0.0", "description": "Streams a NaN"},
        execute=execute,
    )
    async with AsyncToolTestClient(streaming, ServerSettings()) as client:
        response = await client.execute({})
    lines = [json.loads(line) for line in response.content.splitlines()]
    assert lines[0] == {"type": "item", "data": {"n": 1.0}}
    assert lines[-1]["error_code"] == "OUTPUT_NOT_SERIALIZABLE"
    assert lines[-1]["error_details"]["path"] == "items[1].n"


async def test_a_cached_tool_refuses_the_same_way_and_caches_nothing() -> None:
    async def execute() -> Any:
        return {"price": math.inf}

    cached = create_tool(
        metadata={"name": "inf-cache", "version": "1.0.0", "description": "Returns infinity"},
        execute=execute,
        cache=True,
    )
    async with AsyncToolTestClient(cached, ServerSettings()) as client:
        response = await client.execute({})
    assert response.error_code == "OUTPUT_NOT_SERIALIZABLE"
    assert response.error_details["path"] == "output_data.price"
    assert cached.cache.stats()["results"]["stored"] == 0
