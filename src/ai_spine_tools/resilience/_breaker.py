"""Circuit breakers: stop calling a dependency that keeps failing, and try it again later.

::

    closed ──(failure_threshold failures in a row)──▶ open
    open ──(recovery_timeout seconds pass)──▶ half-open
    half-open ──(half_open_max_calls trial calls succeed)──▶ closed
    half-open ──(a trial call fails)──▶ open

While open, a call fails at once with ``CircuitOpenError`` (503, retryable, ``retry_after_ms``)
instead of waiting on a dependency that is down. Only the protected calls count: exceptions raised
inside the breaker's block. A caller's mistake (a ``ToolError`` with a 4xx status), an upstream's
answer that another try would not change (an ``UpstreamStatusError`` that is not retryable, such
as a 404) and the ``exclude`` types never count as failures; a call cut off by the execution
deadline does.
With ``redis=``, failure counts and the open state are shared by every instance through one Redis
hash (see ``RedisBreakerState``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Literal, ParamSpec, TypeVar

from ai_spine_tools.exceptions import CircuitOpenError, ToolError, UpstreamStatusError
from ai_spine_tools.resilience._deadlines import deadlines

__all__ = ["BreakerRegistry", "CircuitBreaker", "RedisBreakerState", "named_breakers"]

logger = logging.getLogger("ai_spine_tools.breaker")

P = ParamSpec("P")
T = TypeVar("T")
State = Literal["closed", "open", "half_open"]

# Standalone breakers created with a name, so /health and metrics can show them.
_NAMED: weakref.WeakValueDictionary[str, CircuitBreaker] = weakref.WeakValueDictionary()


def named_breakers() -> dict[str, CircuitBreaker]:
    """Return the standalone breakers of this process that were given a name."""
    return dict(_NAMED)


class CircuitBreaker:
    """Fail fast while a dependency is down; probe it again after ``recovery_timeout`` seconds.

    Use it as an async context manager (``async with breaker: ...``), as a decorator of an async
    function, or with ``await breaker.call(fn, *args)``. ``failure_types`` are the exceptions
    that count as the dependency failing (default: any ``Exception``); ``exclude`` are exceptions
    that never do. ``clock`` is injectable so tests never sleep.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        *,
        name: str | None = None,
        failure_types: tuple[type[BaseException], ...] = (Exception,),
        exclude: tuple[type[BaseException], ...] = (),
        clock: Callable[[], float] = time.monotonic,
        redis: Any = None,
        sync_interval: float = 1.0,
        _register: bool = True,
    ) -> None:
        if not isinstance(failure_threshold, int) or failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1 (got {failure_threshold!r})")
        if not isinstance(recovery_timeout, int | float) or recovery_timeout < 0:
            raise ValueError(f"recovery_timeout must be >= 0 seconds (got {recovery_timeout!r})")
        if not isinstance(half_open_max_calls, int) or half_open_max_calls < 1:
            raise ValueError(
                f"half_open_max_calls must be at least 1 (got {half_open_max_calls!r})"
            )
        self.name = name or f"breaker-{id(self):x}"
        self.failure_threshold = failure_threshold
        self.recovery_timeout = float(recovery_timeout)
        self.half_open_max_calls = half_open_max_calls
        self.failure_types = failure_types
        self.exclude = exclude
        self._clock = clock
        self._state: State = "closed"
        self._failures = 0  # consecutive, while closed
        self._opened_at = 0.0
        self._trials = 0  # trial calls in flight, while half-open
        self._trial_successes = 0
        self._epoch = 0  # bumped on every state change: late results of older calls are ignored
        self._entered: dict[asyncio.Task[Any] | None, list[int]] = {}
        self.calls = self.successes = self.failures = self.rejected = self.opened = 0
        self.last_failure: str | None = None
        self.shared = None if redis is None else RedisBreakerState(redis, self.name)
        self._sync_interval = sync_interval
        self._synced_at = -math.inf
        if name is not None and _register:
            _NAMED[name] = self

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name} {self.state}>"

    # -- state -------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """``closed``, ``open`` or ``half_open`` (an open circuit half-opens once it may)."""
        if self._state == "open" and self._clock() - self._opened_at >= self.recovery_timeout:
            self._transition("half_open")
        return self._state

    def retry_after_ms(self) -> int:
        """Milliseconds until an open circuit lets a trial call through (0 unless open)."""
        if self.state != "open":
            return 0
        left = self.recovery_timeout - (self._clock() - self._opened_at)
        return max(1, math.ceil(left * 1000))

    def stats(self) -> dict[str, Any]:
        """Return the state and counters, for ``/health`` and metrics."""
        state = self.state
        out: dict[str, Any] = {
            "state": state,
            "consecutive_failures": self._failures,
            "failure_threshold": self.failure_threshold,
            "recovery_timeout_s": self.recovery_timeout,
            "calls": self.calls,
            "successes": self.successes,
            "failures": self.failures,
            "rejected": self.rejected,
            "opened": self.opened,
            "shared": self.shared is not None,
        }
        if state == "open":
            out["retry_after_ms"] = self.retry_after_ms()
        if self.last_failure is not None:
            out["last_failure"] = self.last_failure
        return out

    def reset(self) -> None:
        """Close the circuit and forget the failures (local state only)."""
        self._failures = 0
        self._transition("closed")

    def _transition(self, state: State) -> None:
        self._state = state
        self._epoch += 1
        self._trials = self._trial_successes = 0
        if state == "open":
            self._opened_at = self._clock()
            self.opened += 1
            logger.warning("circuit %s opened after %s", self.name, self.last_failure)
        elif state == "closed":
            self._failures = 0
            logger.info("circuit %s closed", self.name)

    # -- admission and outcome ---------------------------------------------------------------

    def _admit(self) -> int:
        state = self.state
        if state == "open" or (state == "half_open" and self._trials >= self.half_open_max_calls):
            self.rejected += 1
            probe_ms = max(1, math.ceil(min(self.recovery_timeout, 1.0) * 1000))
            wait_ms = self.retry_after_ms() or probe_ms
            raise CircuitOpenError(
                f"Circuit '{self.name}' is open: the dependency failed "
                f"{self.failure_threshold} times in a row; retry in {wait_ms} ms",
                retry_after_ms=wait_ms,
                details={"circuit": self.name, "state": state},
            )
        if state == "half_open":
            self._trials += 1
        self.calls += 1
        return self._epoch

    def _outcome(self, exc: BaseException | None) -> bool | None:
        """True for a failure of the dependency, False for a success, None for neither."""
        if exc is None:
            return False
        if isinstance(exc, asyncio.CancelledError):
            task = asyncio.current_task()
            return True if task is not None and deadlines().is_expired(task) else None
        if isinstance(exc, CircuitOpenError):
            return None  # a nested breaker refused: says nothing about this dependency
        if (
            isinstance(exc, self.exclude)
            or (isinstance(exc, ToolError) and exc.status < 500 and exc.status not in (408, 429))
            or (isinstance(exc, UpstreamStatusError) and not exc.retryable)
        ):
            return False  # the dependency answered; the request was at fault
        return isinstance(exc, self.failure_types)

    def _settle(self, epoch: int, exc: BaseException | None) -> bool | None:
        outcome = self._outcome(exc)
        if outcome is True:
            self.failures += 1
            self.last_failure = type(exc).__name__
        elif outcome is False:
            self.successes += 1
        current = epoch == self._epoch
        if not current:
            return outcome  # began under an earlier state: no evidence about the present one
        if self._state == "half_open":
            self._trials -= 1
            if outcome is True:
                self._transition("open")
            elif outcome is False:
                self._trial_successes += 1
                if self._trial_successes >= self.half_open_max_calls:
                    self._transition("closed")
        elif self._state == "closed":
            if outcome is True:
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    self._transition("open")
            elif outcome is False:
                self._failures = 0
        return outcome

    async def _enter(self) -> int:
        if self.shared is not None and self._clock() - self._synced_at >= self._sync_interval:
            self._synced_at = self._clock()
            await self._pull()
        return self._admit()

    async def _exit(self, epoch: int, exc: BaseException | None) -> None:
        was = self._state
        outcome = self._settle(epoch, exc)
        if self.shared is not None and outcome is not None:
            await self._push(outcome, reopened=was == "half_open" and self._state == "open")

    # -- the three ways to use it ------------------------------------------------------------

    async def __aenter__(self) -> CircuitBreaker:
        epoch = await self._enter()
        self._entered.setdefault(asyncio.current_task(), []).append(epoch)
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        task = asyncio.current_task()
        stack = self._entered[task]
        epoch = stack.pop()
        if not stack:
            del self._entered[task]
        await self._exit(epoch, exc)

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate an async function so each call goes through this breaker."""

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return guarded

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` through this breaker."""
        epoch = await self._enter()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await self._exit(epoch, exc)
            raise
        await self._exit(epoch, None)
        return result

    # -- shared state ------------------------------------------------------------------------

    async def _pull(self) -> None:
        assert self.shared is not None
        try:
            remaining_ms = await self.shared.open_for_ms()
        except Exception as exc:  # Redis down: carry on with the local state alone
            logger.warning("circuit %s: cannot read shared state: %s", self.name, exc)
            return
        if remaining_ms > 0 and self._state == "closed":
            self.last_failure = self.last_failure or "opened by another instance"
            self._transition("open")
            self._opened_at = self._clock() - (self.recovery_timeout - remaining_ms / 1000.0)

    async def _push(self, failed: bool, *, reopened: bool) -> None:
        assert self.shared is not None
        try:
            if failed:
                remaining_ms = await self.shared.record_failure(
                    self.failure_threshold, self.recovery_timeout, reopen=reopened
                )
                if remaining_ms > 0 and self._state == "closed":
                    self._transition("open")
            elif self._state == "closed":
                await self.shared.record_success()
        except Exception as exc:
            logger.warning("circuit %s: cannot write shared state: %s", self.name, exc)


class RedisBreakerState:
    """A breaker's shared state: one Redis hash per breaker, updated by atomic scripts.

    The hash ``ai-spine:breaker:<name>`` holds ``failures`` (consecutive failures across all
    instances) and ``open_until`` (Redis server time in ms, so instances' clocks never disagree).
    An instance counts its failures into the hash and opens when the shared count reaches the
    threshold; it reads the hash at most once per ``sync_interval`` to learn that another instance
    opened the circuit. Half-open trial calls are limited per instance.
    """

    _FAILURE = """
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
    local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
    if open_until <= now and (n >= tonumber(ARGV[1]) or ARGV[3] == '1') then
      open_until = now + tonumber(ARGV[2])
      redis.call('HSET', KEYS[1], 'open_until', open_until, 'failures', 0)
    end
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 3600000)
    return open_until - now
    """
    _OPEN_FOR = """
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
    return open_until - now
    """
    _SUCCESS = """
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
    if open_until <= now then redis.call('HSET', KEYS[1], 'failures', 0) end
    return 0
    """

    def __init__(self, redis: Any, name: str, *, prefix: str = "ai-spine:breaker:") -> None:
        self._redis = redis
        self.key = prefix + name

    def _client(self) -> Any:
        if isinstance(self._redis, str):
            from redis.asyncio import Redis

            self._redis = Redis.from_url(self._redis)
        return self._redis

    async def record_failure(self, threshold: int, recovery_s: float, *, reopen: bool) -> int:
        """Count one failure; return how many ms the circuit stays open (<= 0: closed)."""
        result = await self._client().eval(
            self._FAILURE, 1, self.key, threshold, math.ceil(recovery_s * 1000), int(reopen)
        )
        return int(result)

    async def record_success(self) -> None:
        """Reset the consecutive-failure count (unless the circuit is open)."""
        await self._client().eval(self._SUCCESS, 1, self.key)

    async def open_for_ms(self) -> int:
        """Return how many ms the shared circuit stays open (<= 0: not open)."""
        return int(await self._client().eval(self._OPEN_FOR, 1, self.key))


class BreakerRegistry:
    """The named breakers of one tool, each created on first use (``context.breaker(name)``)."""

    def __init__(self, defaults: Mapping[str, Any] | None = None) -> None:
        self._defaults = dict(defaults or {})
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str, **options: Any) -> CircuitBreaker:
        """Return the breaker called ``name``; ``options`` configure it when it is created."""
        breaker = self._breakers.get(name)
        if breaker is None:
            settings = {**self._defaults, **options}
            breaker = self._breakers[name] = CircuitBreaker(name=name, _register=False, **settings)
        return breaker

    def add(self, breaker: CircuitBreaker) -> CircuitBreaker:
        """Register an existing breaker under its name."""
        self._breakers[breaker.name] = breaker
        return breaker

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def reset(self) -> None:
        """Close every breaker of the tool and forget its failures (local state only)."""
        for breaker in self._breakers.values():
            breaker.reset()

    def stats(self) -> dict[str, dict[str, Any]]:
        """Return each breaker's stats, with the process's named standalone breakers."""
        everyone = {**named_breakers(), **self._breakers}
        return {name: breaker.stats() for name, breaker in sorted(everyone.items())}
