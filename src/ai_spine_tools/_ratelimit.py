"""Request rate limits per API key or client IP, on the ``limits`` package's moving window."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from limits import parse

__all__ = ["RateDecision", "RateLimiter"]


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
    """A moving-window limit such as ``100/minute``, kept in memory (or a given storage)."""

    def __init__(self, rate: str, *, storage: Any = None) -> None:
        self.item = parse(rate)
        self._storage = storage
        self._limiter: Any = None

    async def hit(self, key: str) -> RateDecision:
        """Count one request for ``key`` and say whether it is within the limit."""
        if self._limiter is None:
            from limits.aio.storage import MemoryStorage
            from limits.aio.strategies import MovingWindowRateLimiter

            self._limiter = MovingWindowRateLimiter(self._storage or MemoryStorage())
        allowed = await self._limiter.hit(self.item, key)
        stats = await self._limiter.get_window_stats(self.item, key)
        return RateDecision(allowed, self.item.amount, max(0, stats.remaining), stats.reset_time)
