"""``ai-spine new``: generate a ready tool project from the templates shipped in the package.

Templates are real files under ``ai_spine_tools/templates``: Python files are valid, linted code for
a project named ``my-tool`` (package ``my_tool``), so rendering is a replacement of those names.
Files ending in ``.tmpl`` also take ``string.Template`` placeholders (``${sdk}``, ``${env}``, ...).
``common/`` holds what every project gets; a template's own folder adds to it or overrides it.

The project depends on this SDK as it was installed (``sdk_requirement``): from an index, by name
and a compatible version range; from a wheel, a directory or a VCS URL (PEP 610's
``direct_url.json``), by that very reference, so ``make test`` never asks an index for it.
"""

from __future__ import annotations

import contextlib
import json
import re
import string
import subprocess
import textwrap
from dataclasses import dataclass
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ai_spine_tools.exceptions import ToolDefinitionError

__all__ = ["TEMPLATES", "Template", "render_project", "sdk_requirement"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_RENAMES = {
    "gitignore": ".gitignore",
    "dockerignore": ".dockerignore",
    "env.example": ".env.example",
    "src_init.py": "src/my_tool/__init__.py",
}


@dataclass(frozen=True, slots=True)
class Template:
    """One kind of project: what it shows, its extras, an example input, its settings."""

    name: str
    summary: str
    example: str
    """The input the generated README's curl sends (it must pass the tool's schema)."""
    extras: str = ""
    env: tuple[tuple[str, str], ...] = ()
    """Settings of the Kubernetes deployment (values for a cluster)."""
    local_env: tuple[tuple[str, str], ...] = ()
    """The same settings in ``.env.example``, with values for a development machine."""
    services: str = ""
    """What the generated README says about the service the tool needs."""


TEMPLATES = {
    t.name: t
    for t in (
        Template(
            "basic",
            "text processing, no dependencies",
            example='{"text": "The quick brown fox jumps over the lazy dog."}',
        ),
        Template(
            "http-api",
            "an outbound HTTP API with a pooled client, retries and a circuit breaker",
            example='{"latitude": 40.42, "longitude": -3.7}',
            env=(("WEATHER_API_URL", "https://api.open-meteo.com/v1/forecast"),),
            local_env=(("WEATHER_API_URL", "https://api.open-meteo.com/v1/forecast"),),
            services=(
                "The tool asks the forecast API at `WEATHER_API_URL` (Open-Meteo by default, no "
                "key needed). Its tests never do: they answer `context.http` with canned "
                "responses (`HTTPStub`) or a local server of their own.\n"
            ),
        ),
        Template(
            "database",
            "PostgreSQL through a connection pool",
            example='{"prefix": "Mad"}',
            extras="[postgres]",
            env=(("DATABASE_URL", "postgresql://tool@postgres:5432/tool"),),
            local_env=(("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),),
            services=(
                "The tool needs PostgreSQL: set `DATABASE_URL` (in `.env` for `make serve`; "
                "exported in the shell for `make test`, e.g. `DATABASE_URL=postgresql://"
                "postgres@127.0.0.1:5432/postgres make test`). Without it the database tests "
                "are skipped, and the skip says so. The tool reads the table `my_tool_cities` "
                "(`MY_TOOL_TABLE` to change it), which it creates if missing; the tests work "
                "in a table of their own, which they create and drop, and touch nothing "
                "else.\n"
            ),
        ),
        Template(
            "suite",
            "two tools served together, each under its name",
            example='{"text": "One fish. Two fish. Red fish, blue fish."}',
        ),
        Template(
            "cached",
            "result caching in memory and Redis",
            example='{"number": 360}',
            extras="[redis]",
            env=(("REDIS_URL", "redis://my-tool-redis:6379/0"),),
            local_env=(("REDIS_URL", "redis://127.0.0.1:6379/0"),),
            services=(
                "Results are cached in memory, and in Redis when `REDIS_URL` is set (in `.env` "
                "for `make serve`; exported in the shell for `make test`, e.g. `REDIS_URL="
                "redis://127.0.0.1:6379/0 make test`). Without it the test of the shared cache "
                "is skipped, and the skip says so.\n"
            ),
        ),
    )
}


def render_project(
    name: str,
    *,
    template: str = "basic",
    directory: Path | None = None,
    git: bool = True,
    sdk: str | None = None,
) -> Path:
    """Write a new project called ``name`` into ``directory`` (default ``./name``); return it.

    ``sdk`` is how the project depends on ai-spine-tools (see ``sdk_requirement``; default:
    as this SDK was installed). Raises ``ToolDefinitionError`` for an invalid name, an unknown
    template, a bad ``sdk`` or a target that already exists and is not empty.
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
    requirement = sdk_requirement(chosen.extras, sdk)
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
        "sdk": json.dumps(requirement),
        "sdk_testing": json.dumps(sdk_requirement(_with_testing(chosen.extras), sdk)),
        "summary": chosen.summary,
        "example": chosen.example,
        "services": chosen.services and f"\n{textwrap.fill(chosen.services, 96)}\n",
        "env": "".join(
            f'            - name: {key}\n              value: "{value}"\n'
            for key, value in chosen.env
        ),
    }
    for relative, text in files.items():
        if relative.endswith(".tmpl"):
            relative = relative.removesuffix(".tmpl")
            text = string.Template(text).safe_substitute(values)
        text = (
            text.replace("my-tool", name)
            .replace("my_tool", package)
            .replace("MY_TOOL", package.upper())
            .replace("My Tool", title)
        )
        path = target / relative.replace("my_tool", package)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if git:
        _git_init(target)
    return target


def sdk_requirement(extras: str = "", spec: str | None = None) -> str:
    """The requirement a new project puts on ai-spine-tools (``extras`` like ``[postgres]``).

    ``spec`` (``--sdk``) may be a version range (``>=0.2,<0.3``), a full requirement
    (``ai-spine-tools==0.2.1``), a URL (``git+https://...``, ``https://.../x.whl``) or a local
    wheel or source directory. Without it, the SDK's own install decides: from a wheel, a
    directory or a VCS checkout, that reference (PEP 610); from an index, a compatible range.
    """
    name = f"ai-spine-tools{extras}"
    if spec is not None:
        return _from_spec(name, spec.strip())
    try:
        dist = metadata.distribution("ai-spine-tools")
    except metadata.PackageNotFoundError:  # running from a source tree without installing
        from ai_spine_tools._version import __version__

        return f"{name}{_compatible(__version__)}"
    direct = dist.read_text("direct_url.json")
    if direct:
        url = _direct_reference(json.loads(direct))
        if url is not None:
            return f"{name} @ {url}"
    return f"{name}{_compatible(dist.version)}"


def _from_spec(name: str, spec: str) -> str:
    if not spec:
        raise ToolDefinitionError("--sdk is empty: give a version range, a URL or a path")
    if spec[0] in "<>=!~":
        return f"{name}{spec}"
    named = re.fullmatch(r"ai[-_.]spine[-_.]tools\s*(?:\[([^\]]*)\])?(.*)", spec, re.I | re.S)
    if named is not None:  # a requirement: the template's extras join those it names
        given = [e.strip() for e in (named.group(1) or "").split(",") if e.strip()]
        wanted = [e for e in name.removeprefix("ai-spine-tools").strip("[]").split(",") if e]
        extras = sorted(set(given) | set(wanted))
        return f"ai-spine-tools{'[' + ','.join(extras) + ']' if extras else ''}{named.group(2)}"
    if re.match(r"^[a-z][a-z0-9+.-]*://", spec, re.IGNORECASE):
        return f"{name} @ {spec}"
    path = Path(spec).expanduser().resolve()
    if (path.is_file() and path.suffix == ".whl") or (path / "pyproject.toml").is_file():
        return f"{name} @ {path.as_uri()}"
    raise ToolDefinitionError(
        f"--sdk {spec!r} is neither a version range (>=0.1,<0.2), a requirement, a URL, "
        "a wheel file nor a source directory with a pyproject.toml"
    )


def _direct_reference(info: dict[str, object]) -> str | None:
    """The URL pip can install again, from a PEP 610 ``direct_url.json``."""
    url = info.get("url")
    if not isinstance(url, str):
        return None
    vcs = info.get("vcs_info")
    if isinstance(vcs, dict):
        commit = vcs.get("commit_id") or vcs.get("requested_revision")
        tail = f"@{commit}" if commit else ""
        subdirectory = info.get("subdirectory")
        fragment = f"#subdirectory={subdirectory}" if subdirectory else ""
        return f"{vcs.get('vcs', 'git')}+{url}{tail}{fragment}"
    return url


def _compatible(version: str) -> str:
    """``>=X.Y.Z,<X+1`` (``<0.Y+1`` before 1.0): the releases with a compatible API."""
    parts = [*re.findall(r"\d+", version)[:2], "0", "0"]
    major, minor = int(parts[0]), int(parts[1])
    upper = f"{major + 1}" if major else f"0.{minor + 1}"
    return f">={version},<{upper}"


def _with_testing(extras: str) -> str:
    names = [e for e in extras.strip("[]").split(",") if e]
    return "[" + ",".join([*names, "testing"]) + "]"


def env_example(template: Template) -> str:
    """Return the ``.env.example`` listing every setting the server reads, with defaults."""
    from ai_spine_tools._variables import DOCUMENTED_SETTINGS

    lines = ["# Every setting the tool server reads; uncomment to change it.", ""]
    for variable, default, meaning in DOCUMENTED_SETTINGS:
        lines.append(f"# {meaning}")
        lines.append(f"# {variable}={default}")
    if template.local_env:
        lines += ["", "# This tool's own settings"]
        lines += [f"{key}={value}" for key, value in template.local_env]
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
