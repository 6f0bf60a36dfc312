"""The tool the MCP tests call: a deterministic answer, a field to get wrong, a way to be slow, a
way to fail with internals that must not leak, and stray prints."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from ai_spine_tools import (
    ToolContext,
    array_field,
    boolean_field,
    create_tool,
    enum_field,
    integer_field,
    string_field,
)


async def execute(input: dict[str, Any], config: dict[str, Any], context: ToolContext) -> Any:
    if input["sleep_ms"]:
        await asyncio.sleep(input["sleep_ms"] / 1000)
    if input["fail"]:
        raise RuntimeError("database password is hunter2")  # must never reach the caller
    print(f"weather for {input['city']}")  # stray output: over stdio it must miss the protocol
    digest = hashlib.blake2b(input["city"].encode(), digest_size=2).digest()
    return {
        "city": input["city"],
        "temperature": round(digest[0] / 255 * 40 - 5, 1),
        "units": input["units"],
        "tags": input["tags"],
    }


tool = create_tool(
    metadata={
        "name": "agent-weather",
        "version": "1.2.0",
        "description": "Get the current weather for a city",
        "capabilities": ["weather.current"],
    },
    schema={
        "input": {
            "city": string_field(
                required=True, max_length=100, description="City name", example="Madrid"
            ),
            "units": enum_field(["celsius", "fahrenheit"], default="celsius"),
            "tags": array_field(string_field(max_length=10), max_items=3, default=[]),
            "sleep_ms": integer_field(min=0, max=60_000, default=0, description="Sleep first"),
            "fail": boolean_field(default=False, description="Raise an exception"),
        }
    },
    execute=execute,
    setup=lambda: print("setting up"),  # the same, before the protocol starts
)
