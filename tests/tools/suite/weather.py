"""A suite's first tool: the weather of a city (no I/O), its result cached."""

from typing import Any

from ai_spine_tools import create_tool, string_field


async def execute(input: dict[str, Any]) -> dict[str, Any]:
    return {"city": input["city"], "temperature": 21.5}


tool = create_tool(
    metadata={"name": "weather", "version": "1.1.0", "description": "Weather of a city"},
    schema={"input": {"city": string_field(required=True, max_length=100)}},
    execute=execute,
    cache={"ttl": 600},
)
