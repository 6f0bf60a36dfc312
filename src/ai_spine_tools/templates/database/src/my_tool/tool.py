"""My Tool: look cities up in PostgreSQL through the SDK's connection pool."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from ai_spine_tools import ToolContext, create_tool, integer_field, string_field
from ai_spine_tools.exceptions import ServerConfigurationError
from ai_spine_tools.postgres import PostgresPool

DEFAULT_TABLE = "my_tool_cities"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class Resources:
    """What ``setup`` opens: the pool, and the table the tool reads."""

    pool: PostgresPool
    table: str


def table_name() -> str:
    """The table from ``MY_TOOL_TABLE`` (default ``my_tool_cities``), checked to be a plain name."""
    table = os.environ.get("MY_TOOL_TABLE", DEFAULT_TABLE)
    if not _IDENTIFIER.fullmatch(table):
        raise ServerConfigurationError(
            f"MY_TOOL_TABLE must be a lowercase SQL name (got {table!r})",
            details={"variable": "MY_TOOL_TABLE"},
        )
    return table


async def setup(config: dict[str, Any]) -> Resources:
    """Open the pool (DATABASE_URL; DB_POOL_MIN/DB_POOL_MAX) and create the table if missing."""
    table = table_name()
    pool = await PostgresPool.from_env().open()
    await pool.execute(
        f"CREATE TABLE IF NOT EXISTS {table} ("
        "name text PRIMARY KEY, country text NOT NULL, population bigint NOT NULL)"
    )
    return Resources(pool, table)


async def find_cities(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> dict[str, Any]:
    """Return the most populous cities whose name starts with ``input["prefix"]``."""
    resources: Resources = context.resources
    rows = await resources.pool.fetch(
        f"SELECT name, country, population FROM {resources.table} "
        "WHERE name ILIKE $1 || '%' ORDER BY population DESC LIMIT $2",
        input["prefix"],
        input["limit"],
    )
    return {"cities": [dict(row) for row in rows]}


async def cleanup(resources: Resources) -> None:
    """Close every pooled connection."""
    await resources.pool.close()


async def health() -> dict[str, Any]:
    """Ready only while the database answers."""
    resources: Resources | None = tool.resources
    if resources is None:
        return {"status": "unhealthy"}
    return await resources.pool.check()


tool = create_tool(
    metadata={
        "name": "my-tool",
        "version": "0.1.0",
        "description": "Find cities by the start of their name, most populous first",
        "capabilities": ["geo.cities"],
    },
    schema={
        "input": {
            "prefix": string_field(
                required=True,
                min_length=1,
                max_length=100,
                description="The start of the city's name",
                example="Mad",
            ),
            "limit": integer_field(min=1, max=100, default=10, description="How many cities"),
        },
    },
    execute=find_cities,
    setup=setup,
    cleanup=cleanup,
    health_check=health,
)
