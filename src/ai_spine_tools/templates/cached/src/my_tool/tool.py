"""My Tool: a slow computation behind the SDK's result cache (memory, plus Redis when set)."""

from __future__ import annotations

import asyncio
from typing import Any

from ai_spine_tools import ToolContext, boolean_field, create_tool, integer_field


def _factorise(number: int) -> list[int]:
    factors, divisor = [], 2
    while divisor * divisor <= number:
        while number % divisor == 0:
            factors.append(divisor)
            number //= divisor
        divisor += 1
    if number > 1:
        factors.append(number)
    return factors


async def factorise(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> dict[str, Any]:
    """Return the prime factors of ``input["number"]`` (slowly: this is what caching is for)."""
    await asyncio.sleep(0.05)  # stands in for an expensive call
    return {"number": input["number"], "factors": _factorise(input["number"])}


tool = create_tool(
    metadata={
        "name": "my-tool",
        "version": "0.1.0",
        "description": "Prime factors of a number, cached",
        "capabilities": ["math.factorise"],
    },
    schema={
        "input": {
            "number": integer_field(
                required=True, min=2, max=10**12, description="The number to factorise", example=360
            ),
        },
        "config": {
            "cache_enabled": boolean_field(
                default=True, overridable=True, description="Use cached results"
            ),
        },
    },
    execute=factorise,
    # Results live 10 minutes; with REDIS_URL set they are shared by every instance.
    cache={"ttl": 600},
)
