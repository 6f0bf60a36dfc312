"""Sleeps as asked, records custom metrics, passes a circuit breaker; fails with a given code."""

from __future__ import annotations

import asyncio
from typing import Any

from ai_spine_tools import (
    Tool,
    ToolContext,
    ToolResult,
    boolean_field,
    create_tool,
    integer_field,
    number_field,
    secret_field,
    string_field,
)


async def execute(input: dict[str, Any], config: dict[str, Any], context: ToolContext) -> Any:
    with context.metrics.timer("database_query"):
        await asyncio.sleep(input["sleep_ms"] / 1000.0)
    context.metrics.increment("rows_read", input["rows"])
    context.metrics.gauge("database_connections", 3)
    context.metrics.observe("upstream_ms", 12.5)
    async with context.breaker("upstream"):
        pass
    if input["use_http"]:
        assert context.http is not None  # opens the shared pool, which metrics then report
    if input["fail_code"]:
        return ToolResult.error(input["fail_code"], "asked to fail", type="network_error")
    return {"slept_ms": input["sleep_ms"], "request_id": context.request_id}


def make_tool() -> Tool:
    """A fresh copy of the tool, with metrics of its own."""
    return create_tool(
        metadata={"name": "observed", "version": "3.0.0", "description": "Sleeps and measures"},
        schema={
            "input": {
                "sleep_ms": number_field(min=0, max=5000, default=0),
                "rows": integer_field(min=0, max=1000, default=1),
                "use_http": boolean_field(default=False),
                "fail_code": string_field(max_length=40),
            },
            "config": {"password": secret_field(max_length=100)},
        },
        execute=execute,
    )


tool = make_tool()
