"""``import ai_spine_tools`` stays light: no optional package, no server, CLI or testing code."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

HEAVY = [
    "starlette",
    "uvicorn",
    "redis",
    "asyncpg",
    "tenacity",
    "click",
    "httpx",
    "aiohttp",
    "yarl",
    "prometheus_client",
    "mcp",
    "granian",
    "re2",
    "opentelemetry",
    "ai_spine_tools.testing",
    "ai_spine_tools.cli",
]


@pytest.fixture(scope="module")
def loaded() -> set[str]:
    code = "import ai_spine_tools, json, sys; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("module", HEAVY)
def test_import_does_not_load(loaded: set[str], module: str) -> None:
    assert not {name for name in loaded if name == module or name.startswith(module + ".")}


def test_public_names_are_sorted_and_importable() -> None:
    import ai_spine_tools

    assert ai_spine_tools.__all__ == sorted(ai_spine_tools.__all__)
    for name in ai_spine_tools.__all__:
        assert hasattr(ai_spine_tools, name), name


def test_the_all_extra_installs_every_extra_a_user_can_use() -> None:
    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    [everything] = extras["all"]
    named = set(everything.split("[", 1)[1].rstrip("]").split(","))
    assert named == set(extras) - {"all", "dev"}
