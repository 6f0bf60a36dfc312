"""A sync tool that sleeps for ``seconds`` in two pool threads, past its 300 ms deadline if asked:
what holds the thread pool looks like from outside."""

from __future__ import annotations

import time
from typing import Any

from ai_spine_tools import create_tool, number_field


def execute(input: dict[str, Any]) -> dict[str, Any]:
    time.sleep(input["seconds"])
    return {"slept": input["seconds"]}


tool = create_tool(
    metadata={
        "name": "stuck-tool",
        "version": "1.0.0",
        "description": "Sleeps in a thread",
        "capabilities": ["testing.sleep"],
    },
    schema={"input": {"seconds": number_field(min=0, max=60, default=0)}},
    execute=execute,
    timeout_ms=300,
    max_threads=2,
)
