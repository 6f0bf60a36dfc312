"""Request rate limits per API key or client IP, on the ``limits`` package's moving window.

Without Redis the counts live in this process. With Redis (``REDIS_URL``/``REDIS_HOST``) they
live there, so a limit holds across every instance and worker; when Redis fails, each process
falls back to counting on its own (logged once per interval, retried after a short pause) rather
than refusing or letting everything through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from limits import parse

from ai_spine_tools.cache._outage import Outage

if TYPE_CHECKING:
    from ai_spine_tools.cache import RedisCache

__all__ = ["RateDecision", "RateLimiter"]

logger = logging.getLogger("ai_spine_tools.server")


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether a request may proceed, and the numbers for the ``X-RateLimit-*`` headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Return ``X-RateLimit-*`` headers (and ``Retry-After`` when refused)."""
        headers = [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(int(self.reset_at)).encode()),
        ]
        if not self.allowed:
            headers.append((b"retry-after", str(self.retry_after_s).encode()))
        return headers

    @property
    def retry_after_s(self) -> int:
        """Whole seconds until a refused caller may try again (at least 1)."""
        return max(1, int(self.reset_at - time.time() + 0.999))


class RateLimiter:
    """A moving-window limit such as ``100/minute``: in Redis when given one, else in memory.

    ``redis`` shares the ``RedisCache``'s connection pool. After a Redis failure the limiter counts
    in memory and tries Redis again after ``retry_delay`` seconds (doubling up to
    ``max_retry_delay``); ``clock`` is injected so tests need not sleep.
    """

    def __init__(
        self,
        rate: str,
        *,
        storage: Any = None,
        redis: RedisCache | None = None,
        retry_delay: float | None = None,
        max_retry_delay: float = 2.0,
        log_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.item = parse(rate)
        self._storage = storage
        self._redis = redis
        self._limiter: Any = None
        self._shared: Any = None
        if retry_delay is None:
            retry_delay = redis.retry_delay if redis is not None else 0.1
        self._outage = Outage(
            retry_delay=retry_delay,
            max_retry_delay=max_retry_delay,
            log_interval=log_interval,
            clock=clock,
        )
        self.errors = 0

    @property
    def distributed(self) -> bool:
        """True when the counts are shared through Redis."""
        return self._redis is not None

    @property
    def degraded(self) -> bool:
        """True while Redis is failing and this process counts on its own."""
        return self._outage.ongoing

    async def hit(self, key: str) -> RateDecision:
        """Count one request for ``key`` and say whether it is within the limit."""
        if self._redis is not None and self._outage.may_try():
            try:
                decision = await self._decide(self._shared_limiter(), key)
            except self._storage_errors() as exc:
                self._failed(exc)
            else:
                if self._outage.ended():
                    logger.info("rate limits are shared through Redis again")
                return decision
        if self._limiter is None:
            from limits.aio.storage import MemoryStorage
            from limits.aio.strategies import MovingWindowRateLimiter

            self._limiter = MovingWindowRateLimiter(self._storage or MemoryStorage())
        return await self._decide(self._limiter, key)

    def status(self) -> str:
        """``"local"`` (memory), ``"shared"`` (Redis) or ``"degraded"`` (Redis failing)."""
        if self._redis is None:
            return "local"
        return "degraded" if self._outage.ongoing else "shared"

    async def _decide(self, limiter: Any, key: str) -> RateDecision:
        allowed = await limiter.hit(self.item, key)
        stats = await limiter.get_window_stats(self.item, key)
        return RateDecision(allowed, self.item.amount, max(0, stats.remaining), stats.reset_time)

    def _shared_limiter(self) -> Any:
        if self._shared is None:
            from limits.aio.storage import RedisStorage
            from limits.aio.strategies import MovingWindowRateLimiter

            assert self._redis is not None
            pool: dict[str, Any] = {"connection_pool": self._redis.pool}
            storage = RedisStorage(
                "async+redis://",  # the connections come from the cache's pool
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix=self._redis.key_prefix + "limits",
                **pool,
            )
            self._shared = MovingWindowRateLimiter(storage)
        return self._shared

    @staticmethod
    def _storage_errors() -> tuple[type[BaseException], ...]:
        from limits.errors import StorageError

        return (StorageError, OSError, asyncio.TimeoutError)

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        if self._outage.failed():
            logger.warning(
                "rate limits fall back to this process (Redis failed, %d errors so far): %s",
                self.errors,
                exc,
            )
