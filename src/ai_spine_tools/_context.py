"""``ToolContext``: what an execution knows about itself and the request that started it."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Mapping
from itertools import count
from typing import Any

import msgspec

__all__ = ["NO_SECURITY", "SecurityContext", "ToolContext", "new_execution_id"]

# A uuid4 costs an os.urandom call; ids only need to be unique, so one random prefix per process
# and a counter give 36-character, uuid-shaped ids at a fraction of the cost.
_RANDOM = os.urandom(10).hex()
_PREFIX = f"{_RANDOM[:8]}-{_RANDOM[8:12]}-{_RANDOM[12:16]}-{_RANDOM[16:20]}-"
_COUNTER = count(1)


def new_execution_id() -> str:
    """Return a new unique id in uuid form (random per process, sequential within it)."""
    return f"{_PREFIX}{next(_COUNTER) & 0xFFFFFFFFFFFF:012x}"


class SecurityContext(msgspec.Struct, frozen=True, kw_only=True):
    """Who called: an id derived from the API key used (never the key), source IP, user agent."""

    api_key_id: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None


NO_SECURITY = SecurityContext()


class ToolContext(msgspec.Struct, kw_only=True, dict=True):
    """Per-execution information handed to ``execute`` as its third argument.

    ``deadline`` is a ``time.monotonic()`` instant; ``remaining_ms()`` says how much of it is left,
    so tool code can budget its outbound calls. ``resources`` is what ``setup`` returned.
    A msgspec ``Struct`` rather than a dataclass: it is built for every request, in a third of
    the time.
    """

    execution_id: str
    tool_id: str
    tool_version: str
    request_id: str | None = None
    started_at: float = msgspec.field(default_factory=time.time)
    timeout_ms: int | None = None
    deadline: float | None = None
    security: SecurityContext = NO_SECURITY
    metadata: Mapping[str, Any] = msgspec.field(default_factory=dict)
    debug: bool = False
    resources: Any = None

    @property
    def timestamp(self) -> dt.datetime:
        """When the execution started, as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.started_at, dt.UTC)

    def remaining_ms(self) -> float | None:
        """Milliseconds left before the deadline (never negative), or ``None`` without one."""
        if self.deadline is None:
            return None
        return max(0.0, (self.deadline - time.monotonic()) * 1000.0)
