"""``ai-spine check``: it names the variable of each required config field without a value, only
suggests builders that exist, warns when execute returns None, and lists settings problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ai_spine_tools import (
    api_key_field,
    create_tool,
    json_field,
    object_field,
    string_field,
)
from ai_spine_tools.cli import main
from ai_spine_tools.cli._checks import Finding, check_tool
from serverproc import EXAMPLES

METADATA = {
    "name": "checked",
    "version": "1.0.0",
    "description": "Checked",
    "capabilities": ["testing.check"],
}


async def _echo(input: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    return {"key_set": bool(config.get("api_key"))}


def _keyed() -> Any:
    return create_tool(
        metadata=METADATA,
        schema={"config": {"api_key": api_key_field(required=True, env="CHECKED_API_KEY")}},
        execute=_echo,
    )


def _messages(findings: list[Finding], level: str) -> list[str]:
    return [finding.message for finding in findings if finding.level == level]


def test_a_required_config_field_without_a_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CHECKED_API_KEY", raising=False)
    findings = check_tool(_keyed())
    warnings = _messages(findings, "warning")
    assert "config.api_key is required and CHECKED_API_KEY is not set" in " ".join(warnings)
    skipped = next(f for f in findings if f.message.startswith("the example was not executed"))
    assert skipped.fix == "set CHECKED_API_KEY and run ai-spine check again to execute it"
    assert _messages(findings, "problem") == []


def test_with_the_variable_set_the_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECKED_API_KEY", "k-123")
    findings = check_tool(_keyed())
    assert "the example input validates and executes" in _messages(findings, "ok")
    assert not any("CHECKED_API_KEY" in message for message in _messages(findings, "warning"))


@pytest.mark.parametrize(
    ("field", "fix"),
    [
        (json_field(description="d"), "object_field(properties={...}) or array_field(items=...)"),
        (object_field(description="d"), "declare properties={...} where the shape is known"),
    ],
)
def test_open_fields_are_told_to_use_builders_that_exist(field: Any, fix: str) -> None:
    made = create_tool(metadata=METADATA, schema={"input": {"data": field}}, execute=_echo)
    [finding] = [f for f in check_tool(made) if f.message.startswith("input.data accepts any")]
    assert finding.fix is not None
    assert fix in finding.fix
    assert "json_field(properties" not in finding.fix


def test_returning_none_is_a_warning() -> None:
    async def execute(input: dict[str, Any]) -> None:
        input.get("city")

    made = create_tool(
        metadata=METADATA,
        schema={"input": {"city": string_field(max_length=10, description="d")}},
        execute=execute,
    )
    [finding] = [f for f in check_tool(made) if "returned None" in f.message]
    assert finding.level == "warning"
    assert finding.fix is not None
    assert "forget its return" in finding.fix


def test_settings_problems_are_listed_a_security_near_miss_as_a_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AI_SPINE_API_KEY", "k1")
    monkeypatch.setenv("AI_SPINE_LOG_LEVL", "debug")
    findings = check_tool(_keyed())
    assert any("did you mean AI_SPINE_API_KEYS?" in m for m in _messages(findings, "problem"))
    assert any("did you mean AI_SPINE_LOG_LEVEL?" in m for m in _messages(findings, "warning"))


def test_the_command_names_the_missing_variable_of_the_example(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = (EXAMPLES / "weather.py").read_text().replace("required=False", "required=True")
    path = tmp_path / "weather_keyed.py"
    path.write_text(source)
    monkeypatch.delenv("WEATHER_API_KEY", raising=False)
    result = CliRunner().invoke(main, ["check", str(path)])
    assert "config.api_key is required and WEATHER_API_KEY is not set" in result.output
    assert "fix: set WEATHER_API_KEY" in result.output
    assert result.exit_code == 0  # a warning: callers may bring their own key
