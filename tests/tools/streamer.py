"""Yields ``count`` records ``{"i": n}``, optionally slowly or failing at ``fail_at``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ai_spine_tools import (
    ServiceUnavailableError,
    ToolContext,
    create_tool,
    enum_field,
    integer_field,
    number_field,
)

state = {"closed": 0}


async def execute(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> AsyncIterator[dict[str, Any]]:
    try:
        for i in range(input["count"]):
            if i == input["fail_at"]:
                if input["fail_with"] == "unavailable":
                    raise ServiceUnavailableError("upstream went away", retry_after_ms=2000)
                raise RuntimeError("the source broke")
            yield {"i": i}
            if input["delay_ms"]:
                await asyncio.sleep(input["delay_ms"] / 1000)
    finally:
        state["closed"] += 1  # the generator was closed, however it ended


tool = create_tool(
    metadata={
        "name": "streamer",
        "version": "1.0.0",
        "description": "Streams numbered records",
        "capabilities": ["testing.stream"],
    },
    schema={
        "input": {
            "count": integer_field(min=0, max=10_000_000, default=3),
            "delay_ms": number_field(min=0, max=10_000, default=0),
            "fail_at": integer_field(min=0),
            "fail_with": enum_field(["crash", "unavailable"], default="crash"),
        }
    },
    execute=execute,
)
