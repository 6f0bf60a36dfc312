"""Every example in docs/ runs: each Python block of a page in order in one namespace, each shell
block as a script, each against the code as it is now; a block that cannot run alone says so.

A directive on the line before a fence changes how its block is tried:

- ``<!-- docs: fragment REASON -->`` leaves it out (the reason is required and shown here);
- ``<!-- docs: file NAME -->`` writes it to NAME in the page's directory instead of running it;
- ``<!-- docs: server [NAME=VALUE ...] TARGET [ARGS] -->`` runs ``ai-spine serve TARGET ARGS``
  (with those environment variables) around it, with
  ``localhost:3000`` and ``127.0.0.1:3000`` in the block pointing at that server;
- ``<!-- docs: pytest -->`` runs it as a test module under pytest, in a subprocess;
- ``<!-- docs: output -->`` (on a JSON block) compares it with what the last shell block printed;
- ``<!-- docs: equals EXPRESSION -->`` (on a JSON block) compares it with the expression's value
  in the page's namespace.

Python blocks may ``await`` at top level; a block's ``test_*`` functions without parameters are
called after it. Shell blocks run with ``bash -e`` in a fresh directory holding ``examples/`` and
``tests/``.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import linecache
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ai_spine_tools.testing import load_test
from docsimages import IMAGES, publish
from serverproc import EXAMPLES, running_server

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "reference" not in p.parts)
RUN = {"python", "bash", "console", "sh", "shell"}
"""Languages whose blocks run (or say why not); json, yaml, text and the like are shown only."""

_FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)
_DIRECTIVE = re.compile(r"<!--\s*docs:\s*(?P<kind>[\w-]+)\s*(?P<arg>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    code: str
    directive: str = ""
    argument: str = ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, with the directive on the line before each."""
    text = page.read_text()
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        directive = _DIRECTIVE.search(before)
        indent = len(match["indent"])
        code = "\n".join(line[indent:] for line in match["body"].split("\n"))
        found.append(
            Block(
                page,
                text.count("\n", 0, match.start()) + 1,
                match["lang"].lower(),
                code,
                directive["kind"] if directive else "",
                directive["arg"] if directive else "",
            )
        )
    return found


ALL = [block for page in PAGES for block in blocks(page)]
TRIED = [b for b in ALL if b.lang in RUN and b.directive != "fragment"]
FRAGMENTS = [b for b in ALL if b.directive == "fragment"]


def test_the_docs_have_examples_and_every_directive_is_known() -> None:
    assert len(PAGES) > 20
    assert len(TRIED) > 60, len(TRIED)
    known = {"fragment", "file", "server", "pytest", "output", "equals", ""}
    assert [b.where for b in ALL if b.directive not in known] == []
    assert [b.where for b in FRAGMENTS if not b.argument] == [], "a fragment needs a reason"
    compared = [b for b in ALL if b.directive in ("output", "equals")]
    assert [b.where for b in compared if b.lang != "json"] == []


@contextmanager
def _server(block: Block) -> Iterator[str]:
    words = shlex.split(block.argument)
    env = dict(word.split("=", 1) for word in words if "=" in word and word[0].isupper())
    target, *args = [word for word in words if word.split("=", 1)[0] not in env]
    with running_server(target, *args, env=env) as server:
        yield server.url.removeprefix("http://")


def _pointed(code: str, address: str | None) -> str:
    if address is None:
        return code
    return code.replace("localhost:3000", address).replace("127.0.0.1:3000", address)


def _run_python(block: Block, namespace: dict[str, Any], address: str | None) -> None:
    name = f"<docs {block.where}>"
    source = _pointed(block.code, address)
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)  # tracebacks
    code = compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    before = set(namespace)
    result = eval(code, namespace)  # top-level await makes it a coroutine
    if inspect.iscoroutine(result):
        asyncio.run(result)
    for key in sorted(set(namespace) - before):
        function = namespace[key]
        if (
            key.startswith("test_")
            and inspect.isfunction(function)
            and function.__code__.co_filename == name
            and not inspect.signature(function).parameters
        ):
            outcome = function()
            if inspect.iscoroutine(outcome):
                asyncio.run(outcome)


def _run_pytest(block: Block, directory: Path) -> None:
    module = directory / f"test_docs_example_{block.line}.py"
    module.write_text(block.code)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)],
        cwd=directory,
        env=_environment(directory),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{block.where}:\n{done.stdout}\n{done.stderr}"
    assert " passed" in done.stdout


def _environment(directory: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    environment["PYTHONPATH"] = os.pathsep.join([str(directory), str(ROOT / "examples")])
    return environment


def _run_shell(block: Block, directory: Path, address: str | None) -> str:
    if block.lang == "console":  # the lines after a prompt (and their continuations) run
        commands, going_on = [], False
        for line in block.code.splitlines():
            if line.startswith("$ ") or going_on:
                commands.append(line.removeprefix("$ "))
                going_on = line.endswith("\\")
        script = "\n".join(commands)
    else:
        script = block.code
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", _pointed(script, address)],
        cwd=directory,
        env=_environment(directory),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (
        f"{block.where} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_example_of_the_page_runs(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for shared in ("examples", "tests"):
        (tmp_path / shared).symlink_to(ROOT / shared)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    try:
        _run_page(page, tmp_path, namespace)
    finally:
        namespace.clear()  # what the page made (breakers, tools) goes now, not at the next gc


def _run_page(page: Path, tmp_path: Path, namespace: dict[str, Any]) -> None:
    printed = ""
    for block in blocks(page):
        if block.directive == "fragment":
            continue
        if block.directive == "file":
            (tmp_path / block.argument).write_text(block.code)
            continue
        if block.directive == "output":
            assert json.loads(block.code) == json.loads(printed), block.where
            continue
        if block.directive == "equals":
            assert json.loads(block.code) == eval(block.argument, namespace), block.where
            continue
        if block.lang not in RUN:
            continue
        with ExitStack() as stack:
            address = stack.enter_context(_server(block)) if block.directive == "server" else None
            if block.directive == "pytest":
                _run_pytest(block, tmp_path)
            elif block.lang == "python":
                _run_python(block, namespace, address)
            else:
                printed = _run_shell(block, tmp_path, address)


def test_the_load_test_chart_is_drawn(tmp_path: Path) -> None:
    with running_server(EXAMPLES / "weather.py") as server:
        report = asyncio.run(
            load_test(
                server.url,
                {"city": "Madrid"},
                concurrent_users=20,
                duration=4,
                think_time=(0, 0.01),
                seed=1,
            )
        )
    assert report.errors == 0
    assert len(report.timeline) >= 4
    chart = tmp_path / "load-test.png"
    report.plot(chart)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    publish(chart, "load-test.png")


def test_the_images_the_docs_show_are_there() -> None:
    linked = re.compile(r"\(\.\./images/([\w.-]+)\)")
    shown = {name for page in PAGES for name in linked.findall(page.read_text())}
    assert {"dashboard.png", "load-test.png"} <= shown
    assert all((IMAGES / name).read_bytes()[:4] == b"\x89PNG" for name in shown)
