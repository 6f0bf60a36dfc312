"""Loading a tool: any error while importing its file is one ToolDefinitionError that starts with
the file and line in the user's own code, the error itself kept as its cause."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ai_spine_tools.core._loader import load_tool
from ai_spine_tools.exceptions import ToolDefinitionError

HEADER = "from ai_spine_tools import create_tool, string_field\n"
TAIL = (
    "tool = create_tool(metadata={'name': 'x', 'version': '1.0.0', 'description': 'd'}, "
    "execute=lambda input: {}, schema={'input': {'city': CITY}})\n"
)

BROKEN: list[tuple[str, int, str]] = [
    ("CITY = string_field(maxlength=100)\n", 2, "string_field() got an unknown keyword"),
    ("CITY = string_field(required=True, default='x')\n", 2, "cannot be required and have"),
    ("CITY = string_fied()\n", 2, "NameError: name 'string_fied' is not defined"),
    ("import no_such_package_here\n", 2, "No module named 'no_such_package_here'"),
    ("CITY = string_field(\n", 2, "SyntaxError: '(' was never closed"),
    ("CITY = 1 / 0\n", 2, "ZeroDivisionError: division by zero"),
]


@pytest.mark.parametrize(("body", "line", "message"), BROKEN)
def test_an_import_error_names_the_file_and_line(
    tmp_path: Path, body: str, line: int, message: str
) -> None:
    path = tmp_path / "broken_tool.py"
    path.write_text(HEADER + body + TAIL)
    with pytest.raises(ToolDefinitionError) as raised:
        load_tool(str(path))
    shown = raised.value.message
    assert shown.startswith(f"{path}:{line}: "), shown
    assert message in shown
    assert raised.value.__cause__ is not None  # the traceback is kept for --debug


def test_the_line_is_in_the_users_module_that_failed(tmp_path: Path) -> None:
    (tmp_path / "helpers_for_loader.py").write_text(
        "from ai_spine_tools import string_field\n\nCITY = string_field(max_lenght=5)\n"
    )
    path = tmp_path / "uses_helpers.py"
    path.write_text("from helpers_for_loader import CITY\n")
    with pytest.raises(ToolDefinitionError) as raised:
        load_tool(str(path))
    assert raised.value.message.startswith(f"{tmp_path / 'helpers_for_loader.py'}:3: ")


def test_a_path_inside_the_working_directory_is_shown_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "relative_broken.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ToolDefinitionError) as raised:
        load_tool("tools/relative_broken.py")
    assert raised.value.message == f"tools{os.sep}relative_broken.py:1: RuntimeError: boom"


def test_a_module_target_that_is_missing_says_so() -> None:
    with pytest.raises(ToolDefinitionError, match="cannot import 'no_such_tool_module'"):
        load_tool("no_such_tool_module:tool")
