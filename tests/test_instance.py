"""Several workers, one instance: each worker's state in a shared directory, added up when
``/metrics`` or ``/health`` answers; and a real two-worker server reporting its whole traffic."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from prometheus_client.openmetrics import parser

from _rawhttp import exchange, request_bytes
from ai_spine_tools.observability._instance import (
    METRICS_DIR_VARIABLE,
    InstanceMetrics,
    WorkerState,
    merge_figures,
)
from ai_spine_tools.observability._metrics import ToolMetrics
from ai_spine_tools.server._server import instance_directory
from serverproc import EXAMPLES, TOOLS, running_server

json_bytes = msgspec.json.encode


@pytest.mark.parametrize(
    ("a", "b", "merged"),
    [
        (
            {"memory_usage_bytes": 10, "threads": 2},
            {"memory_usage_bytes": 5, "threads": 1},
            {"memory_usage_bytes": 15, "threads": 3},
        ),
        ({"cpu_usage_percent": 1.5}, {"cpu_usage_percent": 2.25}, {"cpu_usage_percent": 3.75}),
        (
            {"in_flight": 3, "limit": 1000},
            {"in_flight": 4, "limit": 1000},
            {"in_flight": 7, "limit": 1000},
        ),
        (
            {"hits": 3, "misses": 1, "hit_rate": 0.75},
            {"hits": 0, "misses": 4, "hit_rate": 0.0},
            {"hits": 3, "misses": 5, "hit_rate": 0.375},
        ),
        (
            {"state": "closed", "calls": 2},
            {"state": "open", "calls": 1},
            {"state": "open", "calls": 3},
        ),
        ({"state": "half_open"}, {"state": "closed"}, {"state": "half_open"}),
        ({"degraded": False}, {"degraded": True}, {"degraded": True}),
        (
            {"backend": "memory", "l2": None},
            {"backend": "memory", "l2": None},
            {"backend": "memory", "l2": None},
        ),
        ({"pools": {"http": {"open": 2}}}, {"pools": {}}, {"pools": {"http": {"open": 2}}}),
        (
            {"requests_by_key": {"key_a": 2}},
            {"requests_by_key": {"key_a": 1, "key_b": 5}},
            {"requests_by_key": {"key_a": 3, "key_b": 5}},
        ),
        (
            {"acquire_wait_ms": {"avg": 1.0, "max": 9.0}},
            {"acquire_wait_ms": {"avg": 2.0, "max": 3.0}},
            {"acquire_wait_ms": {"avg": 2.0, "max": 9.0}},
        ),
        ({}, {"concurrency": None}, {"concurrency": None}),
    ],
)
def test_figures_of_two_workers_add_up(a: Any, b: Any, merged: Any) -> None:
    assert merge_figures(a, b) == merged


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_worker_adds_up_every_file_in_the_directory(tmp_path: Path) -> None:
    own = ToolMetrics()
    for _ in range(3):
        own.record(1.0)
    own.custom.gauge("connections", 2)
    gone = ToolMetrics()
    gone.record(50.0, "TIMEOUT_ERROR")
    gone.custom.gauge("connections", 40)
    gone.custom.increment("calls", 7)
    state = WorkerState(
        pid=dead_pid(),
        written_at=time.time(),
        metrics=gone.state(),
        figures={"resources": {"memory_usage_bytes": 10**9}},
    )
    (tmp_path / f"worker-{state.pid}").write_bytes(msgspec.msgpack.encode(state))
    (tmp_path / "worker-garbage").write_bytes(b"not msgpack")
    (tmp_path / "unrelated.txt").write_text("ignored")
    instance = InstanceMetrics(tmp_path, own, lambda: {"resources": {"memory_usage_bytes": 5}})
    merged, figures, workers = instance.collect()
    assert workers == 1  # the other worker is gone
    assert merged.total == 4  # but the requests it served still count
    assert merged.by_code == {"TIMEOUT_ERROR": 1}
    assert merged.custom.counters == {"calls": 7}
    assert merged.custom.gauges == {"connections": 2}  # a gone worker's gauges no longer hold
    assert figures == {"resources": {"memory_usage_bytes": 5}}
    assert (tmp_path / f"worker-{os.getpid()}").exists()


def test_from_env_needs_the_directory_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(METRICS_DIR_VARIABLE, raising=False)
    assert InstanceMetrics.from_env(ToolMetrics(), dict, part="weather") is None
    monkeypatch.setenv(METRICS_DIR_VARIABLE, str(tmp_path))
    instance = InstanceMetrics.from_env(ToolMetrics(), dict, part="weather")
    assert instance is not None
    assert instance.directory == tmp_path / "weather"  # a folder per tool: a suite's share a pid
    assert instance.directory.is_dir()


def test_the_instance_directory_is_named_to_workers_then_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(METRICS_DIR_VARIABLE, raising=False)
    with instance_directory() as directory:
        assert os.environ[METRICS_DIR_VARIABLE] == directory
        Path(directory, "worker-1").write_bytes(b"x")
    assert not Path(directory).exists()
    assert METRICS_DIR_VARIABLE not in os.environ


async def test_a_stopped_writer_leaves_its_last_state(tmp_path: Path) -> None:
    metrics = ToolMetrics()
    instance = InstanceMetrics(tmp_path, metrics, dict)
    instance.start()
    metrics.record(2.0)
    await instance.stop()
    written = msgspec.msgpack.decode(
        (tmp_path / f"worker-{os.getpid()}").read_bytes(), type=WorkerState
    )
    assert written.metrics.latency.count == 1


SCRAPER = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"


@pytest.mark.slow
def test_two_workers_report_every_request_the_instance_served() -> None:
    with running_server(TOOLS / "slow.py", "--workers", "2") as server:
        pids: set[int] = set()
        sent = errors = 0
        deadline = time.monotonic() + 30
        while sent < 120 or len(pids) < 2:  # at least 120, until both workers have served
            assert time.monotonic() < deadline, "both workers should have served requests"
            # a fresh connection each time, so the kernel spreads them over both workers (on a
            # plain socket: a new httpx.Client a request cost more than the server's work)
            body = {"input_data": {"seconds": 0} if sent % 10 else {"seconds": "x"}}
            request = request_bytes("POST", "/api/execute", json_bytes(body))
            answer = exchange(server.port, [request])
            assert answer.status == (200 if sent % 10 else 400)
            reply = answer.json()
            if reply["status"] == "success":
                pids.add(reply["output_data"]["pid"])
            else:
                errors += 1
            sent += 1
        time.sleep(1.2)  # every worker writes its state twice a second
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).json()
        scraped = httpx.get(f"{server.url}/metrics", headers={"accept": SCRAPER}, timeout=10)
        health = httpx.get(f"{server.url}/health", timeout=10).json()
    assert metrics["requests"]["total"] == sent
    assert metrics["errors"]["by_code"] == {"VALIDATION_ERROR": errors}
    assert metrics["workers"] == 2
    assert health["requests"]["total"] == sent
    assert health["workers"] == 2
    assert scraped.headers["content-type"].startswith("application/openmetrics-text")
    families: Iterable[Any] = parser.text_string_to_metric_families(scraped.text)  # type: ignore[no-untyped-call]
    found = {f.name: f for f in families}
    total = sum(s.value for s in found["ai_spine_requests"].samples if s.name.endswith("_total"))
    assert total == sent
    count = next(
        s.value
        for s in found["ai_spine_request_duration_seconds"].samples
        if s.name.endswith("_count")
    )
    assert count == sent
    assert next(s.value for s in found["ai_spine_workers"].samples) == 2
    memory = next(s.value for s in found["process_resident_memory_bytes"].samples)
    assert memory > metrics["resources"]["memory_usage_bytes"] / 2  # the two, summed


@pytest.mark.slow
def test_one_worker_reports_itself_with_no_shared_directory() -> None:
    env = {METRICS_DIR_VARIABLE: ""}
    with running_server(EXAMPLES / "weather.py", env=env) as server:
        assert httpx.get(f"{server.url}/metrics").json()["workers"] == 1
        assert "workers" not in httpx.get(f"{server.url}/health").json()
