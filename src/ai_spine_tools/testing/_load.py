"""``load_test``: the performance guide's load test, done right.

Simulated users each send an execute request, wait for the answer, think for a random time and
go again, like the guide's example; unlike it, the run is bounded in time *and* count, latency is
measured per request on the client side, errors are counted by code, and only this machine is
ever a target: a ``Tool`` served in-process, or a server on a loopback address.

In-process, the tool's real app runs on the caller's event loop next to the users (no socket, no
second process), so the numbers include the server's whole request path but no network.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from array import array
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from ai_spine_tools.core._tool import Tool
from ai_spine_tools.testing._data import valid_input
from ai_spine_tools.testing._report import LatencySummary, LoadTestReport, TimelinePoint, percentile
from ai_spine_tools.testing._targets import ensure_loopback, target_for

__all__ = ["LoadProgress", "load_test"]

InputSource = Mapping[str, Any] | Callable[[], Mapping[str, Any]]
Send = Callable[[bytes], Awaitable[tuple[int | None, str | None]]]
_MAX_USERS = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadProgress:
    """Where a running load test stands, for progress displays."""

    elapsed_s: float
    duration_s: float
    requests: int
    requests_limit: int | None
    errors: int
    requests_per_second: float
    """Over the last second or so."""


async def load_test(
    tool_or_url: Tool | str,
    input: InputSource | None = None,
    *,
    concurrent_users: int = 100,
    duration: float = 30.0,
    think_time: tuple[float, float] | float = (0.0, 1.0),
    requests: int | None = None,
    config: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    request_timeout: float = 30.0,
    grace: float = 5.0,
    seed: int | None = None,
    on_progress: Callable[[LoadProgress], None] | None = None,
    progress_interval: float = 0.25,
) -> LoadTestReport:
    """Run ``concurrent_users`` simulated users against a tool and report what happened.

    Args:
        tool_or_url: a ``Tool`` (served in-process by its real app, lifespan included) or the base
            URL of a running server on a loopback address.
        input: the ``input_data`` of each request, or a function returning a fresh one per
            request; by default a valid input generated from the tool's schema.
        duration: seconds after which users send no new request; in-flight ones get ``grace``
            seconds to finish, then are cancelled and counted as ``interrupted``.
        think_time: each user's pause after a response, uniform in ``(low, high)`` seconds.
        requests: stop after this many requests in total (``None``: only ``duration`` bounds it).
        headers: added to each request (an ``X-API-Key``, say). ``request_timeout`` bounds each
            HTTP call.
        on_progress: called about every ``progress_interval`` seconds while the test runs.
    """
    low, high = (think_time, think_time) if isinstance(think_time, int | float) else think_time
    _check(concurrent_users, duration, low, high, requests, grace)
    if isinstance(tool_or_url, Tool):
        source: InputSource = valid_input(tool_or_url) if input is None else input
    elif isinstance(tool_or_url, str):
        ensure_loopback(tool_or_url)
        if input is None:
            raise ValueError("load_test needs input= when the target is a URL")
        source = input
    else:
        raise TypeError(f"expected a Tool or a URL (got {type(tool_or_url).__name__})")
    next_body = _body_maker(source, config)
    request_headers = {"content-type": "application/json"}
    request_headers.update((name.lower(), value) for name, value in (headers or {}).items())

    async with target_for(tool_or_url, request_headers, request_timeout) as target:
        run = _Run(
            send=target.send,
            users=concurrent_users,
            duration=duration,
            think=(float(low), float(high)),
            limit=requests,
            grace=grace,
            seed=seed,
        )
        await run.execute(next_body, on_progress, progress_interval)
        metrics = await target.metrics()
    return run.report(
        target=target.name,
        mode=target.mode,
        tool_metrics=metrics,
    )


def _check(
    users: int, duration: float, low: float, high: float, requests: int | None, grace: float
) -> None:
    if not isinstance(users, int) or not 1 <= users <= _MAX_USERS:
        raise ValueError(f"concurrent_users must be from 1 to {_MAX_USERS} (got {users!r})")
    if not (isinstance(duration, int | float) and math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive number of seconds (got {duration!r})")
    if not 0 <= low <= high or not math.isfinite(high):
        raise ValueError(
            f"think_time must be (low, high) with 0 <= low <= high (got {(low, high)})"
        )
    if requests is not None and (not isinstance(requests, int) or requests < 1):
        raise ValueError(f"requests must be a positive integer or None (got {requests!r})")
    if not (isinstance(grace, int | float) and math.isfinite(grace) and grace >= 0):
        raise ValueError(f"grace must be a non-negative number of seconds (got {grace!r})")


def _body_maker(source: InputSource, config: Mapping[str, Any] | None) -> Callable[[], bytes]:
    def envelope(data: Mapping[str, Any]) -> bytes:
        body: dict[str, Any] = {"input_data": data}
        if config is not None:
            body["config"] = config
        return msgspec.json.encode(body)

    if callable(source):
        make = source
        return lambda: envelope(make())
    fixed = envelope(source)  # the same input each time: encode it once
    return lambda: fixed


class _Second:
    __slots__ = ("errors", "latencies")

    def __init__(self) -> None:
        self.latencies = array("d")
        self.errors = 0


class _Run:
    """One load test run: the users, the bounds, and what they recorded."""

    def __init__(
        self,
        *,
        send: Send,
        users: int,
        duration: float,
        think: tuple[float, float],
        limit: int | None,
        grace: float,
        seed: int | None,
    ) -> None:
        self.send, self.users, self.duration, self.think = send, users, duration, think
        self.limit, self.grace, self.seed = limit, grace, seed
        self.clock = time.perf_counter
        self.started = self.deadline = self.ended = 0.0
        self.last_second = 0
        self.started_at = ""
        self.issued = self.done = self.failed = 0
        self.seconds: list[_Second] = []
        self._window: deque[tuple[float, int]] = deque()
        self.by_code: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()

    async def execute(
        self,
        body: Callable[[], bytes],
        on_progress: Callable[[LoadProgress], None] | None,
        interval: float,
    ) -> None:
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.started = self.clock()
        self.deadline = self.started + self.duration
        self.last_second = max(math.ceil(self.duration) - 1, 0)
        master = random.Random(self.seed)
        users = [
            asyncio.create_task(self._user(body, random.Random(master.random())))
            for _ in range(self.users)
        ]
        ticker = asyncio.create_task(self._tick(on_progress, interval)) if on_progress else None
        try:
            done, pending = await asyncio.wait(
                users,
                timeout=max(0.0, self.deadline - self.clock()),
                return_when=asyncio.FIRST_EXCEPTION,  # a broken input function ends it at once
            )
            failed = any(not task.cancelled() and task.exception() for task in done)
            if pending and not failed:  # users send nothing new past the deadline; in-flight
                await asyncio.wait(pending, timeout=self.grace)  # ones get the grace period
        finally:
            for task in [*users, *([ticker] if ticker else [])]:
                task.cancel()
            await asyncio.gather(*users, *([ticker] if ticker else []), return_exceptions=True)
            self.ended = self.clock()
        for task in users:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        if on_progress is not None:
            on_progress(self.progress())

    async def _user(self, body: Callable[[], bytes], rng: random.Random) -> None:
        clock, low, high = self.clock, *self.think
        while clock() < self.deadline:
            if self.limit is not None and self.issued >= self.limit:
                return
            payload = body()
            self.issued += 1
            begin = clock()
            try:
                status, code = await self.send(payload)
            except Exception as exc:  # a failure of the client side, not of the tool
                status, code = None, f"CLIENT_{type(exc).__name__}"
            end = clock()
            self._record(end, (end - begin) * 1000.0, status, code)
            pause = rng.uniform(low, high) if high > 0 else 0.0
            left = self.deadline - clock()
            if left <= 0:
                return
            await asyncio.sleep(min(pause, left))  # sleep(0) too: let the other users run

    def _record(self, end: float, latency_ms: float, status: int | None, code: str | None) -> None:
        # completions while draining after the deadline belong to the run's last second
        index = min(int(end - self.started), self.last_second)
        while len(self.seconds) <= index:
            self.seconds.append(_Second())
        second = self.seconds[index]
        second.latencies.append(latency_ms)
        self.done += 1
        self.statuses["none" if status is None else str(status)] += 1
        if code is not None:
            second.errors += 1
            self.failed += 1
            self.by_code[code] += 1

    async def _tick(self, on_progress: Callable[[LoadProgress], None], interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            on_progress(self.progress())

    def progress(self) -> LoadProgress:
        """Return where the run stands, with the rate over about the last second."""
        now = self.clock() if not self.ended else self.ended
        window = self._window
        if not window:
            window.append((self.started, 0))
        window.append((now, self.done))
        while len(window) > 2 and now - window[1][0] >= 1.0:
            window.popleft()
        since, count = window[0]
        rate = (self.done - count) / (now - since) if now > since else 0.0
        return LoadProgress(
            elapsed_s=round(now - self.started, 3),
            duration_s=self.duration,
            requests=self.done,
            requests_limit=self.limit,
            errors=self.failed,
            requests_per_second=round(rate, 1),
        )

    def report(
        self, *, target: str, mode: str, tool_metrics: dict[str, Any] | None
    ) -> LoadTestReport:
        elapsed = max(self.ended - self.started, 1e-9)
        everything = sorted(x for second in self.seconds for x in second.latencies)
        timeline = []
        for index, second in enumerate(self.seconds):
            ordered = sorted(second.latencies)
            last = index == len(self.seconds) - 1
            width = elapsed - index if last else 1.0  # the last may be partial, or hold the drain
            timeline.append(
                TimelinePoint(
                    second=index,
                    requests=len(ordered),
                    errors=second.errors,
                    requests_per_second=round(len(ordered) / max(width, 1e-3), 1),
                    p50_ms=round(percentile(ordered, 50), 3),
                    p99_ms=round(percentile(ordered, 99), 3),
                )
            )
        reached_limit = self.limit is not None and self.issued >= self.limit
        return LoadTestReport(
            target=target,
            mode=mode,
            concurrent_users=self.users,
            duration_s=self.duration,
            requests_limit=self.limit,
            think_time_s=self.think,
            started_at=self.started_at,
            elapsed_s=round(elapsed, 3),
            stopped_by="requests" if reached_limit else "duration",
            total_requests=self.done,
            successes=self.done - self.failed,
            errors=self.failed,
            interrupted=self.issued - self.done,
            error_rate=round(self.failed / self.done, 6) if self.done else 0.0,
            requests_per_second=round(self.done / elapsed, 2),
            latency=LatencySummary.of(everything),
            errors_by_code=dict(self.by_code.most_common()),
            status_codes=dict(sorted(self.statuses.items())),
            timeline=tuple(timeline),
            tool_metrics=tool_metrics,
        )
