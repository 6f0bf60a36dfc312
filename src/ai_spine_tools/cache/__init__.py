"""Caches: in memory, in Redis, both in layers, and each tool's own.

- ``MemoryCache``: this process; a TTL per entry, at most ``max_keys`` entries, least recently
  used evicted first, O(1) ``get`` and ``set``.
- ``RedisCache``: Redis, shared by every instance and worker; values as JSON; a bounded
  connection pool and a command timeout. Needs the ``[redis]`` extra, imported only when a
  ``RedisCache`` is made (``import ai_spine_tools`` never loads redis).
- ``MultiLevelCache(l1, l2)``: the performance guide's two levels: memory in front of Redis;
  a Redis failure is logged, counted, and served from memory, never raised to a request.
- ``ToolCache``: ``tool.cache`` / ``context.cache``: a tool's store plus the server's result
  cache (``create_tool(cache={"ttl": 600})``) with ``invalidate(input)``.

Each is a ``Cache``: ``await get(key)`` (``None`` when absent), ``await set(key, value, ttl)``
(seconds), ``delete``, ``delete_prefix``, ``clear``, ``close`` and ``stats()``.
"""

from __future__ import annotations

from typing import Any, Protocol

from ai_spine_tools.cache._memory import MemoryCache
from ai_spine_tools.cache._multilevel import MultiLevelCache
from ai_spine_tools.cache._options import CacheOptions
from ai_spine_tools.cache._redis import CacheError, RedisCache
from ai_spine_tools.cache._results import CacheOutcome, ToolCache

__all__ = [
    "Cache",
    "CacheError",
    "CacheOptions",
    "CacheOutcome",
    "MemoryCache",
    "MultiLevelCache",
    "RedisCache",
    "ToolCache",
]


class Cache(Protocol):
    """What every cache does: async get, set with a TTL in seconds, delete, and statistics."""

    async def get(self, key: str) -> Any:
        """Return the value under ``key``, or ``None`` when absent or expired."""

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (``None``: the cache's default)."""

    async def delete(self, key: str) -> bool:
        """Remove ``key``; say whether it was there."""

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix``; return how many."""

    async def clear(self) -> None:
        """Remove every entry."""

    async def close(self) -> None:
        """Release connections."""

    def stats(self) -> dict[str, Any]:
        """Counters: hits, misses, hit rate, and what else the cache tracks."""
