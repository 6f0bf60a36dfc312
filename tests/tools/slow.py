"""Sleeps for ``seconds`` and reports its process id; cleanup leaves a marker file."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from ai_spine_tools import ToolContext, create_tool, number_field, string_field

state = {"cancelled": 0}


async def execute(input: dict[str, Any], config: dict[str, Any], context: ToolContext) -> Any:
    try:
        await asyncio.sleep(input["seconds"])
    except asyncio.CancelledError:
        state["cancelled"] += 1
        raise
    if input["fail"]:
        raise RuntimeError(f"asked to fail: {input['fail']}")
    return {"pid": os.getpid(), "slept": input["seconds"], "request_id": context.request_id}


def cleanup() -> None:
    marker = os.environ.get("AI_SPINE_TEST_MARKER")
    if marker:
        Path(marker).write_text("cleanup ran\n")


tool = create_tool(
    metadata={
        "name": "slow-tool",
        "version": "2.1.0",
        "description": "Sleeps, then answers",
        "capabilities": ["testing.sleep"],
    },
    schema={
        "input": {
            "seconds": number_field(min=0, max=60, default=0),
            "fail": string_field(max_length=100),
        },
        "config": {"token": string_field(max_length=50)},
    },
    execute=execute,
    cleanup=cleanup,
)
