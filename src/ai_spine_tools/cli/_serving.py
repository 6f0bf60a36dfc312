"""The commands that run a tool: ``serve``, ``dev``, ``call`` and ``mcp``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any, Literal

import click

from ai_spine_tools.cli._envfile import ENV_FILE
from ai_spine_tools.cli._group import warn_about_environment
from ai_spine_tools.cli._params import (
    JSON_OBJECT,
    TOOL_FILE,
    TOOL_FILES,
    TOOL_FILES_QUIET,
    LoadedTool,
    LoadedTools,
    all_tools,
)

__all__ = ["call", "dev", "mcp", "serve"]


@click.command()
@click.argument("targets", metavar="TARGET...", nargs=-1, required=True, type=TOOL_FILES)
@click.option("--host", default=None, help="Interface to listen on [HOST, 0.0.0.0].")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [PORT, 3000].")
@click.option(
    "--workers",
    type=click.IntRange(1, 512),
    default=None,
    help="Worker processes sharing the port [AI_SPINE_WORKERS, 1].",
)
@click.option("--reload", is_flag=True, help="Restart when the tool's files change.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error", "critical"]),
    default=None,
    help="Log level [AI_SPINE_LOG_LEVEL, info].",
)
@click.option(
    "--server",
    type=click.Choice(["uvicorn", "granian"]),
    default="uvicorn",
    envvar="AI_SPINE_SERVER",
    show_default=True,
    help="The HTTP server to run on (granian needs the [granian] extra).",
)
@click.option(
    "--mcp",
    is_flag=True,
    help="Also serve the tool over MCP (Streamable HTTP) at /mcp [AI_SPINE_MCP].",
)
@click.option(
    "--strict-startup",
    is_flag=True,
    default=None,
    help="Several tools: a tool whose setup fails stops the start-up, instead of answering 503 "
    "[AI_SPINE_STRICT_STARTUP].",
)
@ENV_FILE
def serve(
    targets: tuple[LoadedTools, ...],
    host: str | None,
    port: int | None,
    workers: int | None,
    reload: bool,
    log_level: str | None,
    server: Literal["uvicorn", "granian"],
    mcp: bool,
    strict_startup: bool | None,
) -> None:
    """Serve the tool in TARGET (path/to/tool.py[:attr] or module:attr) over HTTP.

    Several TARGETs, a folder of tool files (tools/) or a module exposing tools = [...] serve
    every tool in one server, each under /<tool name> (/weather/api/execute), with the server's
    /health, /ready, /metrics and tool list at the root.
    """
    from ai_spine_tools.server._server import serve as run_server

    all_tools(targets)  # two tools of one name: refused before anything starts
    if mcp:
        os.environ["AI_SPINE_MCP"] = "true"  # the environment reaches every worker process
    # TARGETs were loaded as the command line was read: a broken tool fails before any process
    run_server(
        _served(targets),
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level=log_level,
        server=server,
        strict_startup=strict_startup,
    )


@click.command()
@click.argument("targets", metavar="TARGET...", nargs=-1, required=True, type=TOOL_FILES)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [PORT, 3000].")
@ENV_FILE
def dev(targets: tuple[LoadedTools, ...], host: str, port: int | None) -> None:
    """Serve TARGET for development: reload on change, full error messages, request log.

    Several TARGETs, or a folder of tool files, serve every tool in one server, as ``serve``
    does, and an edit of any of their files reloads them all.
    """
    from ai_spine_tools.server._server import serve as run_server

    all_tools(targets)  # two tools of one name: refused before anything starts

    try:
        import watchfiles  # noqa: F401  (uvicorn's reloader uses it when it imports)
    except ImportError:
        click.echo(
            "ai-spine dev: watchfiles is not installed, so changes to .py files are found by "
            "polling; pip install 'ai-spine-tools[reload]' to watch them instead",
            err=True,
        )
    os.environ.setdefault("AI_SPINE_DEBUG", "true")
    os.environ.setdefault("AI_SPINE_BLOCKING_STACKS", "true")  # name the blocking call
    run_server(_served(targets), host=host, port=port, reload=True, log_level="debug")


@click.command()
@click.argument("target", type=TOOL_FILE)
@click.argument("input_data", metavar="INPUT", type=JSON_OBJECT, default="{}")
@click.option("--config", type=JSON_OBJECT, default=None, help="Config as a JSON object.")
@ENV_FILE
def call(target: LoadedTool, input_data: dict[str, Any], config: dict[str, Any] | None) -> None:
    """Run the tool in TARGET once in-process with INPUT (a JSON object) and print the response.

    The response is exactly what POST /api/execute would answer (a streaming tool's records as
    NDJSON, one a line); the exit status is 0 for a success and 1 for an error.
    """
    from ai_spine_tools.server._app import create_app
    from ai_spine_tools.server._inprocess import InProcessApp

    tool = target.tool
    body: dict[str, Any] = {"input_data": input_data}
    if config is not None:
        body["config"] = config
    warn_about_environment(tool)
    app = create_app(tool)  # a bad setting fails here, naming the variable

    async def run() -> tuple[int, bytes]:
        client = InProcessApp(app)
        try:
            await client.start()
        except RuntimeError as exc:  # setup raised; the lifespan said why
            raise click.ClickException(str(exc)) from None
        try:
            response = await client.request(
                "POST",
                "/api/execute",
                body=json.dumps(body).encode(),
                headers=[("content-type", "application/json")],
            )
        finally:
            await client.stop()
        return response.status, response.body

    status, payload = asyncio.run(run())
    if tool.streams and status == 200:  # NDJSON: each record as it came, the result last
        lines = [line for line in payload.decode().splitlines() if line.strip()]
        for line in lines:
            click.echo(line)
        last = json.loads(lines[-1]) if lines else {}
        sys.exit(0 if last.get("status") == "success" else 1)
    answer = json.loads(payload)
    click.echo(json.dumps(answer, indent=2, ensure_ascii=False))
    sys.exit(0 if status == 200 and answer.get("status") == "success" else 1)


@click.command()
@click.argument("targets", metavar="TARGET...", nargs=-1, required=True, type=TOOL_FILES_QUIET)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error", "critical"]),
    default=None,
    help="Level of the log lines written to stderr [AI_SPINE_LOG_LEVEL, warning].",
)
def mcp(targets: tuple[LoadedTools, ...], log_level: str | None) -> None:
    """Serve the tool in TARGET (or every tool of several TARGETs, of a folder, of a module's
    tools list) over MCP on stdin and stdout, for desktop agents.

    The agent starts this command itself; configure it with the command and its arguments,
    e.g. ai-spine mcp /path/to/tool.py. Settings come from the environment, as for serve; logs
    go to stderr.
    """
    import logging

    from ai_spine_tools._settings import ServerSettings
    from ai_spine_tools.server._mcp_stdio import serve_stdio

    tools = all_tools(targets)  # loaded with prints on stderr: stdout carries the protocol alone
    settings = ServerSettings.from_env()
    for tool in tools:
        warn_about_environment(tool)
    level = (log_level or os.environ.get("AI_SPINE_LOG_LEVEL") or "warning").upper()
    logging.basicConfig(
        stream=sys.stderr, level=level, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve_stdio(tools[0] if len(tools) == 1 else tools, settings))
    except RuntimeError as exc:  # the tool's start-up failed (its setup raised)
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


def _served(targets: tuple[LoadedTools, ...]) -> str | list[str]:
    """What the server is given: the one TARGET as written, or every TARGET in order."""
    given = [target.target for target in targets]
    return given[0] if len(given) == 1 else given
