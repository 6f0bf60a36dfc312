"""The performance guide's ``ConnectionManager`` on the SDK's pools: the users of a city.

Run it against a database that has a ``users(id, name, city)`` table::

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test DB_POOL_MIN=2 DB_POOL_MAX=10 \\
        ai-spine serve examples/database.py
    curl -s localhost:3000/api/execute -H 'content-type: application/json' \\
         -d '{"input_data": {"city": "Madrid"}}'

What the guide writes by hand comes from the SDK here: the pool (``PostgresPool``: sized by
``DB_POOL_MIN``/``DB_POOL_MAX``/``DB_POOL_IDLE_TIMEOUT``, opened in ``setup``, closed in
``cleanup``, figures under ``pools`` in ``/metrics``), the keep-alive HTTP client
(``context.http``, shared by the process and closed on shutdown) and the fail-fast behaviour when
the database is down (``/ready`` 503, executions a retryable 503, recovery without a restart).
Needs the ``[postgres]`` extra.
"""

from __future__ import annotations

from typing import Any

from ai_spine_tools import ToolContext, create_tool, integer_field, retry, string_field
from ai_spine_tools.postgres import PostgresPool


class ConnectionManager:
    """A database pool and an HTTP client, as in the guide, built on the SDK's helpers."""

    def __init__(self, pool: PostgresPool) -> None:
        self.pool = pool

    @classmethod
    def from_env(cls) -> ConnectionManager:
        """Size the pool from the environment (``DATABASE_URL``, ``DB_POOL_*``)."""
        return cls(
            PostgresPool.from_env(
                connect_timeout=5.0,
                acquire_timeout=10.0,
                server_settings={"application_name": "ai-spine-database-example"},
            )
        )

    async def open(self) -> ConnectionManager:
        """Open the pool; an unreachable database is retried on use instead of failing start-up."""
        await self.pool.open()
        return self

    async def query_database(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Run ``sql`` on a pooled connection (given back afterwards, whatever happens)."""
        rows = await self.pool.fetch(sql, *params)
        return [dict(row) for row in rows]

    async def make_http_request(self, context: ToolContext, url: str, data: Any = None) -> Any:
        """POST ``data`` to ``url`` on the shared keep-alive client, retrying transient errors."""

        @retry(attempts=3, context=context)
        async def post() -> Any:
            response = await context.http.post(url, json=data)
            response.raise_for_status()
            return response.json()

        return await post()

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.pool.close()


async def setup(config: dict[str, Any]) -> ConnectionManager:
    """Open the pools once, at start-up."""
    return await ConnectionManager.from_env().open()


async def find_users(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> dict[str, Any]:
    """Return the users living in ``input["city"]``."""
    manager: ConnectionManager = context.resources
    users = await manager.query_database(
        "SELECT id, name, city FROM users WHERE city = $1 ORDER BY id LIMIT $2",
        input["city"],
        input["limit"],
    )
    return {"city": input["city"], "count": len(users), "users": users}


async def check() -> dict[str, Any]:
    """Ready only while the database answers (``/ready`` 503 otherwise; ``/health`` stays 200)."""
    manager: ConnectionManager | None = tool.resources
    if manager is None:
        return {"status": "unhealthy"}
    return await manager.pool.check()


async def cleanup(manager: ConnectionManager) -> None:
    """Close the pools at shutdown."""
    await manager.close()


tool = create_tool(
    metadata={
        "name": "user-directory",
        "version": "1.0.0",
        "description": "Find the users of a city in PostgreSQL",
        "capabilities": ["users.by_city"],
    },
    schema={
        "input": {
            "city": string_field(required=True, max_length=100, example="Madrid"),
            "limit": integer_field(min=1, max=1000, default=100),
        }
    },
    execute=find_users,
    setup=setup,
    cleanup=cleanup,
    health_check=check,
)
