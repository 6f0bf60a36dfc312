"""``GET /metrics`` scraped from a running server, in Prometheus text and OpenMetrics form,
read back with ``prometheus_client``'s parsers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from serverproc import TOOLS, ServerProcess, running_server

pytestmark = pytest.mark.slow

KEY = "scrape-key-0123456789abcdef"


@pytest.fixture(scope="module")
def scraped() -> Iterator[tuple[ServerProcess, str, str]]:
    with running_server(TOOLS / "observed.py", env={"AI_SPINE_API_KEYS": KEY}) as server:
        headers = {"x-api-key": KEY}
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
            for index in range(20):
                body = {"sleep_ms": 1, "rows": 2, "use_http": index == 0}
                assert client.post("/api/execute", json={"input_data": body}).status_code == 200
            client.post("/api/execute", json={"input_data": {"fail_code": "UPSTREAM_DOWN"}})
            client.post("/api/execute", json={"input_data": {"rows": -1}})
            httpx.post(f"{server.url}/api/execute", json={})  # no key: 401
            text = client.get("/metrics", headers={"accept": "text/plain; version=0.0.4"})
            openmetrics = client.get(
                "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
            )
            assert httpx.get(f"{server.url}/metrics?format=prometheus").status_code == 401
        assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
        yield server, text.text, openmetrics.text


def value(families: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    for item in families[family].samples:
        if item.name == sample and all(item.labels.get(k) == v for k, v in labels.items()):
            return float(item.value)
    raise AssertionError(f"{sample}{labels} not in {families[family].samples}")


@pytest.mark.parametrize("form", ["text", "openmetrics"])
def test_a_scrape_parses_and_carries_every_family(
    scraped: tuple[ServerProcess, str, str], form: str
) -> None:
    _, text, openmetrics = scraped
    parse = text_string_to_metric_families if form == "text" else openmetrics_families
    found = {family.name: family for family in parse(text if form == "text" else openmetrics)}
    tool = {"tool": "observed"}
    requests = "ai_spine_requests_total"
    assert value(found, "ai_spine_requests", requests, status="success", code="OK") == 20
    assert value(found, "ai_spine_requests", requests, code="UPSTREAM_DOWN") == 1
    assert value(found, "ai_spine_requests", requests, code="VALIDATION_ERROR") == 1
    duration = "ai_spine_request_duration_seconds"
    assert found[duration].type == "histogram"
    assert value(found, duration, duration + "_count", **tool) == 22
    assert value(found, duration, duration + "_bucket", le="+Inf") == 22
    assert value(found, duration, duration + "_bucket", le="0.005") >= 1
    assert value(found, "ai_spine_tool_info", "ai_spine_tool_info", version="3.0.0") == 1
    assert value(found, "ai_spine_cache_hits", "ai_spine_cache_hits_total", level="l1") == 0
    breaker = "ai_spine_circuit_breaker_calls"
    assert value(found, breaker, breaker + "_total", breaker="upstream", outcome="success") == 21
    state = "ai_spine_circuit_breaker_state"
    assert value(found, state, state, breaker="upstream", state="closed") == 1
    assert value(found, state, state, breaker="upstream", state="open") == 0
    assert value(found, "ai_spine_pool_max_size", "ai_spine_pool_max_size", pool="http") == 100
    assert value(found, "process_resident_memory_bytes", "process_resident_memory_bytes") > 1e6
    assert value(found, "process_cpu_seconds", "process_cpu_seconds_total") > 0
    assert value(found, "ai_spine_auth_rejected", "ai_spine_auth_rejected_total") == 1
    timer = "ai_spine_custom_database_query_seconds"
    assert value(found, timer, timer + "_count", **tool) == 21
    assert value(found, timer, timer + "_sum", **tool) >= 0.020
    rows = "ai_spine_custom_rows_read"
    assert value(found, rows, rows + "_total") == 41  # 20 x 2, and 1 by the failing one
    gauge = "ai_spine_custom_database_connections"
    assert value(found, gauge, gauge) == 3


def test_a_scrape_shows_key_ids_never_keys(scraped: tuple[ServerProcess, str, str]) -> None:
    _, text, openmetrics = scraped
    assert KEY not in text
    assert KEY not in openmetrics
    assert 'key_id="key_' in text
