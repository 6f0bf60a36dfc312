"""The commands that put a tool under load: ``load``, ``profile`` and ``doctor``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from ai_spine_tools.cli._group import user_errors
from ai_spine_tools.cli._params import JSON_OBJECT, TOOL_FILE, LoadedTool

__all__ = ["doctor", "load", "profile"]


@click.command()
@click.argument("target", type=TOOL_FILE, required=False)
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
    "input_data",
    type=JSON_OBJECT,
    default=None,
    help="input_data as a JSON object [a valid input generated from the schema].",
)
@click.option("--config", type=JSON_OBJECT, default=None, help="Config as a JSON object.")
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
    target: LoadedTool | None,
    users: int,
    duration: float,
    max_requests: int | None,
    think_time: str,
    input_data: dict[str, Any] | None,
    config: dict[str, Any] | None,
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
    with user_errors():
        tool = target.tool if target is not None else None
        subject: Tool | str
        if url is not None:
            subject = ensure_loopback(url)
        elif tool is not None:
            subject = tool
        else:
            raise click.UsageError("give the tool file (TARGET), --url, or both")
        data = input_data
        if data is None and tool is not None:
            data = valid_input(tool)
        if data is None:
            raise click.UsageError("give --input (or TARGET, to generate one) with --url")

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
    except ValueError as exc:  # an argument load_test refuses
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


@click.command()
@click.argument("target", type=TOOL_FILE, required=False)
@click.option(
    "--input", "input_data", type=JSON_OBJECT, default=None, help="input_data as a JSON object."
)
@click.option("--config", type=JSON_OBJECT, default=None, help="Config as a JSON object.")
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
    target: LoadedTool | None,
    input_data: dict[str, Any] | None,
    config: dict[str, Any] | None,
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
    from ai_spine_tools.testing import ensure_loopback, valid_input

    path = Path(out)
    with user_errors():
        tool = target.tool if target is not None else None
        data = input_data
        if data is None:
            if tool is None:
                raise click.UsageError("give TARGET or --input")
            data = valid_input(tool)
        if url is not None:
            ensure_loopback(url)
            if pid is None and path.suffix == ".svg":
                raise click.UsageError("--url with a .svg profile needs --pid (the server's)")
        if server:
            if target is None:
                raise click.UsageError("--server needs TARGET")
            if path.suffix != ".svg":
                path = path.with_suffix(".svg")
            with local_server(target.target) as running:
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
    click.echo(result.summary())


@click.command()
@click.argument("target", type=TOOL_FILE)
@click.option(
    "--input", "input_data", type=JSON_OBJECT, default=None, help="input_data as a JSON object."
)
@click.option("--config", type=JSON_OBJECT, default=None, help="Config as a JSON object.")
@click.option("--duration", type=click.FloatRange(1, 600), default=10.0, show_default=True)
@click.option("--users", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option(
    "--in-process", "in_process", is_flag=True, help="Serve the tool in this process instead."
)
@click.option("--url", default=None, help="Examine a server already running on this machine.")
def doctor(
    target: LoadedTool,
    input_data: dict[str, Any] | None,
    config: dict[str, Any] | None,
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
    from ai_spine_tools.testing import ensure_loopback, valid_input

    tool = target.tool
    with user_errors():
        data = input_data if input_data is not None else valid_input(tool)
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
                subject = stack.enter_context(local_server(target.target)).url
            report, before, samples, health = asyncio.run(
                _doctor.diagnose(subject, data, users=users, duration=duration, config=config)
            )
    sections = _doctor.findings(report, before, samples, health, in_process=in_process)
    title = (
        f"ai-spine doctor: {tool.name} {tool.version} ({mode}), {users} users, "
        f"{duration:g} s, no think time; /health {health.get('status', '?')}"
    )
    click.echo(_doctor.render(title, sections))
    sys.exit(1 if any(True for _ in _doctor.problems(sections)) else 0)
