"""``ToolContext``: what an execution knows about itself and the request that started it."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import count
from typing import Any

__all__ = ["SecurityContext", "ToolContext", "new_execution_id"]

# A uuid4 costs an os.urandom call; ids only need to be unique, so one random prefix per process
# and a counter give 36-character, uuid-shaped ids at a fraction of the cost.
_PREFIX = os.urandom(8).hex()
_COUNTER = count(1)


def new_execution_id() -> str:
    """Return a new unique id in uuid form (random per process, sequential within it)."""
    n = next(_COUNTER)
    tail = f"{n:016x}"[-16:]
    return f"{_PREFIX[:8]}-{_PREFIX[8:12]}-{_PREFIX[12:16]}-{tail[:4]}-{tail[4:]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityContext:
    """Who called: a hash of the API key used (never the key), source IP and user agent."""

    api_key_id: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None


_NO_SECURITY = SecurityContext()


@dataclass(slots=True, kw_only=True)
class ToolContext:
    """Per-execution information handed to ``execute`` as its third argument.

    ``deadline`` is a ``time.monotonic()`` instant; ``remaining_ms()`` says how much of it is left,
    so tool code can budget its outbound calls. ``resources`` is what ``setup`` returned.
    """

    execution_id: str
    tool_id: str
    tool_version: str
    request_id: str | None = None
    timestamp: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    timeout_ms: int | None = None
    deadline: float | None = None
    security: SecurityContext = _NO_SECURITY
    metadata: Mapping[str, Any] = field(default_factory=dict)
    debug: bool = False
    resources: Any = None

    def remaining_ms(self) -> float | None:
        """Milliseconds left before the deadline (never negative), or ``None`` without one."""
        if self.deadline is None:
            return None
        return max(0.0, (self.deadline - time.monotonic()) * 1000.0)
