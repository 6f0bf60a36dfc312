"""The ai-spine command: call a tool once, and refuse bad targets and arguments clearly."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ai_spine_tools import Tool
from ai_spine_tools.cli import main
from serverproc import EXAMPLES, TOOLS

WEATHER = str(EXAMPLES / "weather.py")


def test_call_prints_the_execute_response_and_exits_0() -> None:
    result = CliRunner().invoke(main, ["call", WEATHER, '{"city": "Madrid"}'])
    body = json.loads(result.stdout)
    assert result.exit_code == 0
    assert body["status"] == "success"
    assert body["output_data"]["city"] == "Madrid"


def test_call_with_invalid_input_prints_the_error_and_exits_1() -> None:
    result = CliRunner().invoke(main, ["call", WEATHER, '{"city": 5}'])
    body = json.loads(result.stdout)
    assert result.exit_code == 1
    assert body["error_code"] == "VALIDATION_ERROR"
    assert body["error_details"]["errors"][0]["path"] == "city"


def test_call_passes_config() -> None:
    target = str(TOOLS / "keyed.py")
    result = CliRunner().invoke(
        main, ["call", target, '{"q": "x"}', "--config", '{"api_key": "k123456789"}']
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["output_data"]["key_length"] == 10


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["call", WEATHER, "{nope"], "not valid JSON"),
        (["call", WEATHER, "[1, 2]"], "must be a JSON object"),
        (["call", WEATHER, "{}", "--config", "3"], "must be a JSON object"),
        (["call", "missing/tool.py", "{}"], "does not exist"),
        (["call", "examples/../README.md:tool", "{}"], "cannot import"),
        (["call", "json", "{}"], "defines no Tool"),
        (["call", f"{WEATHER}:nothing", "{}"], "no Tool named 'nothing'"),
        (["serve", "missing/tool.py"], "does not exist"),
        (["serve", WEATHER, "--port", "0"], "0"),
        (["serve", WEATHER, "--server", "apache"], "apache"),
    ],
)
def test_bad_arguments_fail_with_a_clear_message(arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code != 0
    assert message in result.output


def test_a_module_with_several_tools_asks_for_one(tmp_path: Path) -> None:
    source = (EXAMPLES / "weather.py").read_text()
    path = tmp_path / "two.py"
    path.write_text(
        source.replace("tool = create_tool(", "other = tool = create_tool(") + "\ntool2 = tool\n"
    )
    result = CliRunner().invoke(main, ["call", str(path) + ":tool2", '{"city": "Lima"}'])
    assert result.exit_code == 0


def test_version_and_help() -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["--version"]).exit_code == 0
    help_text = runner.invoke(main, ["--help"]).output
    assert "serve" in help_text
    assert "call" in help_text


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("json-schema", lambda tool: tool.json_schema()),
        ("openai", lambda tool: tool.to_openai_tool()),
        ("anthropic", lambda tool: tool.to_anthropic_tool()),
        ("mcp", lambda tool: {"name": tool.name, "title": tool.name, **_mcp_rest(tool)}),
    ],
)
def test_schema_prints_each_format(kind: str, expected: Callable[[Tool], Any]) -> None:
    from weather import tool as weather

    printed = CliRunner().invoke(main, ["schema", WEATHER, "--format", kind])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == expected(weather)


def _mcp_rest(tool: Tool) -> dict[str, Any]:
    return {"description": tool.metadata.description, "inputSchema": tool.json_schema()}


def test_mcp_and_serve_mcp_are_offered() -> None:
    runner = CliRunner()
    assert "--mcp" in runner.invoke(main, ["serve", "--help"]).output
    assert "stdin" in runner.invoke(main, ["mcp", "--help"]).output
    missing = runner.invoke(main, ["mcp", "missing/tool.py"])
    assert missing.exit_code != 0
    assert "does not exist" in missing.output


def test_mcp_reports_a_failing_setup(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text(
        "from ai_spine_tools import create_tool\n"
        "def setup():\n"
        "    raise RuntimeError('no database')\n"
        "tool = create_tool(metadata={'name': 'broken', 'version': '1.0.0', 'description': 'x'},"
        " execute=lambda input: {}, setup=setup)\n"
    )
    result = CliRunner().invoke(main, ["mcp", str(path)])
    assert result.exit_code == 1
    assert "no database" in result.output


def test_a_tool_next_to_a_file_named_like_a_standard_module_does_not_shadow_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "secrets.py").write_text("raise ImportError('the standard secrets was shadowed')\n")
    (tmp_path / "tool.py").write_text((EXAMPLES / "weather.py").read_text())
    code = (
        "import sys; from ai_spine_tools.core._loader import load_tool; "
        f"load_tool({str(tmp_path / 'tool.py')!r}); import secrets; print(secrets.token_hex(2))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


# -- failing loudly, in one line -------------------------------------------------------------


def _broken_tool(tmp_path: Path) -> Path:
    path = tmp_path / "broken.py"
    path.write_text(
        "from ai_spine_tools import create_tool, string_field\n"
        "\n"
        "CITY = string_field(maxlength=100)\n"
    )
    return path


@pytest.mark.parametrize("command", ["serve", "dev", "call", "check", "schema", "mcp"])
def test_an_import_error_is_one_line_naming_file_and_line(
    tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("AI_SPINE_DEBUG", "AI_SPINE_BLOCKING_STACKS", "AI_SPINE_MCP"):
        monkeypatch.delenv(variable, raising=False)  # what a command sets is undone after it
    path = _broken_tool(tmp_path)
    result = CliRunner().invoke(main, [command, str(path)])
    assert result.exit_code == 1
    assert f"{path}:3: string_field() got an unknown keyword 'maxlength'" in result.output
    assert "did you mean 'max_length'?" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    path = _broken_tool(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "ai_spine_tools", "--debug", "call", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "string_field(maxlength=100)" in result.stderr


def test_call_with_a_bad_setting_is_one_line_like_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_SPINE_REQUEST_TIMEOUT", "soon")
    result = CliRunner().invoke(main, ["call", WEATHER, '{"city": "Oslo"}'])
    assert result.exit_code == 1
    assert result.output.startswith("Error: Environment variable AI_SPINE_REQUEST_TIMEOUT")
    assert len(result.output.strip().splitlines()) == 1


def test_an_unexpected_error_is_one_line_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "failing_setup.py"
    path.write_text(
        "from ai_spine_tools import create_tool\n"
        "def setup():\n"
        "    raise RuntimeError('no database')\n"
        "tool = create_tool(metadata={'name': 'f', 'version': '1.0.0', 'description': 'x'},"
        " execute=lambda input: {}, setup=setup)\n"
    )
    result = CliRunner().invoke(main, ["call", str(path)])
    assert result.exit_code == 1
    assert "no database" in result.output
    assert "Traceback" not in result.output


def test_call_prints_a_streaming_tools_records_as_ndjson() -> None:
    target = str(TOOLS / "streamer.py")
    result = CliRunner().invoke(main, ["call", target, '{"count": 3}'])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 0, result.output
    assert [r["data"] for r in records[:-1]] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert (records[-1]["type"], records[-1]["status"]) == ("result", "success")


def test_call_of_a_stream_that_fails_midway_exits_1() -> None:
    target = str(TOOLS / "streamer.py")
    result = CliRunner().invoke(main, ["call", target, '{"count": 3, "fail_at": 1}'])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 1
    assert records[-1]["type"] == "error"


def test_call_warns_about_an_unknown_setting_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_SPINE_REQUST_TIMEOUT", "500")
    result = CliRunner().invoke(main, ["call", WEATHER, '{"city": "Oslo"}'])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["status"] == "success"  # stdout stays the response alone
    assert "did you mean AI_SPINE_REQUEST_TIMEOUT?" in result.stderr


README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readmes_commands_name_files_that_exist() -> None:
    root = README.parent
    named = set(re.findall(r"ai-spine \w+ ([\w./-]+\.py)", README.read_text()))
    assert named  # the commands were found
    placeholders = ("path/to/", "src/NAME/")
    missing = [
        n for n in sorted(named) if not n.startswith(placeholders) and not (root / n).exists()
    ]
    assert missing == [], "README commands name files the repository does not have"
