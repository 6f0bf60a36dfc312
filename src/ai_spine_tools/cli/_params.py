"""What the commands' arguments become: a tool file (loaded) and a JSON object (decoded)."""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ai_spine_tools.core._tool import Tool

__all__ = [
    "JSON_OBJECT",
    "TOOL_FILE",
    "TOOL_FILES",
    "TOOL_FILES_QUIET",
    "TOOL_FILE_QUIET",
    "JSONObject",
    "LoadedTool",
    "LoadedTools",
    "ToolFile",
    "ToolFiles",
    "all_tools",
]


@dataclass(frozen=True, slots=True)
class LoadedTool:
    """A TARGET as given (``path/to/tool.py[:attr]`` or ``module:attr``) and the tool it holds."""

    target: str
    tool: Tool


class ToolFile(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A TARGET naming a tool, loaded when the command line is read.

    A tool that cannot be loaded raises its ``ToolDefinitionError`` (``file:line`` first), which
    the command group prints as one line. ``stdout_to_stderr``: what the tool file prints while
    it is imported goes to stderr (``ai-spine mcp``, whose stdout carries the protocol).
    """

    name = "target"

    def __init__(self, *, stdout_to_stderr: bool = False) -> None:
        self.stdout_to_stderr = stdout_to_stderr

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, LoadedTool | LoadedTools):
            return value
        redirect = (
            contextlib.redirect_stdout(sys.stderr)
            if self.stdout_to_stderr
            else contextlib.nullcontext()
        )
        with redirect:
            return self.load(value)

    def load(self, target: str) -> Any:
        """Import ``target`` and return what it holds (here: its one tool)."""
        from ai_spine_tools.core._loader import load_tool

        return LoadedTool(target, load_tool(target))


@dataclass(frozen=True, slots=True)
class LoadedTools:
    """A TARGET that may hold several tools (a folder of tool files, a module's ``tools``
    list, or one tool file) and the tools it holds."""

    target: str
    tools: list[Tool]


class ToolFiles(ToolFile):
    """A TARGET naming one tool or several (``tools/``, ``module`` with ``tools = [...]``),
    loaded when the command line is read."""

    def load(self, target: str) -> Any:
        from ai_spine_tools.core._loader import load_tools

        return LoadedTools(target, load_tools(target))


def all_tools(targets: tuple[LoadedTools, ...]) -> list[Tool]:
    """Every tool the TARGETs hold, in order; two of one name are refused (``ToolError``)."""
    from ai_spine_tools.server._suite import check_names

    tools = [tool for target in targets for tool in target.tools]
    if len(tools) > 1:
        check_names(tools)
    return tools


class JSONObject(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """An option's value that must be a JSON object; it becomes a ``dict``."""

    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dict):
            return value
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError as exc:
            self.fail(f"not valid JSON: {exc}", param, ctx)
        if not isinstance(decoded, dict):
            self.fail("must be a JSON object", param, ctx)
        return decoded


TOOL_FILE = ToolFile()
TOOL_FILE_QUIET = ToolFile(stdout_to_stderr=True)
TOOL_FILES = ToolFiles()
TOOL_FILES_QUIET = ToolFiles(stdout_to_stderr=True)
JSON_OBJECT = JSONObject()
