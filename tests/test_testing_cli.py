"""``ai-spine load``: a bounded load test from the command line, with report and chart files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ai_spine_tools.cli import main
from serverproc import EXAMPLES, running_server

WEATHER = str(EXAMPLES / "weather.py")


def test_load_runs_in_process_and_writes_report_and_chart(tmp_path: Path) -> None:
    report, chart = tmp_path / "report.json", tmp_path / "chart.png"
    result = CliRunner().invoke(
        main,
        [
            "load",
            WEATHER,
            "--users",
            "4",
            "--duration",
            "10",
            "--requests",
            "60",
            "--think-time",
            "0",
            "--input",
            '{"city": "Madrid", "units": "fahrenheit"}',
            "--report",
            str(report),
            "--plot",
            str(chart),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Load test of weather-lookup 1.0.0 (in-process)")
    assert "stopped by requests" in result.stdout
    assert "60 requests" in result.stderr  # the progress line's final state
    data = json.loads(report.read_text())
    assert data["total_requests"] == 60
    assert data["concurrent_users"] == 4
    assert data["errors"] == 0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_generates_an_input_when_none_is_given() -> None:
    result = CliRunner().invoke(
        main, ["load", WEATHER, "--users", "2", "--requests", "5", "--think-time", "0", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "(5 ok, 0 errors" in result.stdout
    assert result.stderr == ""


@pytest.mark.slow
def test_load_against_a_running_server() -> None:
    with running_server(WEATHER) as server:
        result = CliRunner().invoke(
            main,
            [
                *("load", "--url", server.url, "--input", '{"city": "Oslo"}'),
                *("--requests", "20", "--users", "2", "--think-time", "0", "-q"),
            ],
        )
    assert result.exit_code == 0, result.output
    assert f"Load test of {server.url} (http)" in result.stdout
    assert "(20 ok, 0 errors" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://10.1.2.3:3000", "--input", "{}"], "refuses '10.1.2.3'"),
        (["--url", "http://example.com"], "refuses 'example.com'"),
        ([], "give the tool file (TARGET), --url, or both"),
        (["--url", "http://127.0.0.1:3000"], "give --input"),
        ([WEATHER, "--think-time", "soon"], "use SECONDS or MIN,MAX"),
        ([WEATHER, "--header", "no-colon"], "is not 'Name: value'"),
        ([WEATHER, "--input", "[1]"], "must be a JSON object"),
        ([WEATHER, "--users", "0"], "0 is not in the range 1<=x<=10000"),
        (["missing_tool.py"], "missing_tool.py does not exist"),
    ],
)
def test_load_refuses_bad_arguments(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["load", *args, "--requests", "1"])
    assert result.exit_code != 0
    assert message in result.output
