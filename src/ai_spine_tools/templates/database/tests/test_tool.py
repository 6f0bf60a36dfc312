"""The tool's own tests, against the PostgreSQL in DATABASE_URL, in a table of their own."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest
from my_tool.tool import tool

from ai_spine_tools.postgres import PostgresPool
from ai_spine_tools.testing import ToolTestClient, assert_success, invalid_inputs

ROWS = [("Madrid", "Spain", 3_300_000), ("Madison", "USA", 270_000), ("Oslo", "Norway", 700_000)]


async def _run(*statements: tuple[str, tuple[object, ...]]) -> None:
    async with PostgresPool.from_env(min_size=1, max_size=1) as pool:
        for query, args in statements:
            await pool.execute(query, *args)


@pytest.fixture(autouse=True)
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new table, named for this test alone, that the tool reads; dropped afterwards."""
    if not os.environ.get("DATABASE_URL"):
        pytest.skip(
            "set DATABASE_URL to a PostgreSQL database to run these tests "
            "(e.g. DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres make test)"
        )
    name = f"my_tool_test_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MY_TOOL_TABLE", name)
    create = (
        f"CREATE TABLE {name} (name text PRIMARY KEY, country text NOT NULL, "
        "population bigint NOT NULL)"
    )
    asyncio.run(_run((create, ()), *((f"INSERT INTO {name} VALUES ($1, $2, $3)", r) for r in ROWS)))
    yield name
    asyncio.run(_run((f"DROP TABLE IF EXISTS {name}", ())))


def test_cities_by_prefix_most_populous_first() -> None:
    with ToolTestClient(tool) as client:
        response = client.execute({"prefix": "mad"})
    assert_success(response)
    assert [city["name"] for city in response.output_data["cities"]] == ["Madrid", "Madison"]


def test_limit_is_honoured() -> None:
    with ToolTestClient(tool) as client:
        response = client.execute({"prefix": "M", "limit": 1})
    assert [city["name"] for city in response.output_data["cities"]] == ["Madrid"]


def test_every_broken_constraint_is_refused() -> None:
    with ToolTestClient(tool) as client:
        for case in invalid_inputs(tool):
            assert client.execute(case.input).status_code == 400, case.description
