"""Check a built release (``scripts/build`` runs this).

``contents DIST``: one sdist and one wheel of the version ``_version.py`` says; the wheel holds
every file of the package (templates, the dashboard, ``py.typed``) and the console scripts and
pytest plugin entry points; the sdist holds the package, tests, README and CHANGELOG.

``smoke DIST [--venv DIR]``: install the wheel into a fresh virtual environment (only the
wheel: the source tree is not on its path) and try it as a user would: ``ai-spine --version``,
``ai-spine call`` and ``ai-spine serve`` on the weather example, ``ai-spine new`` of a project
that depends on that very wheel.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "ai_spine_tools"
ENTRY_POINTS = ("ai-spine = ", "create-ai-spine-tool = ", "ai_spine_tools = ")


def version() -> str:
    """The version, read from the one place it is set."""
    found = re.search(r'^__version__ = "([^"]+)"$', (PACKAGE / "_version.py").read_text(), re.M)
    if found is None:
        raise SystemExit("no __version__ in src/ai_spine_tools/_version.py")
    return found.group(1)


def package_files() -> set[str]:
    """Every file of the package in the source tree, as a path inside the wheel."""
    return {
        path.relative_to(PACKAGE.parent).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def check_contents(dist: Path) -> None:
    """Fail (exit 1, naming what is wrong) unless ``dist`` holds a complete release."""
    expected = version()
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    problems: list[str] = []
    if len(wheels) != 1 or len(sdists) != 1:
        raise SystemExit(f"expected one wheel and one sdist in {dist}, found {wheels + sdists}")
    wheel, sdist = wheels[0], sdists[0]
    if f"-{expected}-" not in wheel.name or not sdist.name.endswith(f"-{expected}.tar.gz"):
        problems.append(f"{wheel.name} / {sdist.name} do not carry version {expected}")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"ai_spine_tools-{expected}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    problems += [f"the wheel lacks {name}" for name in sorted(package_files() - names)]
    for name in ("ai_spine_tools/py.typed", "ai_spine_tools/static/dashboard.html"):
        if name not in names:
            problems.append(f"the wheel lacks {name}")
    if not any(n.startswith("ai_spine_tools/templates/http-api/") for n in names):
        problems.append("the wheel lacks the project templates")
    if f"\nVersion: {expected}\n" not in metadata:
        problems.append(f"the wheel's METADATA does not say Version: {expected}")
    problems += [
        f"entry_points.txt lacks {entry.strip(' =')}"
        for entry in ENTRY_POINTS
        if entry not in entry_points
    ]
    with tarfile.open(sdist) as archive:
        top = f"ai_spine_tools-{expected}"
        members = {name.removeprefix(f"{top}/") for name in archive.getnames()}
    for name in ("README.md", "CHANGELOG.md", "pyproject.toml", "tests/conftest.py"):
        if name not in members:
            problems.append(f"the sdist lacks {name}")
    problems += [f"the sdist lacks src/{name}" for name in sorted(package_files() - _src(members))]
    if problems:
        raise SystemExit("release check failed:\n  " + "\n  ".join(problems))
    print(f"{wheel.name}: {len(names)} files; {sdist.name}: {len(members)} files; contents ok")


def _src(members: set[str]) -> set[str]:
    return {name.removeprefix("src/") for name in members if name.startswith("src/")}


def smoke(dist: Path, home: Path | None) -> None:
    """Install the wheel into a fresh environment and use it; exit non-zero on any failure."""
    wheel = next(dist.glob("*.whl")).resolve()
    with tempfile.TemporaryDirectory(prefix="ai-spine-smoke-") as scratch:
        work = Path(scratch)
        home = home or work / "venv"
        venv.create(home, with_pip=True, clear=True)
        python, bin_dir = home / "bin" / "python", home / "bin"
        run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             str(wheel)], cwd=work)  # fmt: skip
        shown = run([str(bin_dir / "ai-spine"), "--version"], cwd=work)
        if version() not in shown:
            raise SystemExit(f"ai-spine --version printed {shown!r}, not {version()}")
        installed = run([str(python), "-c", _WHERE], cwd=work).strip()
        if not installed.startswith(str(home)):
            raise SystemExit(f"the smoke imported ai_spine_tools from {installed}, not the wheel")
        example = str(ROOT / "examples" / "weather.py")
        called = json.loads(
            run([str(bin_dir / "ai-spine"), "call", example, '{"city": "Madrid"}'], cwd=work)
        )
        if called.get("status") != "success":
            raise SystemExit(f"ai-spine call answered {called}")
        _serve(bin_dir / "ai-spine", example, work)
        project = work / "smoke-tool"
        run([str(bin_dir / "ai-spine"), "new", "smoke-tool", "--dir", str(project), "--no-git",
             "--yes"], cwd=work)  # fmt: skip
        if not (project / "src" / "smoke_tool" / "tool.py").is_file():
            raise SystemExit("ai-spine new wrote no src/smoke_tool/tool.py")
        pyproject = (project / "pyproject.toml").read_text()
        if wheel.as_uri() not in pyproject:
            raise SystemExit(f"the new project does not depend on {wheel.as_uri()}:\n{pyproject}")
    print(f"{wheel.name}: installed in a fresh venv; --version, call, serve and new work")


_WHERE = "import ai_spine_tools, os; print(os.path.dirname(ai_spine_tools.__file__))"


def _serve(command: Path, example: str, work: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}
    log = (work / "serve.log").open("w+")
    server = subprocess.Popen(
        [str(command), "serve", example], cwd=work, env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                raise SystemExit(f"ai-spine serve exited with {server.returncode}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("ai-spine serve did not answer /health within 30 s") from None
                time.sleep(0.1)
        request = urllib.request.Request(
            f"{base}/api/execute",
            data=b'{"input_data": {"city": "Madrid"}}',
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            answer = json.loads(reply.read())
        if answer.get("status") != "success":
            raise SystemExit(f"POST /api/execute answered {answer}")
    except SystemExit as failure:
        server.kill()
        server.wait(10)
        log.seek(0)
        raise SystemExit(f"{failure.code}\nai-spine serve printed:\n{log.read()}") from None
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        code = server.wait(30)
        log.close()
    if code != 0:
        raise SystemExit(f"ai-spine serve exited with {code} on SIGTERM")


def run(command: list[str], *, cwd: Path) -> str:
    """Run ``command`` outside the source tree; return its output, or exit with its error."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def main(argv: list[str]) -> None:
    """``contents DIST`` or ``smoke DIST [--venv DIR]``."""
    parser = argparse.ArgumentParser(prog="scripts/distcheck.py")
    parser.add_argument("step", choices=("contents", "smoke"))
    parser.add_argument("dist", type=Path)
    parser.add_argument("--venv", type=Path, default=None)
    options = parser.parse_args(argv)
    if options.step == "contents":
        check_contents(options.dist)
    else:
        smoke(options.dist, options.venv)


if __name__ == "__main__":
    main(sys.argv[1:])
