"""``ai-spine new``: generate a ready tool project from the templates shipped in the package.

Templates are real files under ``ai_spine_tools/templates``: Python files are valid, linted code for
a project named ``my-tool`` (package ``my_tool``), so rendering is a replacement of those names.
Files ending in ``.tmpl`` also take ``string.Template`` placeholders (``${extras}``, ``${env}``).
``common/`` holds what every project gets; a template's own folder adds to it or overrides it.
"""

from __future__ import annotations

import contextlib
import re
import string
import subprocess
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ai_spine_tools.exceptions import ToolDefinitionError

__all__ = ["TEMPLATES", "Template", "render_project"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_RENAMES = {
    "gitignore": ".gitignore",
    "dockerignore": ".dockerignore",
    "env.example": ".env.example",
    "src_init.py": "src/my_tool/__init__.py",
}


@dataclass(frozen=True, slots=True)
class Template:
    """One kind of project: what it shows, its extras and its deployment environment."""

    name: str
    summary: str
    extras: str = ""
    env: tuple[tuple[str, str], ...] = ()


TEMPLATES = {
    t.name: t
    for t in (
        Template("basic", "text processing, no dependencies"),
        Template(
            "http-api",
            "an outbound HTTP API with a pooled client, retries and a circuit breaker",
            env=(("WEATHER_API_URL", "https://api.open-meteo.com/v1/forecast"),),
        ),
        Template(
            "database",
            "PostgreSQL through a connection pool",
            extras="[postgres]",
            env=(("DATABASE_URL", "postgresql://tool@postgres:5432/tool"),),
        ),
        Template(
            "cached",
            "result caching in memory and Redis",
            extras="[redis]",
            env=(("REDIS_URL", "redis://my-tool-redis:6379/0"),),
        ),
    )
}


def render_project(
    name: str, *, template: str = "basic", directory: Path | None = None, git: bool = True
) -> Path:
    """Write a new project called ``name`` into ``directory`` (default ``./name``); return it.

    Raises ``ToolDefinitionError`` for an invalid name, an unknown template or a target that
    already exists and is not empty.
    """
    if not _NAME.fullmatch(name) or len(name) > 64:
        raise ToolDefinitionError(
            f"invalid project name {name!r}: use lowercase letters, digits and single hyphens, "
            "starting with a letter (e.g. 'weather-lookup')"
        )
    chosen = TEMPLATES.get(template)
    if chosen is None:
        raise ToolDefinitionError(
            f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}"
        )
    target = (directory or Path(name)).resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ToolDefinitionError(f"{target} already exists and is not empty")
    package = name.replace("-", "_")
    title = name.replace("-", " ").title()
    root = resources.files("ai_spine_tools") / "templates"
    files: dict[str, str] = {}
    for folder in ("common", template):
        for relative, text in _walk(root / folder):
            files[_RENAMES.get(relative, relative)] = text
    files[".env.example"] = env_example(chosen)
    values = {
        "extras": chosen.extras,
        "env": "".join(
            f'            - name: {key}\n              value: "{value}"\n'
            for key, value in chosen.env
        ),
    }
    for relative, text in files.items():
        if relative.endswith(".tmpl"):
            relative = relative.removesuffix(".tmpl")
            text = string.Template(text).safe_substitute(values)
        text = text.replace("my-tool", name).replace("my_tool", package).replace("My Tool", title)
        path = target / relative.replace("my_tool", package)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if git:
        _git_init(target)
    return target


def env_example(template: Template) -> str:
    """Return the ``.env.example`` listing every setting the server reads, with defaults."""
    from ai_spine_tools._settings import DOCUMENTED_SETTINGS

    lines = ["# Every setting the tool server reads; uncomment to change it.", ""]
    for variable, default, meaning in DOCUMENTED_SETTINGS:
        lines.append(f"# {meaning}")
        lines.append(f"# {variable}={default}")
    if template.env:
        lines += ["", "# This template's own settings"]
        lines += [f"{key}={value}" for key, value in template.env]
    return "\n".join(lines) + "\n"


def _walk(folder: Traversable, prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if not folder.is_dir():
        return out
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__" or entry.name.endswith(".pyc"):
            continue
        relative = f"{prefix}{entry.name}"
        if entry.is_dir():
            out += _walk(entry, relative + "/")
        else:
            out.append((relative, entry.read_text()))
    return out


def _git_init(target: Path) -> None:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):  # git is optional
        subprocess.run(["git", "init", "-q"], cwd=target, check=True, capture_output=True)
