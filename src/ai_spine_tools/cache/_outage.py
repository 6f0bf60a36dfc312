"""A shared dependency (Redis) that may fail: when to try it again, and when to say so.

The result cache (``MultiLevelCache``) and the rate limits (``RateLimiter``) fall back to this
process while Redis fails; ``Outage`` keeps their count of consecutive failures and puts the
next try off by a delay that doubles from ``retry_delay`` up to ``max_retry_delay`` (one caller
probes, the others skip Redis until it reports back). ``Throttle`` says when a repeated warning
is due: at most once per interval (``SharedReplays`` uses it alone).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["Outage", "Throttle"]


class Throttle:
    """Yes at most once per ``interval`` seconds of ``clock``: whether a repeated warning is due."""

    __slots__ = ("_clock", "_last", "interval")

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last = -math.inf

    def due(self, now: float | None = None) -> bool:
        """Say whether the warning is due at ``now`` (default: the clock's now)."""
        if now is None:
            now = self._clock()
        if now - self._last < self.interval:
            return False
        self._last = now
        return True


class Outage:
    """Consecutive failures of a dependency, and when it may be tried again."""

    __slots__ = ("_clock", "_retry_at", "failures", "max_retry_delay", "retry_delay", "warning")

    def __init__(
        self,
        *,
        retry_delay: float,
        max_retry_delay: float,
        log_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retry_delay = retry_delay
        self.max_retry_delay = max(max_retry_delay, retry_delay)
        self.warning = Throttle(log_interval, clock)
        self._clock = clock
        self.failures = 0  # consecutive; 0 means healthy
        self._retry_at = 0.0

    @property
    def ongoing(self) -> bool:
        """True while the dependency is failing."""
        return self.failures > 0

    def may_try(self) -> bool:
        """True when the dependency may be used now: it is healthy, or this caller is the one
        to probe it again (the others are told no until the probe reports back)."""
        if not self.failures:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + self._backoff()
        return True

    def failed(self) -> bool:
        """Count a failure and put the next try off; say whether a warning is due."""
        self.failures += 1
        now = self._clock()
        self._retry_at = now + self._backoff()
        return self.warning.due(now)

    def ended(self) -> int:
        """Record a success: return how many failures the outage lasted (0 if there was none)."""
        failures, self.failures, self._retry_at = self.failures, 0, 0.0
        return failures

    def _backoff(self) -> float:
        return float(min(self.max_retry_delay, self.retry_delay * 2 ** min(self.failures - 1, 16)))
