"""``ai-spine doctor``: every section of the report is filled for the weather example, and a tool
that blocks the event loop is named first in what to fix."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ai_spine_tools.cli import main
from ai_spine_tools.cli._doctor import Finding, _Samples, findings, render
from ai_spine_tools.testing._report import LatencySummary, LoadTestReport

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = (
    "Throughput and latency",
    "Memory",
    "Event loop",
    "Pools and queue",
    "CPU",
    "Installation",
    "What to fix first",
)


def sections_of(output: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        heading = re.match(r"^\d+\. (.+)$", line)
        if heading:
            current = heading.group(1)
            found[current] = []
        elif current is not None and line.strip():
            found[current].append(line.strip())
    return found


def test_doctor_on_the_weather_example_fills_every_section() -> None:
    result = CliRunner().invoke(
        main, ["doctor", str(ROOT / "examples" / "weather.py"), "--duration", "2", "--users", "8"]
    )
    assert result.exit_code == 0, result.output
    found = sections_of(result.output)
    assert tuple(found) == SECTIONS
    for name, lines in found.items():
        assert lines, f"section {name!r} is empty"
    assert re.search(r"✓ throughput [\d,]+ requests/s", result.output)
    assert re.search(r"✓ latency p99 [\d.]+ ms", result.output)
    assert "✓ error rate 0.00%" in result.output
    assert re.search(r"✓ baseline RSS [\d.]+ MB", result.output)
    assert "RSS trend" in result.output
    assert "event-loop lag max" in result.output
    assert "executions in flight peaked" in result.output
    assert "CPU peaked at" in result.output
    assert "· field patterns: RE2 (google-re2 " in result.output
    assert "nothing: every target is met" in result.output


def test_doctor_names_a_tool_that_blocks_the_loop_first() -> None:
    target = ROOT / "tests" / "tools" / "blocking.py"
    result = CliRunner().invoke(main, ["doctor", str(target), "--duration", "2", "--users", "4"])
    assert result.exit_code == 1, result.output
    todo = sections_of(result.output)["What to fix first"]
    assert todo[0].startswith("1. the event loop was blocked past 100 ms by: blocking")
    assert "thread pool" in todo[1]


def test_render_orders_problems_before_warnings() -> None:
    text = render(
        "title",
        {
            "A": [Finding(level="warning", message="slow-ish", fix="f1", priority=1)],
            "B": [Finding(level="problem", message="broken", fix="f2", priority=99)],
        },
    )
    assert text.index("1. broken") < text.index("2. slow-ish")


def report_with(tool_metrics: dict[str, Any]) -> LoadTestReport:
    return LoadTestReport(
        target="t",
        mode="in-process",
        concurrent_users=4,
        duration_s=1.0,
        requests_limit=None,
        think_time_s=(0.0, 0.0),
        started_at="",
        elapsed_s=1.0,
        stopped_by="duration",
        total_requests=500,
        successes=500,
        errors=0,
        interrupted=0,
        error_rate=0.0,
        requests_per_second=500.0,
        latency=LatencySummary(p50_ms=1.0, p99_ms=2.0),
        tool_metrics=tool_metrics,
    )


def test_the_cpu_figure_is_a_share_of_one_core_and_of_the_cores() -> None:
    point = {"resources": {"cpu_usage_percent": 150.0, "cpu_cores": 2}}
    samples = _Samples()
    samples.add(point)
    sections = findings(report_with(point), {}, samples, {}, in_process=False)
    text = sections["CPU"][0].message
    assert text.startswith("CPU peaked at 150% of one core, 75% of the 2 cores")
    assert "context.to_process" in text


def test_a_busy_process_pool_is_reported_with_the_fix() -> None:
    pool = {"max_size": 2, "size": 2, "busy": 2, "queued": 3, "restarts": 1, "crashes": 0}
    point = {"resources": {"cpu_usage_percent": 10.0, "cpu_cores": 2}, "pools": {"processes": pool}}
    samples = _Samples()
    samples.add(point)
    sections = findings(report_with(point), {}, samples, {}, in_process=False)
    finding = next(f for f in sections["Pools and queue"] if "process pool" in f.message)
    assert finding.level == "problem"
    assert "2 of 2 workers busy at the peak, up to 3 calls waiting" in finding.message
    assert "1 workers replaced (0 crashed" in finding.message
    assert "AI_SPINE_PROCESS_WORKERS" in (finding.fix or "")
    assert "pool's 2 workers are not counted" in sections["CPU"][0].message
