"""Caches its results for ten minutes; reports which process computed them and how often."""

from __future__ import annotations

import os
from typing import Any

from ai_spine_tools import create_tool, string_field

runs = {"count": 0}


async def execute(input: dict[str, Any]) -> dict[str, Any]:
    runs["count"] += 1
    return {"pid": os.getpid(), "run": runs["count"], "echo": input["q"]}


tool = create_tool(
    metadata={"name": "cached-tool", "version": "1.0.0", "description": "Caches its answers"},
    schema={"input": {"q": string_field(required=True, max_length=100)}},
    execute=execute,
    cache={"ttl": 600},
)
