"""load_test is honest: throughput, error rate, bounds, loopback only; and its report's outputs."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import weather
from ai_spine_tools import Tool, ToolError, create_tool, integer_field, string_field
from ai_spine_tools.testing import (
    LoadProgress,
    LoadTestReport,
    ensure_loopback,
    load_test,
)
from serverproc import ServerProcess, free_port, running_server

SLEEP_S = 0.02
USERS = 10
THEORETICAL_RPS = USERS / SLEEP_S  # each user waits SLEEP_S per request and never thinks


def sleeping_tool(seconds: float, in_flight: dict[str, int] | None = None) -> Tool:
    state = in_flight if in_flight is not None else {"now": 0, "most": 0}

    async def execute(input: dict[str, Any]) -> dict[str, Any]:
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        try:
            await asyncio.sleep(seconds)
        finally:
            state["now"] -= 1
        return {"slept": seconds}

    return create_tool(
        metadata={"name": "sleeper", "version": "1.0.0", "description": "sleeps"},
        schema={"input": {"tag": string_field()}},
        execute=execute,
    )


def flaky_tool() -> Tool:
    calls = itertools.count()

    async def execute(input: dict[str, Any]) -> dict[str, Any]:
        if next(calls) % 4 == 3:
            raise ToolError("every fourth call fails", code="UPSTREAM_FAILED")
        return {}

    return create_tool(
        metadata={"name": "flaky", "version": "1.0.0", "description": "fails 1 in 4"},
        execute=execute,
    )


@pytest.fixture(scope="module")
def in_flight() -> dict[str, int]:
    return {"now": 0, "most": 0}


@pytest.fixture(scope="module")
def honest(in_flight: dict[str, int]) -> LoadTestReport:
    """3 s of 10 users against a 20 ms tool, no think time: 500 requests/s in theory."""
    tool = sleeping_tool(SLEEP_S, in_flight)
    return asyncio.run(
        load_test(tool, {"tag": "x"}, concurrent_users=USERS, duration=3, think_time=(0, 0))
    )


SLEEPER = """
import asyncio
from ai_spine_tools import create_tool, number_field

async def execute(input):
    await asyncio.sleep(input["seconds"])
    return {"slept": input["seconds"]}

tool = create_tool(
    metadata={"name": "sleeper", "version": "1.0.0", "description": "sleeps"},
    schema={"input": {"seconds": number_field(min=0, max=1, default=0)}},
    execute=execute,
)
"""


@pytest.fixture(scope="module")
def sleeper_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    path = tmp_path_factory.mktemp("tools") / "sleeper.py"
    path.write_text(SLEEPER)
    with running_server(path) as server:
        yield server


# -- honesty ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_throughput_is_within_20_percent_of_theory(honest: LoadTestReport) -> None:
    assert honest.requests_per_second == pytest.approx(THEORETICAL_RPS, rel=0.2)
    assert honest.stopped_by == "duration"
    assert honest.errors == 0


@pytest.mark.slow
def test_latency_is_the_tools_sleep(honest: LoadTestReport) -> None:
    assert SLEEP_S * 1000 <= honest.latency.min_ms <= honest.latency.p50_ms
    assert honest.latency.p50_ms == pytest.approx(SLEEP_S * 1000, rel=0.2)
    latency = honest.latency
    assert latency.p50_ms <= latency.p90_ms <= latency.p95_ms <= latency.p99_ms <= latency.max_ms


@pytest.mark.slow
def test_every_user_is_concurrently_in_flight(
    honest: LoadTestReport, in_flight: dict[str, int]
) -> None:
    assert in_flight["most"] == USERS


@pytest.mark.slow
def test_timeline_adds_up_to_the_totals(honest: LoadTestReport) -> None:
    assert [point.second for point in honest.timeline] == [0, 1, 2]
    assert sum(point.requests for point in honest.timeline) == honest.total_requests
    assert sum(point.errors for point in honest.timeline) == honest.errors
    for point in honest.timeline:
        assert point.requests_per_second == pytest.approx(THEORETICAL_RPS, rel=0.2)


@pytest.mark.slow
def test_tool_metrics_come_with_the_report(honest: LoadTestReport) -> None:
    assert honest.tool_metrics is not None
    assert honest.tool_metrics["requests"]["total"] == honest.total_requests


async def test_error_rate_is_counted_by_code() -> None:
    report = await load_test(
        flaky_tool(), {}, concurrent_users=10, duration=30, think_time=0, requests=400
    )
    assert report.total_requests == 400
    assert report.error_rate == pytest.approx(0.25, abs=0.05)
    assert report.errors_by_code == {"UPSTREAM_FAILED": report.errors}
    assert report.status_codes == {"200": report.successes, "500": report.errors}


# -- bounds ----------------------------------------------------------------------------------


async def test_requests_bound_stops_the_run() -> None:
    report = await load_test(
        sleeping_tool(0.001), {}, concurrent_users=4, duration=30, think_time=0, requests=37
    )
    assert report.total_requests == 37
    assert report.stopped_by == "requests"
    assert report.elapsed_s < 5


async def test_duration_bound_stops_the_run() -> None:
    report = await load_test(sleeping_tool(0.005), {}, concurrent_users=5, duration=0.5)
    assert report.stopped_by == "duration"
    assert report.total_requests > 0
    assert 0.5 <= report.elapsed_s < 1.5


async def test_requests_still_running_after_the_grace_period_are_cancelled() -> None:
    report = await load_test(
        sleeping_tool(30), {}, concurrent_users=3, duration=0.2, grace=0.1, think_time=0
    )
    assert report.total_requests == 0
    assert report.interrupted == 3
    assert report.elapsed_s < 2


async def test_think_time_paces_each_user() -> None:
    report = await load_test(
        sleeping_tool(0), {}, concurrent_users=5, duration=1, think_time=(0.1, 0.1)
    )
    assert report.total_requests == pytest.approx(50, abs=10)  # 5 users x 10 turns


async def test_input_may_be_made_per_request() -> None:
    numbers = itertools.count()
    seen: list[int] = []

    async def execute(input: dict[str, Any]) -> dict[str, Any]:
        seen.append(input["n"])
        return {}

    tool = create_tool(
        metadata={"name": "counter", "version": "1.0.0", "description": "counts"},
        schema={"input": {"n": integer_field(required=True)}},
        execute=execute,
    )
    report = await load_test(
        tool, lambda: {"n": next(numbers)}, concurrent_users=2, think_time=0, requests=20
    )
    assert report.errors == 0
    assert sorted(seen) == list(range(20))


async def test_a_failing_input_function_ends_the_run_at_once() -> None:
    def broken() -> dict[str, Any]:
        raise KeyError("no more inputs")

    with pytest.raises(KeyError, match="no more inputs"):
        await load_test(weather.tool, broken, concurrent_users=3, duration=30)


async def test_default_input_is_generated_from_the_schema() -> None:
    report = await load_test(weather.tool, concurrent_users=2, think_time=0, requests=10)
    assert report.successes == 10


async def test_progress_is_reported_while_running() -> None:
    seen: list[LoadProgress] = []
    await load_test(
        sleeping_tool(0.002),
        {},
        concurrent_users=2,
        duration=0.6,
        think_time=0,
        on_progress=seen.append,
        progress_interval=0.1,
    )
    assert len(seen) >= 4
    assert [p.requests for p in seen] == sorted(p.requests for p in seen)
    assert seen[-1].elapsed_s >= 0.6
    assert seen[-1].requests_per_second > 0


async def test_a_tool_started_elsewhere_is_not_cleaned_up() -> None:
    cleaned: list[bool] = []

    async def execute() -> dict[str, Any]:
        return {}

    tool = create_tool(
        metadata={"name": "owned", "version": "1.0.0", "description": "x"},
        execute=execute,
        cleanup=lambda: cleaned.append(True),
    )
    async with tool:
        await load_test(tool, {}, concurrent_users=1, think_time=0, requests=3)
        assert cleaned == []
    assert cleaned == [True]


# -- only this machine ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:3000",
        "http://127.9.8.7:80/api/execute",
        "http://localhost:3000/",
        "https://[::1]:8443",
    ],
)
def test_loopback_urls_are_accepted(url: str) -> None:
    assert ensure_loopback(url) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.5:3000", "refuses '10.0.0.5'"),
        ("http://192.168.1.20", "refuses '192.168.1.20'"),
        ("http://example.com", "refuses 'example.com'"),
        ("http://localhost.example.com", "refuses 'localhost.example.com'"),
        ("http://[::ffff:8.8.8.8]:80", "refuses '::ffff:8.8.8.8'"),
        ("ftp://127.0.0.1", "needs an http:// or https:// URL"),
        ("127.0.0.1:3000", "needs an http:// or https:// URL"),
    ],
)
def test_other_hosts_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ensure_loopback(url)


async def test_load_test_refuses_before_sending_anything() -> None:
    with pytest.raises(ValueError, match="only targets this machine"):
        await load_test("http://203.0.113.9:3000", {"city": "Madrid"}, requests=1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrent_users": 0}, "concurrent_users must be from 1"),
        ({"duration": 0}, "duration must be a positive number"),
        ({"duration": math.inf}, "duration must be a positive number"),
        ({"think_time": (1, 0)}, "think_time must be"),
        ({"think_time": -1}, "think_time must be"),
        ({"requests": 0}, "requests must be a positive integer"),
        ({"grace": -1}, "grace must be a non-negative"),
    ],
)
async def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await load_test(weather.tool, {"city": "Oslo"}, **options)


async def test_a_url_target_needs_an_input() -> None:
    with pytest.raises(ValueError, match="needs input="):
        await load_test("http://127.0.0.1:3000", requests=1)


# -- over HTTP --------------------------------------------------------------------------------


@pytest.mark.slow
async def test_throughput_over_http_is_within_20_percent_of_theory(
    sleeper_server: ServerProcess,
) -> None:
    report = await load_test(
        sleeper_server.url,
        {"seconds": SLEEP_S},
        concurrent_users=USERS,
        duration=2,
        think_time=0,
    )
    assert report.mode == "http"
    assert report.errors == 0
    assert report.requests_per_second == pytest.approx(THEORETICAL_RPS, rel=0.2)
    assert report.tool_metrics is not None  # read from the server's GET /metrics
    assert report.tool_metrics["requests"]["total"] >= report.total_requests


@pytest.mark.slow
async def test_requests_bound_over_http(sleeper_server: ServerProcess) -> None:
    report = await load_test(
        sleeper_server.url + "/api/execute", {}, concurrent_users=5, think_time=0, requests=200
    )
    assert report.total_requests == 200
    assert report.successes == 200
    assert report.stopped_by == "requests"


async def test_connection_failures_are_counted_as_errors() -> None:
    report = await load_test(
        f"http://127.0.0.1:{free_port()}", {}, concurrent_users=2, think_time=0, requests=4
    )
    assert report.errors_by_code == {"CONNECTION_ERROR": 4}
    assert report.status_codes == {"none": 4}
    assert report.tool_metrics is None


# -- the report --------------------------------------------------------------------------------


@pytest.mark.slow
def test_report_round_trips_through_json(honest: LoadTestReport) -> None:
    data = json.loads(honest.to_json())
    assert data["total_requests"] == honest.total_requests
    assert data["latency"]["p99_ms"] == honest.latency.p99_ms
    assert data["think_time_s"] == [0.0, 0.0]
    assert len(data["timeline"]) == len(honest.timeline)
    assert set(data["timeline"][0]) == {
        "second",
        "requests",
        "errors",
        "requests_per_second",
        "p50_ms",
        "p99_ms",
    }


@pytest.mark.slow
def test_summary_is_a_readable_table(honest: LoadTestReport) -> None:
    text = honest.summary()
    assert text.startswith("Load test of sleeper 1.0.0 (in-process)")
    assert f"{honest.total_requests:,}" in text
    assert "requests/s" in text
    for heading in ("p50", "p90", "p95", "p99", "max"):
        assert heading in text
    assert "second  requests" in text


async def test_summary_lists_errors_by_code() -> None:
    report = await load_test(flaky_tool(), {}, concurrent_users=2, think_time=0, requests=8)
    assert "UPSTREAM_FAILED" in report.summary()
    assert "25.00%" in report.summary()


@pytest.mark.slow
def test_plot_writes_a_png_matplotlib_can_read(honest: LoadTestReport, tmp_path: Path) -> None:
    from matplotlib.image import imread

    path = honest.plot(tmp_path / "load.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = imread(path).shape
    assert (width, height) == (1000, 650)


def test_plot_without_matplotlib_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    report = asyncio.run(load_test(weather.tool, concurrent_users=1, think_time=0, requests=1))
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'ai-spine-tools\[testing\]'"):
        report.plot(tmp_path / "chart.png")
