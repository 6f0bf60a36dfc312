"""``retry``: call an async function again after retryable errors, never past the deadline.

Built on ``tenacity`` (imported on first use): exponential backoff with full jitter (each wait
is drawn from ``[0, min(max_delay, base_delay * 2**n)]``, so clients that failed together do
not retry together), at least the ``retry_after_ms`` an error asks for, and a stop as soon as the
next wait would end past the execution's deadline, re-raising the last error rather than being
cut off by a 408.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload

from ai_spine_tools.exceptions import CircuitOpenError, ToolError
from ai_spine_tools.resilience._deadlines import deadlines

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = ["Retry", "is_retryable", "retry"]


class _Deadlined(Protocol):
    """What has a deadline: a ``ToolContext`` (``context.deadline``)."""

    @property
    def deadline(self) -> float | None: ...


logger = logging.getLogger("ai_spine_tools.retry")

P = ParamSpec("P")
T = TypeVar("T")
Predicate = Callable[[BaseException], bool]

_RETRYABLE_HTTP_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_retryable(exc: BaseException) -> bool:
    """True for errors worth another try: retryable ``ToolError``s and transient I/O failures.

    An open circuit is not retried (failing fast is its point); neither is a caller's mistake.
    Connection errors and timeouts (``context.http``'s ``UpstreamConnectionError`` and
    ``UpstreamTimeoutError`` among them), 408/425/429/5xx-gateway answers after
    ``raise_for_status()``, the same failures raised by aiohttp or httpx used directly, and
    asyncpg connection failures, are.
    """
    if isinstance(exc, CircuitOpenError):
        return False
    if isinstance(exc, ToolError):
        return exc.retryable
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:
        if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
            return not isinstance(exc, aiohttp.ClientSSLError)
        if isinstance(exc, aiohttp.ClientResponseError):
            return exc.status in _RETRYABLE_HTTP_STATUS
    httpx = sys.modules.get("httpx")
    if httpx is not None:
        if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
            return True
        if isinstance(exc, httpx.HTTPStatusError):
            return exc.response.status_code in _RETRYABLE_HTTP_STATUS
    asyncpg = sys.modules.get("asyncpg")
    if asyncpg is not None:
        return isinstance(
            exc,
            asyncpg.PostgresConnectionError
            | asyncpg.CannotConnectNowError
            | asyncpg.ConnectionDoesNotExistError
            | asyncpg.SerializationError
            | asyncpg.DeadlockDetectedError,
        )
    return False


class Retry:
    """A retry policy; call it on an async function to decorate it, or ``await policy.call()``."""

    def __init__(
        self,
        *,
        attempts: int | None = 3,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        jitter: bool = True,
        retry_on: Predicate | tuple[type[BaseException], ...] | None = None,
        context: _Deadlined | None = None,
        deadline: float | None = None,
    ) -> None:
        if attempts is not None and (not isinstance(attempts, int) or attempts < 1):
            raise ValueError(f"attempts must be at least 1 or None (got {attempts!r})")
        if base_delay < 0 or max_delay < 0:
            raise ValueError("base_delay and max_delay must not be negative")
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.jitter = jitter
        if retry_on is None:
            self.predicate: Predicate = is_retryable
        elif isinstance(retry_on, tuple):
            types = retry_on
            self.predicate = lambda exc: isinstance(exc, types)
        else:
            self.predicate = retry_on
        self.context = context
        self.deadline = deadline

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate the async function ``fn``: each call is retried under this policy."""

        @functools.wraps(fn)
        async def retried(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return retried

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)``, retrying retryable errors; re-raise the last one."""
        from tenacity import (
            AsyncRetrying,
            retry_if_exception,
            stop_after_attempt,
            stop_never,
            wait_exponential,
            wait_random_exponential,
        )

        deadline = self._deadline()
        backoff = (wait_random_exponential if self.jitter else wait_exponential)(
            multiplier=self.base_delay, max=self.max_delay
        )

        def wait(state: RetryCallState) -> float:
            seconds = float(backoff(state))
            exc = state.outcome.exception() if state.outcome is not None else None
            asked = getattr(exc, "retry_after_ms", None)
            return max(seconds, asked / 1000.0) if isinstance(asked, int | float) else seconds

        attempts = stop_never if self.attempts is None else stop_after_attempt(self.attempts)

        def stop(state: RetryCallState) -> bool:
            if attempts(state):
                return True
            sleep = state.upcoming_sleep or 0.0
            return deadline is not None and time.monotonic() + sleep >= deadline

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(self.predicate),
            reraise=True,
            sleep=asyncio.sleep,
            before_sleep=_log_retry,
        )
        return await retrying(fn, *args, **kwargs)

    def _deadline(self) -> float | None:
        if self.deadline is not None:
            return self.deadline
        if self.context is not None and self.context.deadline is not None:
            return self.context.deadline
        task = asyncio.current_task()
        return None if task is None else deadlines().deadline_of(task)


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    logger.info(
        "retrying %s in %.3f s after %s (attempt %d)",
        getattr(state.fn, "__qualname__", state.fn),
        state.upcoming_sleep,
        type(exc).__name__,
        state.attempt_number,
    )


@overload
def retry(fn: Callable[P, Awaitable[T]], /) -> Callable[P, Awaitable[T]]: ...


@overload
def retry(
    fn: None = None,
    /,
    *,
    attempts: int | None = ...,
    base_delay: float = ...,
    max_delay: float = ...,
    jitter: bool = ...,
    retry_on: Predicate | tuple[type[BaseException], ...] | None = ...,
    context: _Deadlined | None = ...,
    deadline: float | None = ...,
) -> Retry: ...


def retry(
    fn: Callable[..., Awaitable[Any]] | None = None,
    /,
    *,
    attempts: int | None = 3,
    base_delay: float = 0.1,
    max_delay: float = 5.0,
    jitter: bool = True,
    retry_on: Predicate | tuple[type[BaseException], ...] | None = None,
    context: _Deadlined | None = None,
    deadline: float | None = None,
) -> Any:
    """Retry an async call on retryable errors with exponential backoff and jitter.

    ``@retry`` or ``@retry(attempts=5)`` decorates an async function;
    ``await retry(attempts=5).call(fetch, url)`` retries one call. ``attempts`` counts every try
    (``None``: until the deadline). Only errors for which ``retry_on`` is true are retried (by
    default ``is_retryable``: ``ToolError.retryable`` and transient I/O errors); a tuple of
    exception types works too. The retries stop before the next wait would pass the deadline:
    ``deadline`` (a ``time.monotonic()`` instant), else ``context.deadline``, else the deadline
    of the execution running in the current task.
    """
    policy = Retry(
        attempts=attempts,
        base_delay=base_delay,
        max_delay=max_delay,
        jitter=jitter,
        retry_on=retry_on,
        context=context,
        deadline=deadline,
    )
    return policy if fn is None else policy(fn)
