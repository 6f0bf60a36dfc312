"""A suite's second tool: converts an amount; its setup fails when SUITE_BREAK_CURRENCY is set."""

import os
from typing import Any

from ai_spine_tools import create_tool, number_field


async def setup(config: dict[str, Any]) -> dict[str, Any]:
    if os.environ.get("SUITE_BREAK_CURRENCY"):
        raise RuntimeError("the rates service refused the key")
    return {"rate": 0.9}


async def execute(input: dict[str, Any], config: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"eur": round(input["amount"] * context.resources["rate"], 2)}


tool = create_tool(
    metadata={"name": "currency", "version": "2.0.0", "description": "Converts USD to EUR"},
    schema={"input": {"amount": number_field(required=True, min=0)}},
    execute=execute,
    setup=setup,
)
