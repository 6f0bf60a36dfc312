"""``retry``: which errors are retried, backoff with jitter, and stopping at the deadline."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
import httpx
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ai_spine_tools import (
    CircuitOpenError,
    ExecutionError,
    RateLimitError,
    ServiceUnavailableError,
    ToolContext,
    UpstreamConnectionError,
    UpstreamDecodeError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    ValidationError,
    create_tool,
    retry,
)
from ai_spine_tools.resilience._retry import is_retryable


class Flaky:
    """Fails ``failures`` times with ``error``, then answers."""

    def __init__(self, failures: int, error: BaseException) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.times: list[float] = []

    async def __call__(self) -> str:
        self.calls += 1
        self.times.append(time.monotonic())
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def _aiohttp_request() -> aiohttp.RequestInfo:
    url = URL("http://upstream.test/")
    return aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)


def _aiohttp_key() -> Any:
    return SimpleNamespace(host="upstream.test", port=443, ssl=True)


def _status_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://upstream.test/")
    return httpx.HTTPStatusError("x", request=request, response=httpx.Response(status))


@pytest.mark.parametrize(
    "error",
    [
        ServiceUnavailableError("upstream down"),
        RateLimitError("slow down"),
        ConnectionRefusedError(),
        TimeoutError(),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        _status_error(503),
        _status_error(429),
        UpstreamConnectionError("refused"),
        UpstreamTimeoutError("slow"),
        UpstreamStatusError("busy", status_code=503, retryable=True),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("cut"),
        aiohttp.ClientResponseError(_aiohttp_request(), (), status=502),
    ],
)
def test_retryable_errors(error: BaseException) -> None:
    assert is_retryable(error)


@pytest.mark.parametrize(
    "error",
    [
        ValidationError([]),
        ExecutionError("bug"),
        CircuitOpenError("open"),
        KeyError("bug"),
        _status_error(404),
        _status_error(400),
        UpstreamStatusError("gone", status_code=404, retryable=False),
        UpstreamError("bad URL"),
        UpstreamDecodeError("not JSON"),
        aiohttp.ClientResponseError(_aiohttp_request(), (), status=404),
        aiohttp.ClientConnectorCertificateError(_aiohttp_key(), ValueError("bad cert")),
    ],
)
def test_not_retryable_errors(error: BaseException) -> None:
    assert not is_retryable(error)


async def test_retries_retryable_errors_until_success() -> None:
    flaky = Flaky(2, ServiceUnavailableError("down"))
    assert await retry(attempts=3, base_delay=0.001).call(flaky) == "ok"
    assert flaky.calls == 3


async def test_gives_up_after_attempts_with_the_last_error() -> None:
    flaky = Flaky(5, ConnectionResetError("reset"))
    with pytest.raises(ConnectionResetError):
        await retry(attempts=3, base_delay=0.001).call(flaky)
    assert flaky.calls == 3


async def test_does_not_retry_what_is_not_retryable() -> None:
    flaky = Flaky(5, ValidationError([]))
    with pytest.raises(ValidationError):
        await retry(attempts=5, base_delay=0.001).call(flaky)
    assert flaky.calls == 1


@pytest.mark.parametrize(
    ("retry_on", "error", "calls"),
    [
        ((KeyError,), KeyError("x"), 3),
        ((KeyError,), ServiceUnavailableError("x"), 1),
        (lambda exc: "again" in str(exc), RuntimeError("try again"), 3),
        (lambda exc: "again" in str(exc), RuntimeError("never"), 1),
    ],
)
async def test_retry_on_types_or_predicate(retry_on: Any, error: Exception, calls: int) -> None:
    flaky = Flaky(5, error)
    with pytest.raises(type(error)):
        await retry(attempts=3, base_delay=0.001, retry_on=retry_on).call(flaky)
    assert flaky.calls == calls


async def test_decorator_forms() -> None:
    flaky = Flaky(1, TimeoutError())

    @retry
    async def bare() -> str:
        return await flaky()

    assert await bare() == "ok"

    @retry(attempts=2, base_delay=0.001)
    async def configured(value: int) -> int:
        await flaky()
        return value

    assert await configured(7) == 7


async def test_backoff_grows_exponentially_without_jitter() -> None:
    flaky = Flaky(3, TimeoutError())
    await retry(attempts=4, base_delay=0.02, jitter=False).call(flaky)
    gaps = [b - a for a, b in zip(flaky.times, flaky.times[1:], strict=False)]
    assert gaps[0] >= 0.02
    assert gaps[1] >= 0.04
    assert gaps[2] >= 0.08


async def test_jittered_waits_stay_within_the_cap() -> None:
    flaky = Flaky(4, TimeoutError())
    started = time.monotonic()
    await retry(attempts=5, base_delay=0.01, max_delay=0.02).call(flaky)
    assert time.monotonic() - started < 4 * 0.02 + 0.5


async def test_waits_at_least_what_the_error_asks() -> None:
    flaky = Flaky(1, ServiceUnavailableError("busy", retry_after_ms=100))
    await retry(attempts=2, base_delay=0.001).call(flaky)
    assert flaky.times[1] - flaky.times[0] >= 0.1


async def test_stops_before_an_explicit_deadline() -> None:
    flaky = Flaky(1000, ServiceUnavailableError("down"))
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError):
        await retry(attempts=None, base_delay=0.02, jitter=False, deadline=started + 0.3).call(
            flaky
        )
    took = time.monotonic() - started
    assert took < 0.3
    assert 2 <= flaky.calls <= 5  # 0.02, 0.04, 0.08, 0.16 ... until the next wait passes 0.3 s


async def test_retries_stop_at_the_execution_deadline() -> None:
    calls: list[float] = []

    async def execute(input: dict[str, Any], config: dict[str, Any], context: ToolContext) -> Any:
        async def upstream() -> str:
            calls.append(time.monotonic())
            raise ServiceUnavailableError("upstream down", retry_after_ms=None)

        return await retry(attempts=None, base_delay=0.02, jitter=False)(upstream)()

    tool = create_tool(
        metadata={"name": "retrier", "version": "1.0.0", "description": "d", "capabilities": ["x"]},
        execute=execute,
        timeout_ms=400,
    )
    started = time.monotonic()
    result = await tool.run({})
    took = time.monotonic() - started
    # The last wait would have ended past the deadline: the retry gave up with the real error
    # (a retryable 503) instead of being cut off into a 408.
    assert result.error_code == "SERVICE_UNAVAILABLE"
    assert took < 0.4
    assert len(calls) >= 3


async def test_context_deadline_bounds_retries_in_child_tasks() -> None:
    context = ToolContext(
        execution_id="e", tool_id="t", tool_version="1", deadline=time.monotonic() + 0.2
    )
    flaky = Flaky(1000, TimeoutError())

    async def child() -> str:
        return await retry(attempts=None, base_delay=0.02, jitter=False, context=context).call(
            flaky
        )

    with pytest.raises(TimeoutError):
        await asyncio.create_task(child())
    assert context.remaining_ms() is not None


@pytest.mark.parametrize(
    ("options", "message"),
    [({"attempts": 0}, "attempts"), ({"base_delay": -1}, "base_delay")],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        retry(**options)
