"""Keeps 100 KB per call in a global list: the memory leak the diagnostics must catch."""

from __future__ import annotations

from typing import Any

from ai_spine_tools import create_tool, string_field

KEPT: list[bytes] = []


async def execute(input: dict[str, Any]) -> dict[str, Any]:
    KEPT.append(bytes(100_000) + input["name"].encode())  # never released
    return {"kept": len(KEPT)}


tool = create_tool(
    metadata={"name": "leaky", "version": "1.0.0", "description": "Leaks 100 KB per call"},
    schema={"input": {"name": string_field(required=True, example="x")}},
    execute=execute,
)
