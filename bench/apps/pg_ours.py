"""The ``postgres`` workload, ours: a user looked up by primary key through ``PostgresPool``
(opened in ``setup``, sized by ``DB_POOL_MIN``/``DB_POOL_MAX``)."""

from __future__ import annotations

from typing import Any

from ai_spine_tools import ToolContext, create_tool, integer_field
from ai_spine_tools.postgres import PostgresPool
from bench.apps._common import USER_QUERY


async def setup(config: dict[str, Any]) -> PostgresPool:
    """Open the pool at start-up (the benchmark's database must be there)."""
    return await PostgresPool.from_env().open(require=True)


async def find_user(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> dict[str, Any]:
    """Return the user ``input["id"]``."""
    pool: PostgresPool = context.resources
    row = await pool.fetchrow(USER_QUERY, input["id"])
    return dict(row)


async def cleanup(pool: PostgresPool) -> None:
    """Close the pool at shutdown."""
    await pool.close()


tool = create_tool(
    metadata={
        "name": "user-lookup",
        "version": "1.0.0",
        "description": "Find a user by id in PostgreSQL",
        "capabilities": ["users.by_id"],
    },
    schema={"input": {"id": integer_field(required=True, min=1, max=1_000_000_000)}},
    execute=find_user,
    setup=setup,
    cleanup=cleanup,
)
