"""``ai-spine doctor``: every section of the report is filled for the weather example, and a tool
that blocks the event loop is named first in what to fix."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from ai_spine_tools._doctor import Finding, render
from ai_spine_tools.cli import main

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = (
    "Throughput and latency",
    "Memory",
    "Event loop",
    "Pools and queue",
    "CPU",
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
            "A": [Finding(level="warning", text="slow-ish", fix="f1", priority=1)],
            "B": [Finding(level="problem", text="broken", fix="f2", priority=99)],
        },
    )
    assert text.index("1. broken") < text.index("2. slow-ish")
