"""``MemoryCache``: an in-process cache with TTL and least-recently-used eviction."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["MemoryCache", "hit_rate"]


class MemoryCache:
    """Keys to values in this process: a TTL per entry, at most ``max_keys`` entries.

    ``get`` and ``set`` are O(1): an ordered dict keeps entries in order of last use, so a full
    cache drops the least recently used one. Expired entries are dropped when next read (or when
    evicted). Values are stored as given, not copied (like node-cache's ``useClones: false``):
    do not mutate a value after caching it. ``ttl`` is in seconds; ``None`` takes
    ``default_ttl``, and a ``default_ttl`` of ``None`` or 0 means no expiry. ``clock`` is injected
    so tests move time instead of sleeping.
    """

    __slots__ = (
        "_clock",
        "_data",
        "default_ttl",
        "evictions",
        "expirations",
        "hits",
        "max_keys",
        "misses",
        "sets",
    )

    def __init__(
        self,
        *,
        max_keys: int = 1000,
        default_ttl: float | None = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(max_keys, int) or max_keys < 1:
            raise ValueError(f"max_keys must be a positive integer (got {max_keys!r})")
        if default_ttl is not None and default_ttl < 0:
            raise ValueError(f"default_ttl must be a number of seconds >= 0 (got {default_ttl!r})")
        self.max_keys = max_keys
        self.default_ttl = default_ttl or None
        self._clock = clock
        self._data: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self.hits = self.misses = self.sets = self.evictions = self.expirations = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        item = self._data.get(key)  # type: ignore[call-overload]
        return item is not None and item[1] > self._clock()

    # -- synchronous core (what the async methods and MultiLevelCache call) --------------------

    def get_nowait(self, key: str) -> Any:
        """Return the live value under ``key`` (marking it recently used), else ``None``."""
        item = self._data.get(key)
        if item is None:
            self.misses += 1
            return None
        if item[1] <= self._clock():
            del self._data[key]
            self.expirations += 1
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return item[0]

    def set_nowait(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, evicting the least recently used
        entry when the cache is full."""
        if ttl is None:
            ttl = self.default_ttl
        elif ttl < 0:
            raise ValueError(f"ttl must be a number of seconds >= 0 (got {ttl!r})")
        expires = self._clock() + ttl if ttl else math.inf
        data = self._data
        if key in data:
            data.move_to_end(key)
        else:
            while len(data) >= self.max_keys:
                _, (_, expired_at) = data.popitem(last=False)
                if expired_at <= self._clock():
                    self.expirations += 1
                else:
                    self.evictions += 1
        data[key] = (value, expires)
        self.sets += 1

    def remaining_ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires (``math.inf`` without expiry), ``None`` when absent."""
        item = self._data.get(key)
        if item is None:
            return None
        left = item[1] - self._clock()
        return left if left > 0 else None

    def delete_nowait(self, key: str) -> bool:
        """Remove ``key``; say whether it was there."""
        return self._data.pop(key, None) is not None

    def delete_prefix_nowait(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` (a scan of all keys); return how many."""
        doomed = [key for key in self._data if key.startswith(prefix)]
        for key in doomed:
            del self._data[key]
        return len(doomed)

    # -- the Cache protocol --------------------------------------------------------------------

    async def get(self, key: str) -> Any:
        """Return the value under ``key``, or ``None`` when absent or expired."""
        return self.get_nowait(key)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (``None``: the default TTL)."""
        self.set_nowait(key, value, ttl)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; say whether it was there."""
        return self.delete_nowait(key)

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix``; return how many were removed."""
        return self.delete_prefix_nowait(prefix)

    async def clear(self) -> None:
        """Remove every entry (the counters stay)."""
        self._data.clear()

    def clear_nowait(self) -> None:
        """``clear()`` without awaiting (memory only)."""
        self._data.clear()

    async def close(self) -> None:
        """Nothing to release."""

    def stats(self) -> dict[str, Any]:
        """Hits, misses, hit rate, size, evictions and expirations."""
        return {
            "backend": "memory",
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": hit_rate(self.hits, self.misses),
            "keys": len(self._data),
            "max_keys": self.max_keys,
            "sets": self.sets,
            "evictions": self.evictions,
            "expirations": self.expirations,
        }


def hit_rate(hits: int, misses: int) -> float:
    """Hits over lookups, rounded to 4 places (0.0 before any lookup)."""
    total = hits + misses
    return round(hits / total, 4) if total else 0.0
