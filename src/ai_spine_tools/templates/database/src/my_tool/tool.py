"""My Tool: look cities up in PostgreSQL through the SDK's connection pool."""

from __future__ import annotations

from typing import Any

from ai_spine_tools import ToolContext, create_tool, integer_field, string_field
from ai_spine_tools.postgres import PostgresPool

TABLE = "my_tool_cities"


async def setup(config: dict[str, Any]) -> PostgresPool:
    """Open the pool (sized by DB_POOL_MIN/DB_POOL_MAX) and make sure the table exists."""
    pool = await PostgresPool.from_env().open()
    await pool.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} ("
        "name text PRIMARY KEY, country text NOT NULL, population bigint NOT NULL)"
    )
    return pool


async def find_cities(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> dict[str, Any]:
    """Return the most populous cities whose name starts with ``input["prefix"]``."""
    pool: PostgresPool = context.resources
    rows = await pool.fetch(
        f"SELECT name, country, population FROM {TABLE} "
        "WHERE name ILIKE $1 || '%' ORDER BY population DESC LIMIT $2",
        input["prefix"],
        input["limit"],
    )
    return {"cities": [dict(row) for row in rows]}


async def cleanup(pool: PostgresPool) -> None:
    """Close every pooled connection."""
    await pool.close()


async def health(resources: Any = None) -> dict[str, Any]:
    """Ready only while the database answers."""
    pool: PostgresPool | None = tool.resources
    if pool is None:
        return {"status": "unhealthy"}
    return await pool.check()


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
