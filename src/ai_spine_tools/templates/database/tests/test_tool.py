"""The tool's own tests, against the PostgreSQL in DATABASE_URL."""

from __future__ import annotations

import asyncio
import os

import pytest
from my_tool.tool import TABLE, tool

from ai_spine_tools.postgres import PostgresPool
from ai_spine_tools.testing import ToolTestClient, assert_success, invalid_inputs

ROWS = [("Madrid", "Spain", 3_300_000), ("Madison", "USA", 270_000), ("Oslo", "Norway", 700_000)]


async def _seed() -> None:
    async with PostgresPool.from_env() as pool:
        await pool.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            "name text PRIMARY KEY, country text NOT NULL, population bigint NOT NULL)"
        )
        await pool.execute(f"DELETE FROM {TABLE}")
        for row in ROWS:
            await pool.execute(f"INSERT INTO {TABLE} VALUES ($1, $2, $3)", *row)


@pytest.fixture(autouse=True)
def database() -> None:
    if not os.environ.get("DATABASE_URL"):
        pytest.skip("set DATABASE_URL to a PostgreSQL database to run these tests")
    asyncio.run(_seed())


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
