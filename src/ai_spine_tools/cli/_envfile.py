"""``--env-file``: settings from a dotenv file (``KEY=value`` lines), read with python-dotenv.

A variable already set in the environment wins over the file, so ``PORT=4000 make serve``
still means port 4000. The option is eager: the values go into ``os.environ`` before TARGET is
loaded, wherever the option stands on the command line, so the tool's config fields, the
server's settings and every worker process see them.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ai_spine_tools.exceptions import ServerConfigurationError

__all__ = ["ENV_FILE", "load_env_file"]


def load_env_file(path: str | Path) -> list[str]:
    """Set each variable of the file at ``path`` that the environment lacks; return their names.

    Raises ``ServerConfigurationError`` when the file cannot be read.
    """
    from dotenv import dotenv_values

    file = Path(path)
    if not file.is_file():
        raise ServerConfigurationError(f"--env-file {path}: no such file")
    try:
        values = dotenv_values(file)
    except (OSError, UnicodeDecodeError) as exc:
        raise ServerConfigurationError(f"--env-file {path}: cannot be read ({exc})") from None
    added = []
    for key, value in values.items():
        if value is not None and key not in os.environ:
            os.environ[key] = value
            added.append(key)
    return added


def _load(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        try:
            load_env_file(value)
        except ServerConfigurationError as exc:
            raise click.BadParameter(exc.message, ctx, param) from None


ENV_FILE = click.option(
    "--env-file",
    metavar="PATH",
    default=None,
    is_eager=True,  # before TARGET, which loads the tool as it is read
    expose_value=False,
    callback=_load,
    help="Read settings from this dotenv file (variables already set win).",
)
