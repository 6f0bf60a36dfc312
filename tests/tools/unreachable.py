"""Calls a service with httpx directly (not context.http), on the port it is given."""

from __future__ import annotations

from typing import Any

import httpx

from ai_spine_tools import create_tool, integer_field, number_field


async def execute(input: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=input["timeout"]) as client:
        response = await client.get(f"http://127.0.0.1:{input['port']}/")
    return {"status": response.status_code}


tool = create_tool(
    metadata={
        "name": "unreachable",
        "version": "1.0.0",
        "description": "Calls a service that may not answer",
        "capabilities": ["testing.upstream"],
    },
    schema={
        "input": {
            "port": integer_field(required=True, min=1, max=65535),
            "timeout": number_field(min=0.01, max=10, default=2),
        }
    },
    execute=execute,
)
