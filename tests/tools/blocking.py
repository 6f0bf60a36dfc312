"""Calls ``time.sleep`` inside ``async execute``: the blocking mistake ``ai-spine doctor`` names."""

from __future__ import annotations

import time
from typing import Any

from ai_spine_tools import create_tool, string_field


async def execute(input: dict[str, Any]) -> dict[str, Any]:
    time.sleep(0.15)  # noqa: ASYNC251 - the mistake under test
    return {"name": input["name"]}


tool = create_tool(
    metadata={"name": "blocking", "version": "1.0.0", "description": "Blocks the loop"},
    schema={"input": {"name": string_field(required=True, example="x")}},
    execute=execute,
)
