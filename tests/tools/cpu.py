"""A CPU-bound tool: chained hashing in the server's process pool, with module-level functions
of this file (loaded by path) sent to the workers as users write them."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from ai_spine_tools import ToolContext, create_tool, enum_field, number_field, string_field


def chain_hashes(seconds: float) -> dict[str, Any]:
    """Hash a digest into itself for ``seconds`` of wall time (CPU-bound the whole time)."""
    started = time.perf_counter()
    digest, rounds = b"ai-spine", 0
    while time.perf_counter() - started < seconds:
        for _ in range(1000):
            digest = hashlib.sha256(digest).digest()
        rounds += 1000
    return {
        "pid": os.getpid(),
        "rounds": rounds,
        "seconds": time.perf_counter() - started,
        "digest": digest.hex()[:16],
    }


def note_pid_and_sleep(path: str, seconds: float) -> None:
    """Write this worker's pid to ``path``, then hang (a call that would never end)."""
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)


async def execute(input: dict[str, Any], config: dict[str, Any], context: ToolContext) -> Any:
    if input["mode"] == "stuck":
        await context.to_process(note_pid_and_sleep, input["path"], 60.0)
    return await context.to_process(chain_hashes, input["seconds"])


tool = create_tool(
    metadata={
        "name": "cpu",
        "version": "1.0.0",
        "description": "Chained hashing in the process pool",
    },
    schema={
        "input": {
            "mode": enum_field(["hash", "stuck"], default="hash"),
            "seconds": number_field(default=0.05, min=0, max=10),
            "path": string_field(required=False),
        }
    },
    execute=execute,
)
