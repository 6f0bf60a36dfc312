"""The ``cpu`` workload, ours: about 50 ms of hashing per call, run in the server's process pool
with ``context.to_process`` (``AI_SPINE_PROCESS_WORKERS`` workers)."""

from __future__ import annotations

from typing import Any

from ai_spine_tools import ToolContext, create_tool, integer_field, string_field
from bench.apps.cpu_work import chain


async def hash_chain(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> dict[str, Any]:
    """Return the last digest of the seed's chain, computed in a worker process."""
    digest = await context.to_process(chain, input["seed"], input["rounds"])
    return {"seed": input["seed"], "rounds": input["rounds"], "digest": digest}


tool = create_tool(
    metadata={
        "name": "hash-chain",
        "version": "1.0.0",
        "description": "Hash a seed many times over (CPU-bound)",
        "capabilities": ["hash.chain"],
    },
    schema={
        "input": {
            "seed": string_field(required=True, max_length=100),
            "rounds": integer_field(required=True, min=1, max=100_000_000),
        }
    },
    execute=hash_chain,
)
