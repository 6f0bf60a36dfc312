"""A tool that reports its process's garbage-collector settings (for the GC tuning tests)."""

from __future__ import annotations

import gc
from typing import Any

from ai_spine_tools import create_tool


async def execute(input: dict[str, Any]) -> dict[str, Any]:
    return {"threshold": list(gc.get_threshold()), "frozen": gc.get_freeze_count()}


tool = create_tool(
    metadata={"name": "gc-info", "version": "1.0.0", "description": "The process's GC settings"},
    execute=execute,
)
