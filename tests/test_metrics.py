"""Built-in metrics: counts, percentiles, rate, errors by code, custom metrics, JSON and
Prometheus forms of ``GET /metrics``, and the switch that turns recording off."""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

import weather
from ai_spine_tools import Tool
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.observability._metrics import CPUMeter, ToolMetrics, usable_cores
from ai_spine_tools.testing import AsyncToolTestClient
from tools import observed

LATE_MS = 20.0  # how late a loaded machine may wake a sleeper, at most


@pytest.fixture
def tool() -> Tool:
    return observed.make_tool()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_known_sequence_gives_its_counts_and_percentiles() -> None:
    clock = FakeClock()
    metrics = ToolMetrics(clock=clock)
    for ms in range(1, 101):  # 1 ms ... 100 ms, one request per 100 ms of clock
        metrics.record(float(ms), None if ms % 10 else "TIMEOUT_ERROR")
        clock.now += 0.1
    metrics.record(3.0, "VALIDATION_ERROR")
    requests = metrics.snapshot({}).requests
    assert requests["total"] == 101
    assert 50 <= requests["p50_ms"] <= 50 * 1.1  # within one histogram bucket
    assert 95 <= requests["p95_ms"] <= 95 * 1.1
    assert 99 <= requests["p99_ms"] <= 100
    assert requests["max_ms"] == 100.0
    assert requests["avg_response_time_ms"] == round((5050 + 3) / 101, 3)
    errors = metrics.snapshot({}).errors
    assert errors["by_code"] == {"TIMEOUT_ERROR": 10, "VALIDATION_ERROR": 1}
    assert errors["total"] == 11
    assert errors["rate"] == round(11 / 101, 6)


def test_rate_is_over_the_last_minute() -> None:
    clock = FakeClock()
    metrics = ToolMetrics(clock=clock)
    for _ in range(120):  # 2 requests a second for two minutes
        metrics.record(1.0)
        metrics.record(1.0)
        clock.now += 1.0
    assert metrics.rate_per_second() == pytest.approx(2.0, rel=0.05)
    clock.now += 30.0  # half a minute of silence
    assert metrics.rate_per_second() == pytest.approx(1.0, rel=0.05)
    clock.now += 31.0
    assert metrics.rate_per_second() == 0.0
    assert metrics.total == 240


def test_a_young_process_rates_over_its_age() -> None:
    clock = FakeClock()
    metrics = ToolMetrics(clock=clock)
    for _ in range(10):
        metrics.record(1.0)
    clock.now += 5.0
    assert metrics.rate_per_second() == pytest.approx(2.0)


def test_states_merge_into_one_instance() -> None:
    clock = FakeClock()
    one, two = ToolMetrics(clock=clock), ToolMetrics(clock=clock)
    for _ in range(30):
        one.record(2.0)
        two.record(20.0, "EXECUTION_ERROR")
        clock.now += 1.0
    merged = ToolMetrics.merged([(one.state(), True), (two.state(), False)], clock=clock)
    snapshot = merged.snapshot({})
    assert snapshot.requests["total"] == 60
    assert snapshot.errors["by_code"] == {"EXECUTION_ERROR": 30}
    assert snapshot.requests["rate_per_second"] == pytest.approx(2.0, rel=0.05)
    assert merged.latency.min == 2.0
    assert merged.latency.max == 20.0


async def test_requests_with_known_sleeps_give_known_percentiles(tool: Tool) -> None:
    async with AsyncToolTestClient(tool, ServerSettings()) as client:
        await asyncio.gather(*(client.execute({"sleep_ms": ms, "rows": 2}) for ms in range(1, 101)))
        body = (await client.get("/metrics")).json
    requests, timer = body["requests"], body["custom"]["database_query"]
    assert requests["total"] == timer["count"] == 100
    for key, slept in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
        # The k-th shortest sleep is k ms, and no sleeper wakes early; a busy machine wakes
        # them late, which the tool's own timer (around the sleep) sees as the server does.
        assert slept <= timer[key] <= slept * 1.1 + LATE_MS, timer
        # Each request took its sleep plus the server's own fraction of a millisecond: within
        # one histogram bucket (10%) of the timer's figure.
        assert timer[key] <= requests[key] <= timer[key] * 1.1 + 1.0, (requests, timer)
    assert timer["min_ms"] >= 1.0
    assert timer["max_ms"] >= 100.0
    assert body["custom"]["rows_read"] == 200
    assert body["custom"]["database_connections"] == 3
    assert body["custom"]["upstream_ms"]["sum_ms"] == 1250.0
    assert body["breakers"]["upstream"]["calls"] == 100


async def test_errors_are_counted_by_code(tool: Tool) -> None:
    async with AsyncToolTestClient(tool, ServerSettings()) as client:
        await client.execute({"fail_code": "UPSTREAM_DOWN"})
        await client.execute({"fail_code": "UPSTREAM_DOWN"})
        await client.execute({"sleep_ms": "slow"})
        await client.post("/api/execute", content=b"{not json")
        await client.execute({})
        body = (await client.get("/metrics")).json
    assert body["errors"]["by_code"] == {
        "INVALID_JSON": 1,
        "UPSTREAM_DOWN": 2,
        "VALIDATION_ERROR": 1,
    }
    assert body["errors"]["total"] == 4
    assert body["errors"]["rate"] == 0.8
    assert body["requests"]["total"] == 5


async def test_get_metrics_has_the_seed_shape() -> None:
    async with AsyncToolTestClient(weather.tool, ServerSettings()) as client:
        await client.execute({"city": "Lima"})
        body = (await client.get("/metrics")).json
    snapshot = weather.tool.get_metrics()
    assert snapshot.to_dict().keys() == body.keys()
    assert set(body["requests"]) >= {
        "total",
        "rate_per_second",
        "avg_response_time_ms",
        "p50_ms",
        "p95_ms",
        "p99_ms",
    }
    assert set(body["errors"]) == {"total", "rate", "by_code"}
    assert body["resources"]["memory_usage_bytes"] > 10_000_000
    assert body["resources"]["cpu_usage_percent"] >= 0.0
    assert 0.0 <= body["cache"]["hit_rate"] <= 1.0
    assert body["custom"] == {}
    assert body["workers"] == 1
    assert snapshot.requests["total"] >= 1


async def test_metrics_can_be_turned_off(tool: Tool) -> None:
    async with AsyncToolTestClient(tool, ServerSettings(metrics=False)) as client:
        for _ in range(3):
            await client.execute({"fail_code": "UPSTREAM_DOWN"})
        body = (await client.get("/metrics")).json
    assert tool.metrics.total == 0
    assert body["requests"]["total"] == 0
    assert body["errors"]["by_code"] == {}
    assert "database_query" in body["custom"]  # what the tool records itself still counts


def test_the_setting_reads_ai_spine_metrics() -> None:
    assert ServerSettings.from_env({}).metrics is True
    assert ServerSettings.from_env({"AI_SPINE_METRICS": "false"}).metrics is False


SCRAPER = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize(
    ("path", "accept", "content_type"),
    [
        ("/metrics", SCRAPER, "application/openmetrics-text; version=1.0.0"),
        ("/metrics", "text/plain;version=0.0.4", "text/plain; version=0.0.4"),
        ("/metrics", "text/plain", "text/plain; version=0.0.4"),
        ("/metrics?format=prometheus", "*/*", "text/plain; version=0.0.4"),
        ("/metrics?format=openmetrics", "", "application/openmetrics-text; version=1.0.0"),
        ("/metrics", "", "application/json"),
        ("/metrics", "*/*", "application/json"),
        ("/metrics", "application/json", "application/json"),
        ("/metrics", "application/json, text/plain, */*", "application/json"),  # axios
        ("/metrics", "text/html,application/xhtml+xml,*/*;q=0.8", "application/json"),  # browser
        ("/metrics?format=json", SCRAPER, "application/json"),
    ],
)
async def test_metrics_format_follows_accept(path: str, accept: str, content_type: str) -> None:
    async with AsyncToolTestClient(weather.tool, ServerSettings()) as client:
        response = await client.get(path, headers={"accept": accept} if accept else {})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(found: dict[str, Any], name: str, **labels: str) -> float:
    family_name = name.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    family_name = family_name.removesuffix("_bucket")
    for item in found[family_name].samples:
        if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
            return float(item.value)
    raise AssertionError(f"no sample {name} {labels}")


async def test_prometheus_text_carries_requests_latency_and_custom_metrics(tool: Tool) -> None:
    async with AsyncToolTestClient(tool, ServerSettings()) as client:
        await asyncio.gather(*(client.execute({"sleep_ms": 2}) for _ in range(5)))
        await client.execute({"fail_code": "UPSTREAM_DOWN"})
        text = (await client.get("/metrics", headers={"accept": "text/plain"})).text
    found = families(text)
    labels = {"tool": "observed"}
    total = 6
    assert sample(found, "ai_spine_requests_total", status="error", code="UPSTREAM_DOWN") == 1
    assert sample(found, "ai_spine_requests_total", status="success", code="OK") == 5
    assert (
        sum(s.value for s in found["ai_spine_requests"].samples if s.name.endswith("_total"))
        == total
    )
    assert sample(found, "ai_spine_request_duration_seconds_count", **labels) == total
    assert sample(found, "ai_spine_request_duration_seconds_bucket", le="+Inf") == total
    assert sample(found, "ai_spine_custom_rows_read_total", **labels) == 6
    assert sample(found, "ai_spine_custom_database_connections", **labels) == 3
    assert sample(found, "ai_spine_custom_database_query_seconds_count", **labels) == 6
    assert 0.010 <= sample(found, "ai_spine_custom_database_query_seconds_sum", **labels) < 1
    assert sample(found, "ai_spine_circuit_breaker_state", breaker="upstream", state="closed") == 1
    assert sample(found, "process_resident_memory_bytes") > 0
    assert found["ai_spine_request_duration_seconds"].type == "histogram"


def test_every_family_has_a_conventional_name(tool: Tool) -> None:
    async def scrape() -> str:
        async with AsyncToolTestClient(tool, ServerSettings(api_keys=("k" * 20,))) as c:
            headers = {"x-api-key": "k" * 20}
            await c.execute({"use_http": True}, headers=headers)
            return (await c.get("/metrics?format=prometheus", headers=headers)).text

    found = families(asyncio.run(scrape()))
    for name, family in found.items():
        assert name.startswith(("ai_spine_", "process_")), name
        assert family.documentation, name
    for required in (
        "ai_spine_requests",
        "ai_spine_request_duration_seconds",
        "ai_spine_cache_hits",
        "ai_spine_circuit_breaker_calls",
        "ai_spine_pool_connections",
        "ai_spine_auth_requests",
        "process_cpu_seconds",
    ):
        assert required in found, required
    assert "k" * 20 not in asyncio.run(scrape())


def test_state_survives_encoding() -> None:
    metrics = ToolMetrics()
    metrics.record(1.0, "TIMEOUT_ERROR")
    metrics.custom.observe("query", 4.0)
    metrics.custom.increment("calls")
    state = metrics.state()
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=type(state))
    assert decoded == state


def test_a_snapshot_before_any_request_is_all_zeros() -> None:
    snapshot = ToolMetrics().snapshot({})
    assert snapshot.requests["total"] == 0
    assert snapshot.requests["p99_ms"] == 0.0
    assert snapshot.errors == {"total": 0, "rate": 0.0, "by_code": {}}
    assert not math.isinf(snapshot.requests["max_ms"])


def burn_cpu(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(1000))


def test_cpu_usage_read_back_to_back_never_exceeds_what_the_cores_can_do() -> None:
    """Readings a moment apart once measured a 10 ms clock tick as 1000% (the doctor's 722% of
    one core on a 2-core machine)."""
    metrics = ToolMetrics()
    stop = threading.Event()
    burner = threading.Thread(target=burn_cpu, args=(stop,))
    burner.start()
    try:
        readings = [metrics.resources() for _ in range(400)]
    finally:
        stop.set()
        burner.join()
    cores = readings[0]["cpu_cores"]
    assert cores == usable_cores()
    assert max(r["cpu_usage_percent"] for r in readings) <= 100.0 * cores


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        # (seconds after the baseline, CPU seconds used by then) -> the last percentage
        ([(0.001, 0.01)], 0.0),  # one tick within a millisecond: too soon to measure
        ([(0.5, 0.25)], 50.0),
        ([(1.0, 2.0)], 200.0),  # both cores busy
        ([(1.0, 9.0)], 200.0),  # never more than the cores can do
        ([(1.0, 0.5), (1.2, 0.6)], 50.0),  # within the window: the last figure again
        ([(1.0, 0.5), (2.0, 0.6)], 10.0),
    ],
)
def test_cpu_meter_measures_over_a_window_and_within_the_cores(
    readings: list[tuple[float, float]], expected: float
) -> None:
    clock = FakeClock()
    meter = CPUMeter(cores=2, window=0.5, clock=clock)
    start = clock.now
    assert meter.percent(0.0) == 0.0  # the baseline
    result = 0.0
    for at, used in readings:
        clock.now = start + at
        result = meter.percent(used)
    assert result == pytest.approx(expected)
