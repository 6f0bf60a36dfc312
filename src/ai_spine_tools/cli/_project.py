"""The commands about a tool's project and definition: ``new``, ``check`` and ``schema``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ai_spine_tools.cli._params import TOOL_FILES, LoadedTools, all_tools
from ai_spine_tools.exceptions import ToolError

__all__ = ["check", "new", "schema"]


@click.command()
@click.argument("name")
@click.option(
    "--template",
    type=click.Choice(["basic", "http-api", "database", "cached", "suite"]),
    default=None,
    help="What the tool shows (asked for when omitted, unless --yes).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to create it [./NAME].",
)
@click.option("--no-git", is_flag=True, help="Do not run git init.")
@click.option("--yes", "-y", is_flag=True, help="Ask nothing; use the defaults.")
@click.option(
    "--sdk",
    default=None,
    metavar="SPEC",
    help="How the project depends on ai-spine-tools: a version range, a requirement, a URL, "
    "or a wheel or source directory [as this SDK was installed].",
)
def new(
    name: str,
    template: str | None,
    directory: Path | None,
    no_git: bool,
    yes: bool,
    sdk: str | None,
) -> None:
    """Create a new tool project called NAME, ready to test, serve and deploy."""
    from ai_spine_tools.cli._scaffold import TEMPLATES, render_project, sdk_requirement

    if template is None:
        if yes or not sys.stdin.isatty():
            template = "basic"
        else:
            for key, item in TEMPLATES.items():
                click.echo(f"  {key:<10} {item.summary}")
            template = click.prompt("Template", type=click.Choice(list(TEMPLATES)), default="basic")
    path = render_project(name, template=template, directory=directory, git=not no_git, sdk=sdk)
    click.echo(f"Created {name} ({template}) in {path}")
    click.echo(f"  depends on {sdk_requirement(TEMPLATES[template].extras, sdk)}")
    click.echo(f"  cd {path}")
    click.echo("  make test    # install into .venv and run its tests")
    click.echo("  make serve   # serve it on :3000 (settings from .env, if any)")


@click.command()
@click.argument("target")
def check(target: str) -> None:
    """Check the tool in TARGET: metadata, schema, examples, execute; print problems and fixes."""
    from ai_spine_tools.cli._checks import check_tool
    from ai_spine_tools.core._loader import load_tool

    try:
        tool = load_tool(target)
    except ToolError as exc:  # a finding like the others, on stdout
        click.echo(f"✗ {exc.message}")
        sys.exit(1)
    findings = check_tool(tool)
    for finding in findings:
        mark = {"ok": "✓", "info": "·", "warning": "!", "problem": "✗"}[finding.level]
        click.echo(f"{mark} {finding.message}")
        if finding.fix:
            click.echo(f"    fix: {finding.fix}")
    problems = sum(1 for finding in findings if finding.level == "problem")
    click.echo(f"{tool.name} {tool.version}: {problems} problem(s)")
    sys.exit(1 if problems else 0)


@click.command()
@click.argument("targets", metavar="TARGET...", nargs=-1, required=True, type=TOOL_FILES)
@click.option(
    "--format",
    "kind",
    type=click.Choice(
        ["openapi", "json-schema", "openai", "anthropic", "mcp", "spine-registration"]
    ),
    default="openapi",
    show_default=True,
    help="openapi: the document /schema serves; json-schema: the input schema alone; "
    "openai, anthropic: a function-calling tool (strict when the schema allows); mcp: the MCP "
    "tool definition; spine-registration: what the AI Spine platform registers.",
)
@click.option(
    "--endpoint",
    default=None,
    metavar="URL",
    help="The server's public base URL, for spine-registration [a placeholder]; with several "
    "tools, each is registered at URL/<tool name>.",
)
def schema(targets: tuple[LoadedTools, ...], kind: str, endpoint: str | None) -> None:
    """Print the schema of the tool in TARGET, in one of several formats; with several tools
    (several TARGETs, a folder, a module's tools list), a JSON array of one per tool."""
    from ai_spine_tools.interop._export import mcp_tool
    from ai_spine_tools.interop._openapi import openapi_document
    from ai_spine_tools.interop._registration import spine_registration

    tools = all_tools(targets)
    several = len(tools) > 1
    documents: list[dict[str, Any]] = []
    for tool in tools:
        if kind == "openapi":
            documents.append(openapi_document(tool, auth=False))
        elif kind == "json-schema":
            documents.append(tool.json_schema())
        elif kind == "openai":
            documents.append(tool.to_openai_tool())
        elif kind == "anthropic":
            documents.append(tool.to_anthropic_tool())
        elif kind == "mcp":
            documents.append(mcp_tool(tool))
        elif several and endpoint is not None:  # a suite serves each tool under its name
            documents.append(spine_registration(tool, f"{endpoint.rstrip('/')}/{tool.name}"))
        else:
            documents.append(spine_registration(tool, endpoint))
    shown: Any = documents if several else documents[0]
    click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
