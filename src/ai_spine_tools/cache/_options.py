"""``CacheOptions``: how a tool's results are cached (``create_tool(cache={...})``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from ai_spine_tools.exceptions import ToolDefinitionError

__all__ = ["NO_FLAGS", "CacheOptions", "ExecutionFlags"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheOptions:
    """Result caching of one tool, as given to ``create_tool(cache={...})``.

    Attributes:
        ttl: seconds a result stays cached (``None``: ``AI_SPINE_CACHE_TTL``, 300 by default).
        max_keys: entries kept in this process's memory (least recently used evicted first).
        l1_ttl: seconds an entry stays in memory at most; with Redis this bounds how long another
            instance's invalidation goes unseen here. ``0`` with Redis: nothing is kept in
            memory, every lookup (of a result, a body seen before, or ``context.cache``) reads
            Redis, so an invalidation on any instance is seen by every other at once. Without
            Redis, memory is the only level and results stay there for ``ttl``.
        vary_config: config fields that change the output and so belong in the key (``None``:
            all of them except ``cache_enabled``/``cacheEnabled``; ``()``: none, so callers with
            different keys share results).
        clock: the monotonic clock of the memory level (injected by tests).
    """

    ttl: float | None = None
    max_keys: int = 1000
    l1_ttl: float = 60.0
    vary_config: tuple[str, ...] | None = None
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def parse(cls, value: Any) -> CacheOptions | None:
        """Read ``cache=``: ``None``/``False`` (off), ``True`` (defaults), a mapping or options."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, CacheOptions):
            return value
        if not isinstance(value, Mapping):
            raise ToolDefinitionError(
                f"cache must be True, a mapping such as {{'ttl': 600}} or CacheOptions "
                f"(got {type(value).__name__})"
            )
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise ToolDefinitionError(
                f"cache takes {', '.join(cls.__dataclass_fields__)} "
                f"(got {', '.join(map(repr, sorted(unknown)))})"
            )
        options = dict(value)
        for name in ("ttl", "l1_ttl"):
            number = options.get(name)
            if number is not None and (
                isinstance(number, bool) or not isinstance(number, int | float) or number < 0
            ):
                raise ToolDefinitionError(f"cache[{name!r}] must be seconds >= 0 (got {number!r})")
        max_keys = options.get("max_keys", 1000)
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ToolDefinitionError(f"cache['max_keys'] must be >= 1 (got {max_keys!r})")
        vary = options.get("vary_config")
        if vary is not None:
            if isinstance(vary, str) or not isinstance(vary, Iterable):
                raise ToolDefinitionError("cache['vary_config'] must be a list of config fields")
            options["vary_config"] = tuple(vary)
        return cls(**options)


class ExecutionFlags(msgspec.Struct, frozen=True, kw_only=True):
    """How the caller asked this execution to use the result cache.

    ``no_cache``: the cached result was not read (``Cache-Control: no-cache``); the tool runs and
    its result refreshes the cache. ``no_store``: nothing is read or stored (``no-store``).
    Tool code can honour them for what it caches itself in ``context.cache``.
    """

    no_cache: bool = False
    no_store: bool = False


NO_FLAGS = ExecutionFlags()
