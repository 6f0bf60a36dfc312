"""The ``ai-spine`` command: serve a tool, or call it once."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click

from ai_spine_tools import __version__
from ai_spine_tools.exceptions import ToolError

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ai-spine")
def main() -> None:
    """Build, serve and call AI Spine tools."""


@main.command()
@click.argument("target")
@click.option("--host", default=None, help="Interface to listen on [HOST, 0.0.0.0].")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [PORT, 3000].")
@click.option(
    "--workers",
    type=click.IntRange(1, 512),
    default=None,
    help="Worker processes sharing the port [AI_SPINE_WORKER_THREADS, 1].",
)
@click.option("--reload", is_flag=True, help="Restart when the tool's files change.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error", "critical"]),
    default=None,
    help="Log level [AI_SPINE_LOG_LEVEL, info].",
)
def serve(
    target: str,
    host: str | None,
    port: int | None,
    workers: int | None,
    reload: bool,
    log_level: str | None,
) -> None:
    """Serve the tool in TARGET (path/to/tool.py[:attr] or module:attr) over HTTP."""
    from ai_spine_tools._loader import load_tool
    from ai_spine_tools._server import serve as run_server

    try:
        load_tool(target)  # fail here, with a clear message, before any process starts
        run_server(
            target, host=host, port=port, workers=workers, reload=reload, log_level=log_level
        )
    except ToolError as exc:
        raise click.ClickException(exc.message) from None


@main.command()
@click.argument("target")
@click.argument("input_json", metavar="INPUT", default="{}")
@click.option("--config", "config_json", default=None, help="Config as a JSON object.")
def call(target: str, input_json: str, config_json: str | None) -> None:
    """Run the tool in TARGET once in-process with INPUT (a JSON object) and print the response.

    The response is exactly what POST /api/execute would answer; the exit status is 0 for a
    success and 1 for an error.
    """
    from ai_spine_tools._app import create_app
    from ai_spine_tools._inprocess import InProcessApp
    from ai_spine_tools._loader import load_tool

    try:
        tool = load_tool(target)
        body: dict[str, Any] = {"input_data": _json_object(input_json, "INPUT")}
        if config_json is not None:
            body["config"] = _json_object(config_json, "--config")
    except ToolError as exc:
        raise click.ClickException(exc.message) from None

    async def run() -> tuple[int, bytes]:
        client = InProcessApp(create_app(tool))
        await client.start()
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
    click.echo(json.dumps(json.loads(payload), indent=2, ensure_ascii=False))
    sys.exit(0 if status == 200 and json.loads(payload).get("status") == "success" else 1)


def _json_object(text: str, name: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=name) from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=name)
    return value
