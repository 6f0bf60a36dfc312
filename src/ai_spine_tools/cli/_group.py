"""The ``ai-spine`` command group and its one error handler."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

from ai_spine_tools._version import __version__
from ai_spine_tools.exceptions import ToolError, UnknownSettingError

__all__ = ["main", "user_errors", "warn_about_environment"]

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


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Within it, a ``ValueError`` or ``RuntimeError`` is the user's to fix (a URL that is not
    loopback, a server that did not start): one line, like a ``ToolError``, with no hint of a
    traceback."""
    try:
        yield
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None


def warn_about_environment(tool: Any) -> None:
    """Warn on stderr about variables that look like settings but are none; raise
    ``UnknownSettingError`` for a near miss of a security setting."""
    from ai_spine_tools.server._startup import check_tool_environment

    for problem in check_tool_environment(tool):
        click.echo(f"Warning: {problem.message}", err=True)
