"""The ``ai-spine`` command: serve a tool, call it once, or load-test it.

A command that fails prints one line saying why (``file:line`` for an error while importing the
tool) and exits non-zero: 1, or 2 for a near miss of a security setting (see ``_startup``).
``ai-spine --debug COMMAND`` shows the traceback instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Literal

import click

from ai_spine_tools import __version__
from ai_spine_tools.exceptions import ToolError, UnknownSettingError

__all__ = ["main"]

_BAD_SETTING = 2  # as click's usage errors: the command line (its environment) must change


class _Main(click.Group):
    """The command group: a failure is one line on stderr and a non-zero exit status, never a
    traceback (unless ``--debug``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            if isinstance(exc, UnknownSettingError):
                click.echo(f"Error: {exc.message}", err=True)
                ctx.exit(_BAD_SETTING)
            if isinstance(exc, ToolError):
                raise click.ClickException(exc.message) from None
            raise click.ClickException(
                f"{type(exc).__name__}: {exc} (ai-spine --debug {ctx.invoked_subcommand} ... "
                "shows the traceback)"
            ) from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ai-spine")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
def main(debug: bool) -> None:
    """Build, serve and call AI Spine tools."""


def _check_environment(tool: Any) -> None:
    """Warn on stderr about variables that look like settings but are none; raise
    ``UnknownSettingError`` for a near miss of a security setting."""
    from ai_spine_tools.server._startup import check_tool_environment

    for problem in check_tool_environment(tool):
        click.echo(f"Warning: {problem.message}", err=True)


@main.command()
@click.argument("target")
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
def serve(
    target: str,
    host: str | None,
    port: int | None,
    workers: int | None,
    reload: bool,
    log_level: str | None,
    server: Literal["uvicorn", "granian"],
    mcp: bool,
) -> None:
    """Serve the tool in TARGET (path/to/tool.py[:attr] or module:attr) over HTTP."""
    from ai_spine_tools.core._loader import load_tool
    from ai_spine_tools.server._server import serve as run_server

    if mcp:
        os.environ["AI_SPINE_MCP"] = "true"  # the environment reaches every worker process
    load_tool(target)  # fail here, with a clear message, before any process starts
    run_server(
        target,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level=log_level,
        server=server,
    )


@main.command()
@click.argument("target")
@click.argument("input_json", metavar="INPUT", default="{}")
@click.option("--config", "config_json", default=None, help="Config as a JSON object.")
def call(target: str, input_json: str, config_json: str | None) -> None:
    """Run the tool in TARGET once in-process with INPUT (a JSON object) and print the response.

    The response is exactly what POST /api/execute would answer (a streaming tool's records as
    NDJSON, one a line); the exit status is 0 for a success and 1 for an error.
    """
    from ai_spine_tools.core._loader import load_tool
    from ai_spine_tools.server._app import create_app
    from ai_spine_tools.server._inprocess import InProcessApp

    tool = load_tool(target)
    body: dict[str, Any] = {"input_data": _json_object(input_json, "INPUT")}
    if config_json is not None:
        body["config"] = _json_object(config_json, "--config")
    _check_environment(tool)
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


@main.command()
@click.argument("target", required=False)
@click.option(
    "--users",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="Concurrent simulated users.",
)
@click.option(
    "--duration",
    type=click.FloatRange(0, 86_400, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds during which users send requests.",
)
@click.option(
    "--requests",
    "max_requests",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many requests in total.",
)
@click.option(
    "--think-time",
    default="0,1",
    show_default=True,
    help="Each user's pause after a response: SECONDS or MIN,MAX.",
)
@click.option(
    "--input",
    "input_json",
    default=None,
    help="input_data as a JSON object [a valid input generated from the schema].",
)
@click.option("--config", "config_json", default=None, help="Config as a JSON object.")
@click.option(
    "--url",
    default=None,
    help="Load-test the server running at this loopback URL instead of in-process.",
)
@click.option(
    "--header",
    "header_lines",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="Add a header to each request (repeatable).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the full report as JSON to this file.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a latency and throughput chart (.png, .svg, .pdf); needs matplotlib.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress line on stderr.")
@click.option(
    "--leak-check",
    is_flag=True,
    help="Run the load in --rounds rounds and report the server's RSS after each, with a "
    "verdict (exit status 1 when it grows steadily).",
)
@click.option(
    "--rounds",
    type=click.IntRange(3, 1000),
    default=5,
    show_default=True,
    help="Rounds of the leak check (each with --duration and --requests).",
)
def load(
    target: str | None,
    users: int,
    duration: float,
    max_requests: int | None,
    think_time: str,
    input_json: str | None,
    config_json: str | None,
    url: str | None,
    header_lines: tuple[str, ...],
    report_path: str | None,
    plot_path: str | None,
    quiet: bool,
    leak_check: bool,
    rounds: int,
) -> None:
    """Load-test the tool in TARGET in-process, or the server at --url, and print a summary.

    Users send requests, wait for each answer, pause for the think time and go again, until
    --duration passes or --requests have been sent. Only this machine is a target: the tool
    in-process, or a server on 127.0.0.1, localhost or [::1].
    """
    import importlib.util

    from ai_spine_tools.core._loader import load_tool
    from ai_spine_tools.core._tool import Tool
    from ai_spine_tools.testing import ProgressLine, ensure_loopback, load_test, valid_input

    if plot_path is not None and importlib.util.find_spec("matplotlib") is None:
        raise click.UsageError("--plot needs matplotlib: pip install 'ai-spine-tools[testing]'")
    try:
        low, _, high = think_time.partition(",")
        pause = (float(low), float(high or low))
    except ValueError:
        raise click.BadParameter("use SECONDS or MIN,MAX", param_hint="--think-time") from None
    headers = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise click.BadParameter(f"{line!r} is not 'Name: value'", param_hint="--header")
        headers[name.strip()] = value.strip()
    try:
        tool = load_tool(target) if target is not None else None
        subject: Tool | str
        if url is not None:
            subject = ensure_loopback(url)
        elif tool is not None:
            subject = tool
        else:
            raise click.UsageError("give the tool file (TARGET), --url, or both")
        data = _json_object(input_json, "--input") if input_json is not None else None
        if data is None and tool is not None:
            data = valid_input(tool)
        if data is None:
            raise click.UsageError("give --input (or TARGET, to generate one) with --url")
        config = _json_object(config_json, "--config") if config_json is not None else None
    except (ToolError, ValueError) as exc:
        raise click.ClickException(str(getattr(exc, "message", exc))) from None

    if leak_check:
        from ai_spine_tools.testing._leak import run_leak_check

        run_leak_check(
            subject,
            data,
            rounds=rounds,
            quiet=quiet,
            concurrent_users=users,
            duration=duration,
            think_time=pause,
            requests=max_requests,
            config=config,
            headers=headers,
        )
        return
    progress = None if quiet else ProgressLine(sys.stderr)
    try:
        report = asyncio.run(
            load_test(
                subject,
                data,
                concurrent_users=users,
                duration=duration,
                think_time=pause,
                requests=max_requests,
                config=config,
                headers=headers,
                on_progress=progress,
            )
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if progress is not None:
            progress.finish()
    click.echo(report.summary())
    if report_path is not None:
        with open(report_path, "w", encoding="utf-8") as out:
            out.write(report.to_json() + "\n")
        click.echo(f"\nreport written to {report_path}")
    if plot_path is not None:
        report.plot(plot_path)
        click.echo(f"chart written to {plot_path}")


@main.command()
@click.argument("name")
@click.option(
    "--template",
    type=click.Choice(["basic", "http-api", "database", "cached"]),
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
def new(name: str, template: str | None, directory: Path | None, no_git: bool, yes: bool) -> None:
    """Create a new tool project called NAME, ready to test, serve and deploy."""
    from ai_spine_tools.cli._scaffold import TEMPLATES, render_project

    if template is None:
        if yes or not sys.stdin.isatty():
            template = "basic"
        else:
            for key, item in TEMPLATES.items():
                click.echo(f"  {key:<10} {item.summary}")
            template = click.prompt("Template", type=click.Choice(list(TEMPLATES)), default="basic")
    try:
        path = render_project(name, template=template, directory=directory, git=not no_git)
    except ToolError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Created {name} ({template}) in {path}")
    click.echo(f"  cd {path}")
    click.echo("  make test    # install and run its tests")
    click.echo("  make serve   # serve it on :3000")


def create_main() -> None:
    """``create-ai-spine-tool NAME``: the same as ``ai-spine new NAME``."""
    new.main(prog_name="create-ai-spine-tool")


@main.command()
@click.argument("target")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [PORT, 3000].")
def dev(target: str, host: str, port: int | None) -> None:
    """Serve TARGET for development: reload on change, full error messages, request log."""
    from ai_spine_tools.core._loader import load_tool
    from ai_spine_tools.server._server import serve as run_server

    load_tool(target)
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
    run_server(target, host=host, port=port, reload=True, log_level="debug")


@main.command()
@click.argument("target")
def check(target: str) -> None:
    """Check the tool in TARGET: metadata, schema, examples, execute; print problems and fixes."""
    from ai_spine_tools.cli._checks import check_tool
    from ai_spine_tools.core._loader import load_tool

    try:
        tool = load_tool(target)
    except ToolError as exc:
        click.echo(f"✗ {exc.message}")
        sys.exit(1)
    findings = check_tool(tool)
    for finding in findings:
        mark = {"ok": "✓", "warning": "!", "problem": "✗"}[finding.level]
        click.echo(f"{mark} {finding.message}")
        if finding.fix:
            click.echo(f"    fix: {finding.fix}")
    problems = sum(1 for finding in findings if finding.level == "problem")
    click.echo(f"{tool.name} {tool.version}: {problems} problem(s)")
    sys.exit(1 if problems else 0)


@main.command()
@click.argument("target")
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
    help="The tool's public base URL, for spine-registration [a placeholder].",
)
def schema(target: str, kind: str, endpoint: str | None) -> None:
    """Print the schema of the tool in TARGET, in one of several formats."""
    from ai_spine_tools.core._loader import load_tool
    from ai_spine_tools.interop._export import mcp_tool
    from ai_spine_tools.interop._openapi import openapi_document
    from ai_spine_tools.interop._registration import spine_registration

    try:
        tool = load_tool(target)
        document: dict[str, Any]
        if kind == "openapi":
            document = openapi_document(tool, auth=False)
        elif kind == "json-schema":
            document = tool.json_schema()
        elif kind == "openai":
            document = tool.to_openai_tool()
        elif kind == "anthropic":
            document = tool.to_anthropic_tool()
        elif kind == "mcp":
            document = mcp_tool(tool)
        else:
            document = spine_registration(tool, endpoint)
    except ToolError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@main.command()
@click.argument("target")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error", "critical"]),
    default=None,
    help="Level of the log lines written to stderr [AI_SPINE_LOG_LEVEL, warning].",
)
def mcp(target: str, log_level: str | None) -> None:
    """Serve the tool in TARGET over MCP on stdin and stdout, for desktop agents.

    The agent starts this command itself; configure it with the command and its arguments,
    e.g. ai-spine mcp /path/to/tool.py. Settings come from the environment, as for serve; logs
    go to stderr.
    """
    import contextlib
    import logging

    from ai_spine_tools.core._loader import load_tool
    from ai_spine_tools.core._settings import ServerSettings
    from ai_spine_tools.interop._mcp import serve_stdio

    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the protocol alone
        tool = load_tool(target)
    settings = ServerSettings.from_env()
    _check_environment(tool)
    level = (log_level or os.environ.get("AI_SPINE_LOG_LEVEL") or "warning").upper()
    logging.basicConfig(
        stream=sys.stderr, level=level, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve_stdio(tool, settings))
    except RuntimeError as exc:  # the tool's start-up failed (its setup raised)
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


@main.command()
@click.argument("target", required=False)
@click.option("--input", "input_json", default=None, help="input_data as a JSON object.")
@click.option("--config", "config_json", default=None, help="Config as a JSON object.")
@click.option(
    "--duration",
    type=click.FloatRange(0.5, 3600),
    default=20.0,
    show_default=True,
    help="Seconds of load while sampling.",
)
@click.option("--users", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="profile.html",
    show_default=True,
    help=".html: pyinstrument, in-process; .svg: a py-spy flame graph (needs root or ptrace).",
)
@click.option("--server", is_flag=True, help="Profile a local server of TARGET (py-spy, .svg).")
@click.option("--url", default=None, help="Load a running loopback server (with --pid, .svg).")
@click.option("--pid", type=int, default=None, help="The process py-spy samples (with --url).")
def profile(
    target: str | None,
    input_json: str | None,
    config_json: str | None,
    duration: float,
    users: int,
    out: str,
    server: bool,
    url: str | None,
    pid: int | None,
) -> None:
    """Profile the tool in TARGET under a bounded load; write a profile and print the top frames.

    In-process by default; --server starts a local server of TARGET and samples it with py-spy;
    --url and --pid load and sample a server you run. Needs the [profile] extra.
    """
    from ai_spine_tools.cli._localserver import local_server
    from ai_spine_tools.cli._profile import profile_tool
    from ai_spine_tools.core._loader import load_tool
    from ai_spine_tools.testing import ensure_loopback, valid_input

    path = Path(out)
    try:
        tool = load_tool(target) if target is not None else None
        data = _json_object(input_json, "--input") if input_json is not None else None
        if data is None:
            if tool is None:
                raise click.UsageError("give TARGET or --input")
            data = valid_input(tool)
        config = _json_object(config_json, "--config") if config_json is not None else None
        if url is not None:
            ensure_loopback(url)
            if pid is None and path.suffix == ".svg":
                raise click.UsageError("--url with a .svg profile needs --pid (the server's)")
        if server:
            if target is None:
                raise click.UsageError("--server needs TARGET")
            if path.suffix != ".svg":
                path = path.with_suffix(".svg")
            with local_server(target) as running:
                result = profile_tool(
                    None,
                    data,
                    out=path,
                    duration=duration,
                    users=users,
                    url=running.url,
                    pid=running.pid,
                    config=config,
                )
        else:
            result = profile_tool(
                tool,
                data,
                out=path,
                duration=duration,
                users=users,
                url=url,
                pid=pid,
                config=config,
            )
    except (ToolError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(getattr(exc, "message", exc))) from None
    click.echo(result.summary())


@main.command()
@click.argument("target")
@click.option("--input", "input_json", default=None, help="input_data as a JSON object.")
@click.option("--config", "config_json", default=None, help="Config as a JSON object.")
@click.option("--duration", type=click.FloatRange(1, 600), default=10.0, show_default=True)
@click.option("--users", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option(
    "--in-process", "in_process", is_flag=True, help="Serve the tool in this process instead."
)
@click.option("--url", default=None, help="Examine a server already running on this machine.")
def doctor(
    target: str,
    input_json: str | None,
    config_json: str | None,
    duration: float,
    users: int,
    in_process: bool,
    url: str | None,
) -> None:
    """Start the tool in TARGET, load it briefly and report what to fix, in plain words.

    Checks the performance guide's targets (p99 under 200 ms, over 100 requests/s, under 100 MB
    at rest, errors under 1%) and its common problems: blocking work on the event loop, memory
    growth, pool and queue pressure, CPU. Exit status 1 when a target is missed.
    """
    import contextlib

    from ai_spine_tools.cli import _doctor
    from ai_spine_tools.cli._localserver import local_server
    from ai_spine_tools.core._loader import load_tool
    from ai_spine_tools.testing import ensure_loopback, valid_input

    try:
        tool = load_tool(target)
        data = _json_object(input_json, "--input") if input_json else valid_input(tool)
        config = _json_object(config_json, "--config") if config_json else None
        if url is not None:
            ensure_loopback(url)
        mode = "in-process" if in_process else ("at " + url if url else "local server")
        click.echo(
            f"Examining {tool.name} {tool.version} ({mode}): {users} users for {duration:g} s ...",
            err=True,
        )
        with contextlib.ExitStack() as stack:
            subject: Any = tool if in_process else url
            if subject is None:
                subject = stack.enter_context(local_server(target)).url
            report, before, samples, health = asyncio.run(
                _doctor.diagnose(subject, data, users=users, duration=duration, config=config)
            )
    except (ToolError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(getattr(exc, "message", exc))) from None
    sections = _doctor.findings(report, before, samples, health, in_process=in_process)
    title = (
        f"ai-spine doctor: {tool.name} {tool.version} ({mode}), {users} users, "
        f"{duration:g} s, no think time; /health {health.get('status', '?')}"
    )
    click.echo(_doctor.render(title, sections))
    sys.exit(1 if any(True for _ in _doctor.problems(sections)) else 0)


def _json_object(text: str, name: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=name) from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=name)
    return value
