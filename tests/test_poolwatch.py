"""Pool pressure: 50 executions sharing a PostgreSQL pool of 2 show their wait to acquire a
connection in ``/metrics`` (JSON and Prometheus) and in one warning; queue figures are there."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ai_spine_tools import ToolContext, create_tool
from ai_spine_tools.outbound._poolwatch import configure_pool_watch, note_wait
from ai_spine_tools.postgres import PostgresPool
from ai_spine_tools.testing import AsyncToolTestClient, ToolTestClient, load_test

DSN = os.environ.get("AI_SPINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def _postgres_or_skip() -> None:
    try:
        import asyncpg

        connection = await asyncpg.connect(DSN, timeout=3)
    except Exception as exc:
        if os.environ.get("AI_SPINE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL is required but not reachable at {DSN}: {exc}")
        pytest.skip(f"PostgreSQL is not reachable at {DSN}: {exc}")
    await connection.close()


async def test_fifty_requests_on_a_pool_of_two_show_the_acquire_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _postgres_or_skip()

    async def setup() -> PostgresPool:
        return await PostgresPool(DSN, min_size=1, max_size=2, name="pg-small").open()

    async def execute(input: dict[str, Any], config: Any, context: ToolContext) -> Any:
        return {"slept": await context.resources.fetchval("SELECT pg_sleep(0.02)::text")}

    async def cleanup(pool: PostgresPool) -> None:
        await pool.close()

    tool = create_tool(
        metadata={"name": "pg-queue", "version": "1.0.0", "description": "Queries"},
        execute=execute,
        setup=setup,
        cleanup=cleanup,
    )
    caplog.set_level(logging.WARNING, logger="ai_spine_tools.diagnostics")
    async with AsyncToolTestClient(tool) as client:
        report = await load_test(
            tool, {}, concurrent_users=50, requests=50, think_time=0, duration=30
        )
        pools = tool.get_metrics().pools
        text = (await client.get("/metrics?format=prometheus")).text
    assert report.successes == 50
    wait = pools["pg-small"]["acquire_wait_ms"]
    assert wait["max"] >= 100  # 48 callers queue behind two 20 ms queries
    assert wait["avg"] > 0
    assert pools["pg-small"]["acquired"] == 50
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (sample,) = [
        s
        for s in families["ai_spine_pool_acquire_wait_max_seconds"].samples
        if s.labels["pool"] == "pg-small"
    ]
    assert sample.value >= 0.1
    warnings = [r.getMessage() for r in caplog.records if "for a connection from pool" in r.message]
    assert len(warnings) == 1  # at most once a minute per pool
    assert "'pg-small'" in warnings[0]
    assert "max_size 2" in warnings[0]


def test_short_waits_are_not_warned(caplog: pytest.LogCaptureFixture) -> None:
    configure_pool_watch(100)
    caplog.set_level(logging.WARNING, logger="ai_spine_tools.diagnostics")
    note_wait("quiet-pool", 99.0)
    assert not caplog.records
    note_wait("quiet-pool", 150.0, lambda: {"max_size": 3, "in_use": 3, "waiting": 7})
    note_wait("quiet-pool", 150.0)  # within the minute: not again
    (record,) = caplog.records
    assert "waited 150 ms" in record.getMessage()
    assert "7 waiting" in record.getMessage()


def test_queue_figures_are_exported() -> None:
    async def execute(input: dict[str, Any]) -> Any:
        return {}

    tool = create_tool(
        metadata={"name": "q", "version": "1.0.0", "description": "Q"}, execute=execute
    )
    with ToolTestClient(tool, max_concurrent_executions=7) as client:
        concurrency = client.get("/metrics").json["concurrency"]
        text = client.get("/metrics?format=prometheus").text
    assert concurrency["limit"] == 7
    assert concurrency["queued"] == 0
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["ai_spine_requests_concurrency_limit"].samples[0].value == 7
    assert "ai_spine_requests_queued" in families
    assert "ai_spine_requests_in_flight" in families
