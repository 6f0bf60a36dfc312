"""A CPU-bound tool: chained SHA-256, computed in the server's process pool.

Serve it with ``ai-spine serve examples/hasher.py`` and call it with::

    curl -s localhost:3000/api/execute -H 'content-type: application/json' \
         -d '{"input_data": {"text": "hello", "rounds": 1000000}}'

``chain_hashes`` runs in a worker process (``AI_SPINE_PROCESS_WORKERS`` of them, one per core by
default), so executions use every core and ``/health`` keeps answering while they run. It is a
module-level function of this file, which is what lets a worker find it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ai_spine_tools import ToolContext, create_tool, integer_field, string_field


def chain_hashes(text: str, rounds: int) -> str:
    """Hash ``text`` ``rounds`` times over, each digest feeding the next; return the last."""
    digest = text.encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


async def execute(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> dict[str, Any]:
    """Compute the chain in a worker process while the server goes on serving."""
    digest = await context.to_process(chain_hashes, input["text"], input["rounds"])
    return {"rounds": input["rounds"], "digest": digest}


tool = create_tool(
    metadata={
        "name": "hasher",
        "version": "1.0.0",
        "description": "Chained SHA-256 of a text, computed on every core",
        "capabilities": ["hash.chain"],
    },
    schema={
        "input": {
            "text": string_field(required=True, max_length=10_000, example="hello"),
            "rounds": integer_field(default=100_000, min=1, max=50_000_000),
        }
    },
    execute=execute,
    timeout_ms=20_000,
)
