"""``ai-spine check``: what is wrong, or merely risky, in a tool's definition, with fixes."""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from typing import Literal

from ai_spine_tools.core._config import env_name
from ai_spine_tools.core._result import ToolResult
from ai_spine_tools.core._tool import Tool
from ai_spine_tools.exceptions import ToolError
from ai_spine_tools.fields import ArrayField, Field, JSONField, ObjectField, StringField
from ai_spine_tools.server._startup import check_environment

__all__ = ["Finding", "check_tool"]

Level = Literal["ok", "info", "warning", "problem"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One observation about a tool (``ai-spine check``) or a run of it (``ai-spine doctor``):
    how serious, what, how to fix it, and where it ranks among findings of its level."""

    level: Level
    message: str
    fix: str | None = None
    priority: int = 50  # lower first, among findings of one level


def check_tool(tool: Tool) -> list[Finding]:
    """Inspect ``tool`` (metadata, fields, examples, execute) and run it once on its example."""
    findings = [
        Finding("ok", f"metadata: {tool.name} {tool.version}, {tool.metadata.description!r}")
    ]
    if not tool.metadata.capabilities:
        findings.append(
            Finding(
                "warning",
                "metadata lists no capabilities",
                'add e.g. "capabilities": ["weather.current"]',
            )
        )
    findings += _check_environment(tool)
    findings += _check_fields(tool.input_schema.fields, "input")
    findings += _check_config(tool)
    findings += _check_execute(tool)
    findings += _run_example(tool)
    return findings


def _check_fields(fields: dict[str, Field], where: str) -> list[Finding]:
    out: list[Finding] = []
    for key, field in fields.items():
        path = f"{where}.{key}"
        if not field.description:
            out.append(
                Finding(
                    "warning",
                    f"{path} has no description",
                    "agents choose arguments from descriptions: add description=...",
                )
            )
        if isinstance(field, StringField) and field.max_length is None and not field.sensitive:
            out.append(
                Finding(
                    "warning",
                    f"{path} has no max_length",
                    "bound every string (max_length=...) so input size is predictable",
                )
            )
        if isinstance(field, StringField) and field.pattern and field.example_value() is None:
            out.append(
                Finding(
                    "warning",
                    f"{path} has a pattern but no example",
                    "give example=... so the schema and generated tests have a value",
                )
            )
        if isinstance(field, ArrayField) and field.max_items is None:
            out.append(
                Finding(
                    "warning",
                    f"{path} has no max_items",
                    "bound every array (max_items=...) so work per request is bounded",
                )
            )
        if isinstance(field, JSONField):
            out.append(
                Finding(
                    "warning",
                    f"{path} accepts any JSON",
                    "where the shape is known, declare it: object_field(properties={...}) or "
                    "array_field(items=...)",
                )
            )
        elif isinstance(field, ObjectField) and field.properties is None:
            out.append(
                Finding(
                    "warning",
                    f"{path} accepts any JSON object",
                    "declare properties={...} where the shape is known",
                )
            )
        if isinstance(field, ObjectField) and field.properties:
            out += _check_fields(dict(field.properties), path)
    return out


def _check_environment(tool: Tool) -> list[Finding]:
    """Variables that look like settings but are none (what serve warns about, or refuses)."""
    variables = [env_name(key, field) for key, field in tool.config.fields.items()]
    return [
        Finding(
            "problem" if problem.fatal else "warning",
            problem.message,
            "rename it (ai-spine serve refuses to start until then)" if problem.fatal else None,
        )
        for problem in check_environment(config_variables=variables)
    ]


def _check_config(tool: Tool) -> list[Finding]:
    out: list[Finding] = []
    try:
        missing = tool.config.required_per_request()
    except ToolError as exc:  # a bad server-side value: start-up would fail on it
        return [Finding("problem", exc.message, "fix the variable it names")]
    for key in missing:
        variable = env_name(key, tool.config.fields[key])
        out.append(
            Finding(
                "warning",
                f"config.{key} is required and {variable} is not set: every request must send "
                f"config.{key}",
                f"set {variable} where the tool runs (export {variable}=...), or leave it to "
                "each request if callers bring their own",
            )
        )
    return out


def _check_execute(tool: Tool) -> list[Finding]:
    execute = tool.execute_function
    if inspect.iscoroutinefunction(execute) or inspect.isasyncgenfunction(execute):
        return [Finding("ok", "execute is async")]
    return [
        Finding(
            "warning",
            "execute is a plain function: it runs in a thread pool",
            "make it async def if it awaits I/O; keep it sync if it blocks",
        )
    ]


def _run_example(tool: Tool) -> list[Finding]:
    example = tool.input_schema.example()
    try:
        tool.input_schema.validate(example)
    except ToolError as exc:
        return [
            Finding(
                "problem",
                f"the schema's example input does not validate: {exc.message}",
                "give each field without a default a valid example=...",
            )
        ]
    try:
        result = asyncio.run(_run(tool, example))
    except Exception as exc:  # setup raised, or the server-side config is invalid
        what = exc.message if isinstance(exc, ToolError) else f"{type(exc).__name__}: {exc}"
        return [
            Finding(
                "problem",
                f"the tool could not start: {what}",
                "set the config it needs (see the config warnings above), and check setup",
            )
        ]
    if result.ok:
        if result.data is None:
            return [
                Finding(
                    "warning",
                    "execute returned None for the example input: callers get an empty "
                    "output_data {}",
                    "return the result (a dict); did the function forget its return?",
                )
            ]
        return [Finding("ok", "the example input validates and executes")]
    missing = [env_name(key, tool.config.fields[key]) for key in tool.config.required_per_request()]
    if result.error_code == "CONFIGURATION_ERROR" and missing:
        return [
            Finding(
                "warning",
                f"the example was not executed: it needs config that has no value here "
                f"({result.error_message})",
                f"set {', '.join(missing)} and run ai-spine check again to execute it",
            )
        ]
    return [
        Finding(
            "problem",
            f"executing the example failed: {result.error_code}: {result.error_message}",
            "run it with 'ai-spine call' and AI_SPINE_DEBUG=true to see why",
        )
    ]


async def _run(tool: Tool, example: dict[str, object]) -> ToolResult:
    async with tool:
        return await tool.run(example, debug=True)
