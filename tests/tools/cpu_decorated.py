"""A decorated plain ``def`` run whole in the process pool (``executor="process"``), from a tool
file loaded by path."""

from __future__ import annotations

import os
from typing import Any

from ai_spine_tools import ToolContext, tool


@tool(name="primes", executor="process", description="Counts primes in a worker process")
def count_primes(limit: int, *, context: ToolContext) -> dict[str, Any]:
    """Count the primes below ``limit``, the slow way."""
    found = sum(1 for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1)))
    return {"primes": found, "pid": os.getpid(), "execution_id": context.execution_id}
