"""``MultiLevelCache``: memory (L1) in front of a shared cache (L2, Redis), degrading to L1."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ai_spine_tools.cache._memory import MemoryCache, hit_rate
from ai_spine_tools.cache._outage import Outage
from ai_spine_tools.cache._redis import CacheError, RedisCache

if TYPE_CHECKING:
    from ai_spine_tools.cache import Cache

__all__ = ["MultiLevelCache"]

logger = logging.getLogger("ai_spine_tools.cache")

_FROM_ENV: Any = object()


class MultiLevelCache:
    """Reads L1 then L2, back-filling L1 for a shorter time; writes both; survives L2 outages.

    As in the performance guide: ``MultiLevelCache()`` makes a ``MemoryCache(max_keys=1000,
    default_ttl=300)`` as L1 and, when ``REDIS_URL`` or ``REDIS_HOST`` is set, a ``RedisCache``
    as L2 (without either it is a memory cache alone). A write stores the value in L1 for at most
    ``l1_ttl`` seconds and in L2 for ``ttl``; a value read from L2 is copied into L1 for at most
    ``backfill_ttl`` seconds (never past its L2 expiry), which bounds how long another instance's
    invalidation can go unseen here. ``l1_ttl=0`` keeps written values out of L1 and
    ``backfill_ttl=0`` read ones: with both, every read of a key not put in L1 by hand goes to
    L2, and an invalidation anywhere is seen at once (0 never means "no expiry" here).

    When L2 fails (``CacheError``), the failure is counted, logged at most once per
    ``log_interval`` seconds, and the cache carries on with L1 alone: reads miss, writes stay
    local, nothing raises (``delete``, ``delete_prefix`` and ``clear`` do raise, after clearing
    L1, since a silently failed invalidation would serve stale data). While degraded, L2 is tried
    again after ``retry_delay`` seconds (doubling up to ``max_retry_delay``) by one caller at a
    time; the first success ends the degraded mode.
    """

    def __init__(
        self,
        l1: MemoryCache | None = None,
        l2: Cache | None = _FROM_ENV,
        *,
        l1_ttl: float = 300.0,
        backfill_ttl: float = 60.0,
        retry_delay: float | None = None,
        max_retry_delay: float = 2.0,
        log_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.l1 = l1 if l1 is not None else MemoryCache(max_keys=1000, default_ttl=300.0)
        self.l2: Cache | None = RedisCache.from_env() if l2 is _FROM_ENV else l2
        self.l1_ttl = l1_ttl
        self.backfill_ttl = backfill_ttl
        self._outage = Outage(
            retry_delay=retry_delay
            if retry_delay is not None
            else getattr(self.l2, "retry_delay", 0.1),
            max_retry_delay=max_retry_delay,
            log_interval=log_interval,
            clock=clock,
        )
        self._get_with_ttl = getattr(self.l2, "get_with_ttl", None)
        self._redis = self.l2 if isinstance(self.l2, RedisCache) else None
        self.last_error: str | None = None
        self.l2_hits = self.l2_misses = self.l2_errors = self.l2_skipped = 0
        self._l2_only = 0  # lookups that read L2 without reading L1 first

    @property
    def degraded(self) -> bool:
        """True while L2 is failing and the cache runs on L1 alone."""
        return self._outage.ongoing

    # -- the Cache protocol --------------------------------------------------------------------

    async def get(self, key: str) -> Any:
        """Return the value from L1, else from L2 (copying it into L1), else ``None``."""
        value = self.l1.get_nowait(key)
        if value is not None:
            return value
        return await self.get_shared(key)

    async def get_shared(
        self,
        key: str,
        *,
        decode: Callable[[bytes], Any] | None = None,
        after_l1: bool = True,
    ) -> Any:
        """Return the value from L2 alone (copying it into L1), or ``None``; L1 is not read.

        ``decode`` reads the stored JSON when L2 is a ``RedisCache`` (see ``RedisCache.get``).
        ``after_l1``: the caller missed in L1 first (the overall figures count one lookup).
        """
        if not after_l1:
            self._l2_only += 1
        l2 = self.l2
        if l2 is None or not self._l2_usable():
            return None
        redis = self._redis
        try:
            if self.backfill_ttl <= 0:  # nothing goes into L1: the TTL is not needed
                value = await (l2.get(key) if redis is None else redis.get(key, decode=decode))
                left = None
            elif redis is not None:
                value, left = await redis.get_with_ttl(key, decode=decode)
            elif self._get_with_ttl is not None:
                value, left = await self._get_with_ttl(key)
            else:
                value, left = await l2.get(key), None
        except CacheError as exc:
            self._l2_failed(exc)
            return None
        self._l2_ok()
        if value is None:
            self.l2_misses += 1
            return None
        self.l2_hits += 1
        if self.backfill_ttl > 0:
            ttl = self.backfill_ttl if left is None else min(self.backfill_ttl, left)
            if ttl > 0:
                self.l1.set_nowait(key, value, ttl)
        return value

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` in L1 (for at most ``l1_ttl``) and in L2 (for ``ttl``)."""
        if ttl is None:
            ttl = self.l1.default_ttl
        if self.l1_ttl > 0:
            self.l1.set_nowait(key, value, self.l1_ttl if not ttl else min(ttl, self.l1_ttl))
        elif self.l2 is None:  # no shared level: memory is the only one
            self.l1.set_nowait(key, value, ttl)
        if self.l2 is None or not self._l2_usable():
            return
        try:
            await self.l2.set(key, value, ttl)
        except CacheError as exc:
            self._l2_failed(exc)
        else:
            self._l2_ok()

    async def delete(self, key: str) -> bool:
        """Remove ``key`` from both levels; raise ``CacheError`` when L2 could not be reached."""
        removed = self.l1.delete_nowait(key)
        if self.l2 is not None:
            try:
                removed = await self.l2.delete(key) or removed
            except CacheError as exc:
                self._l2_failed(exc)
                raise
            self._l2_ok()
        return removed

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` from both levels; return the most removed
        from either. Raise ``CacheError`` when L2 could not be reached."""
        removed = self.l1.delete_prefix_nowait(prefix)
        if self.l2 is not None:
            try:
                removed = max(removed, await self.l2.delete_prefix(prefix))
            except CacheError as exc:
                self._l2_failed(exc)
                raise
            self._l2_ok()
        return removed

    async def clear(self) -> None:
        """Remove every entry from both levels."""
        await self.l1.clear()
        if self.l2 is not None:
            try:
                await self.l2.clear()
            except CacheError as exc:
                self._l2_failed(exc)
                raise
            self._l2_ok()

    async def check(self) -> str:
        """Probe L2 now: ``"ok"``, ``"degraded"`` (L2 failing) or ``"memory"`` (no L2)."""
        if self.l2 is None:
            return "memory"
        ping = getattr(self.l2, "ping", None)
        try:
            if ping is not None:
                await ping()
            else:
                await self.l2.get("__ai_spine_health__")
        except CacheError as exc:
            self._l2_failed(exc)
            return "degraded"
        self._l2_ok()
        return "ok"

    async def close(self) -> None:
        """Close L2's connections."""
        if self.l2 is not None:
            await self.l2.close()

    def stats(self) -> dict[str, Any]:
        """Hits, misses and hit rate overall and per level; evictions; L2 errors."""
        l1 = self.l1.stats()
        hits = self.l1.hits + self.l2_hits
        # An L1 miss answered by L2 is a hit overall.
        misses = self.l1.misses + self._l2_only - self.l2_hits
        out: dict[str, Any] = {
            "backend": "memory" if self.l2 is None else "memory+redis",
            "hits": hits,
            "misses": misses,
            "hit_rate": hit_rate(hits, misses),
            "evictions": self.l1.evictions,
            "redis_errors": self.l2_errors,
            "degraded": self.degraded,
            "l1": l1,
            "l2": None,
        }
        if self.l2 is not None:
            out["l2"] = {
                "backend": "redis" if isinstance(self.l2, RedisCache) else type(self.l2).__name__,
                "hits": self.l2_hits,
                "misses": self.l2_misses,
                "hit_rate": hit_rate(self.l2_hits, self.l2_misses),
                "errors": self.l2_errors,
                "skipped_while_degraded": self.l2_skipped,
                "last_error": self.last_error,
            }
        return out

    # -- L2 health -----------------------------------------------------------------------------

    def _l2_usable(self) -> bool:
        if self._outage.may_try():
            return True
        self.l2_skipped += 1
        return False

    def _l2_failed(self, exc: CacheError) -> None:
        self.l2_errors += 1
        self.last_error = str(exc)
        if self._outage.failed():
            logger.warning(
                "shared cache unavailable, serving from memory only (%d errors so far): %s",
                self.l2_errors,
                exc,
            )

    def _l2_ok(self) -> None:
        failures = self._outage.ended()
        if failures:
            logger.info("shared cache reachable again after %d failures", failures)
