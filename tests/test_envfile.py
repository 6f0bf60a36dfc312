"""``--env-file``: settings from a dotenv file, where the environment has not set them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ai_spine_tools.cli import main
from ai_spine_tools.cli._envfile import load_env_file
from ai_spine_tools.exceptions import ServerConfigurationError

TOOL = """
import os
from ai_spine_tools import create_tool

tool = create_tool(
    metadata={"name": "env-reader", "version": "1.0.0", "description": "reads its environment"},
    execute=lambda: {"greeting": os.environ.get("ENVFILE_GREETING")},
)
"""


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The variables these tests set are removed again afterwards."""
    for name in ("ENVFILE_GREETING", "ENVFILE_OTHER"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return monkeypatch


def test_values_the_environment_lacks_are_set(tmp_path: Path, clean: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text('# settings\nENVFILE_GREETING="hello there"\nexport ENVFILE_OTHER=2\n')
    assert load_env_file(env) == ["ENVFILE_GREETING", "ENVFILE_OTHER"]
    assert os.environ["ENVFILE_GREETING"] == "hello there"
    assert os.environ["ENVFILE_OTHER"] == "2"


def test_the_environment_wins_over_the_file(tmp_path: Path, clean: pytest.MonkeyPatch) -> None:
    clean.setenv("ENVFILE_GREETING", "from the shell")
    (tmp_path / ".env").write_text("ENVFILE_GREETING=from the file\n")
    assert load_env_file(tmp_path / ".env") == []
    assert os.environ["ENVFILE_GREETING"] == "from the shell"


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ServerConfigurationError, match=r"no-such\.env: no such file"):
        load_env_file(tmp_path / "no-such.env")


def test_call_reads_the_env_file(tmp_path: Path, clean: pytest.MonkeyPatch) -> None:
    (tmp_path / "tool.py").write_text(TOOL)
    (tmp_path / ".env").write_text("ENVFILE_GREETING=hola\n")
    result = CliRunner().invoke(
        main, ["call", str(tmp_path / "tool.py"), "--env-file", str(tmp_path / ".env")]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["output_data"] == {"greeting": "hola"}


def test_serve_refuses_a_missing_env_file(tmp_path: Path) -> None:
    (tmp_path / "tool.py").write_text(TOOL)
    result = CliRunner().invoke(
        main, ["serve", str(tmp_path / "tool.py"), "--env-file", str(tmp_path / "none.env")]
    )
    assert result.exit_code != 0
    assert "none.env: no such file" in result.output


def test_the_env_file_is_read_before_the_tool_loads(
    tmp_path: Path, clean: pytest.MonkeyPatch
) -> None:
    (tmp_path / "early.py").write_text(
        TOOL.replace('os.environ.get("ENVFILE_GREETING")', "AT_IMPORT")
        + "\nAT_IMPORT = os.environ.get('ENVFILE_GREETING')\n"
    )
    (tmp_path / ".env").write_text("ENVFILE_GREETING=early\n")
    result = CliRunner().invoke(
        main, ["call", str(tmp_path / "early.py"), "{}", "--env-file", str(tmp_path / ".env")]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["output_data"] == {"greeting": "early"}
