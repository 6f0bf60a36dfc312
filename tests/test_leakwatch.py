"""Leak watch: the verdict on RSS against requests, ``/health`` degraded by a steady leak, and
``ai-spine load --leak-check`` flagging a tool that keeps memory per call but not a clean one."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import weather
from ai_spine_tools import Tool
from ai_spine_tools.observability._leakwatch import LeakWatch, leak_verdict
from ai_spine_tools.testing import ToolTestClient
from tools import leaky

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


def series(per_step_mb: float, steps: int = 8, requests: int = 500) -> list[tuple[int, int]]:
    return [(i * requests, int(100 * MB + i * per_step_mb * MB)) for i in range(steps)]


@pytest.mark.parametrize(
    "points",
    [
        series(5.0),  # 5 MB per 500 requests: 10 MB per 1000
        series(0.6, steps=24, requests=100),  # 6 MB per 1000 requests, slowly
    ],
)
def test_steady_growth_is_a_leak(points: list[tuple[int, int]]) -> None:
    verdict = leak_verdict(points)
    assert verdict.leaking
    assert "grew steadily" in verdict.reason
    assert "per 1000 requests" in verdict.reason


@pytest.mark.parametrize(
    ("points", "why"),
    [
        (series(0.0), "flat"),
        (series(5.0, steps=3), "not enough"),  # too few samples to judge
        ([(0, 100 * MB), (500, 140 * MB), *[(i * 500, 140 * MB) for i in range(2, 8)]], "step"),
        (series(0.1, requests=5000), "flat"),  # grows, but by 0.02 MB per 1000 requests
        ([(500, (100 + i) * MB) for i in range(8)], "not enough"),  # no requests flowing
    ],
)
def test_flat_noisy_or_one_off_growth_is_not(points: list[tuple[int, int]], why: str) -> None:
    verdict = leak_verdict(points)
    assert not verdict.leaking
    assert why in verdict.reason


def test_the_watch_samples_into_a_ring() -> None:
    counter = iter(range(0, 10_000, 100))
    rss = iter(range(100 * MB, 1000 * MB, 4 * MB))
    watch = LeakWatch(lambda: next(counter), size=6, rss=lambda: next(rss))
    for _ in range(10):
        watch.sample()
    assert len(watch.samples) == 6
    check = watch.check()
    assert check["status"] == "degraded"
    assert "grew steadily" in check["reason"]


def drive(tool: Tool, batches: int = 8, per_batch: int = 40) -> dict[str, object]:
    with ToolTestClient(tool, leak_sample_interval_s=0.03) as client:
        for _ in range(batches):
            for _ in range(per_batch):
                assert client.execute({"name": "x"}).ok
            time.sleep(0.06)
        health: dict[str, object] = client.get("/health").json
    return health


def test_a_leaking_tool_degrades_health() -> None:
    try:
        health = drive(leaky.tool)
    finally:
        leaky.KEPT.clear()
    assert health["status"] == "degraded"
    memory = health["checks"]["memory"]  # type: ignore[index]
    assert memory["status"] == "degraded"
    assert "grew steadily" in memory["reason"]


def test_a_clean_tool_stays_healthy() -> None:
    with ToolTestClient(weather.tool, leak_sample_interval_s=0.03) as client:
        for _ in range(8):
            for _ in range(40):
                assert client.execute({"city": "Madrid"}).ok
            time.sleep(0.06)
        health = client.get("/health").json
    assert health["status"] == "healthy"
    assert health["checks"]["memory"]["status"] == "ok"


def leak_check_cli(target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ai_spine_tools",
            "load",
            str(target),
            "--leak-check",
            "--rounds",
            "4",
            "--requests",
            "150",
            "--users",
            "5",
            "--think-time",
            "0",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_leak_check_flags_a_tool_that_keeps_memory_per_call() -> None:
    result = leak_check_cli(ROOT / "tests" / "tools" / "leaky.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "verdict: LEAK SUSPECTED" in result.stdout
    assert result.stdout.count("\n") >= 7  # a row per round
    assert "(warm-up)" in result.stdout


def test_leak_check_passes_a_clean_tool() -> None:
    result = leak_check_cli(ROOT / "examples" / "weather.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict: no leak" in result.stdout
