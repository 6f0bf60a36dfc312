"""The start-up check of the uvicorn hooks the protocol relies on: silent when all are there; one
warning, and every route still served (through uvicorn's h11), when one is missing or changed;
and the protocol tests run again on the newest uvicorn on PyPI, so a new release is seen the day
it lands."""

from __future__ import annotations

import inspect
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from uvicorn.protocols.http import flow_control, httptools_impl

from ai_spine_tools.server import _uvicorn_hooks as hooks
from ai_spine_tools.server._protocol import GuardedHTTPProtocol
from serverproc import EXAMPLES, free_port

ROOT = Path(__file__).resolve().parent.parent
NEWEST = "AI_SPINE_NEWEST_UVICORN"
UNDER_TEST = "AI_SPINE_UVICORN_UNDER_TEST"  # set in the run on the newest uvicorn
REQUIRED = os.environ.get("AI_SPINE_REQUIRE_SERVICES") == "1"
# The protocol and server tests, run again on the newest uvicorn.
WIRE_TESTS = ["test_protocol.py", "test_direct_route.py", "test_uvicorn_hooks.py", "test_server.py"]


def test_the_installed_uvicorn_offers_every_hook() -> None:
    assert hooks.problems() == []
    assert hooks.http_protocol() is GuardedHTTPProtocol


def _gone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(httptools_impl.HttpToolsProtocol, "_start_asgi_task")


def _renamed_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    def on_body(self: Any, chunk: bytes) -> None: ...

    monkeypatch.setattr(httptools_impl.HttpToolsProtocol, "on_body", on_body)


def _new_flow_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flow_control.FlowControl, "pause_both", lambda self: None, raising=False)


def _own_callback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        httptools_impl.HttpToolsProtocol, "on_chunk_header", lambda self: None, raising=False
    )


def _changed_source(monkeypatch: pytest.MonkeyPatch) -> None:
    source = Path(httptools_impl.__file__).read_text()
    changed = source.replace("self.pipeline.pop()", "self.pipeline.popleft()")
    monkeypatch.setattr(inspect, "getsource", lambda module: changed)


def _changed_data_received(monkeypatch: pytest.MonkeyPatch) -> None:
    source = Path(httptools_impl.__file__).read_text()
    changed = source.replace('msg = "Invalid HTTP request received."', 'msg = "Bad request."')
    assert changed != source
    monkeypatch.setattr(inspect, "getsource", lambda module: changed)


def _reformatted_data_received(monkeypatch: pytest.MonkeyPatch) -> None:
    source = Path(httptools_impl.__file__).read_text()
    # Comments, blank lines and quotes are not the syntax tree: not a change.
    changed = source.replace(
        "        self._unset_keepalive_if_required()\n\n        try:\n",
        "        self._unset_keepalive_if_required()  # first\n        try:\n",
    )
    assert changed != source
    monkeypatch.setattr(inspect, "getsource", lambda module: changed)


def _unimportable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httptools", None)


@pytest.mark.parametrize(
    ("breakage", "named"),
    [
        (_gone, "HttpToolsProtocol._start_asgi_task is gone"),
        (_renamed_parameter, "HttpToolsProtocol.on_body('chunk',) is not on_body('body',)"),
        (_new_flow_method, "uvicorn's flow control now has pause_both"),
        (_own_callback, "HttpToolsProtocol now has on_chunk_header"),
        (_changed_source, "on_response_complete no longer uses self.pipeline.pop"),
        (_changed_data_received, "HttpToolsProtocol.data_received changed"),
        (_unimportable, "cannot import httptools"),
    ],
)
def test_a_missing_or_changed_hook_is_named(
    monkeypatch: pytest.MonkeyPatch, breakage: Any, named: str
) -> None:
    breakage(monkeypatch)
    assert any(named in problem for problem in hooks.problems()), hooks.problems()


def test_a_reformatted_method_is_no_change(monkeypatch: pytest.MonkeyPatch) -> None:
    _reformatted_data_received(monkeypatch)
    assert hooks.problems() == []


def test_on_a_mismatch_one_warning_and_uvicorns_own_protocol(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _gone(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="ai_spine_tools.server"):
        assert hooks.http_protocol() == "h11"
    (record,) = caplog.records
    message = record.getMessage()
    assert f"uvicorn {version('uvicorn')}" in message
    assert "_start_asgi_task is gone" in message
    assert "execute fast path, the read deadline (408)" in message


@pytest.mark.slow
def test_a_server_with_a_broken_hook_warns_once_and_serves_every_route() -> None:
    # The issue this guards against: a renamed hook made httptools answer 400 to everything.
    port = free_port()
    script = (
        "import sys, uvicorn.protocols.http.httptools_impl as impl; "
        "del impl.HttpToolsProtocol._unset_keepalive_if_required; "
        "from ai_spine_tools.cli import main; sys.argv[0] = 'ai-spine'; main()"
    )
    argv = [sys.executable, "-c", script, "serve", str(EXAMPLES / "weather.py")]
    process = subprocess.Popen(
        [*argv, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                health = httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    break
                time.sleep(0.05)
        executed = httpx.post(f"{url}/api/execute", json={"input_data": {"city": "Oslo"}})
        schema = httpx.get(f"{url}/schema")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    log = output.decode(errors="replace")
    assert (health.status_code, executed.status_code, schema.status_code) == (200, 200, 200)
    assert executed.json()["output_data"]["city"] == "Oslo"
    assert log.count("lacks or has changed what ai-spine-tools' HTTP protocol relies on") == 1
    assert "_unset_keepalive_if_required is gone" in log


# -- the newest uvicorn ----------------------------------------------------------------------


def test_the_uvicorn_under_test_is_the_one_asked_for() -> None:
    asked = os.environ.get(UNDER_TEST)
    if not asked:
        pytest.skip(f"runs inside the run on the newest uvicorn ({UNDER_TEST})")
    assert uvicorn.__version__ == asked == version("uvicorn")


def _newest_uvicorn() -> str | None:
    """The newest uvicorn release on the package index, or None when it cannot be reached."""
    try:
        found = subprocess.run(
            [sys.executable, "-m", "pip", "index", "versions", "uvicorn"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"^uvicorn \(([^)]+)\)", found.stdout, re.MULTILINE)
    return match.group(1) if found.returncode == 0 and match else None


_PIP_INSTALL = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]


def _installed(release: str) -> Path | None:
    """A folder holding uvicorn ``release`` alone (its dependencies are this environment's),
    kept between runs; None when it cannot be installed."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = cache / "ai-spine-tools" / f"uvicorn-{release}"
    if (folder / "uvicorn").is_dir():
        return folder
    partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
    done = subprocess.run(
        [*_PIP_INSTALL, "--target", str(partial), f"uvicorn=={release}"],
        capture_output=True,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        return None
    partial.rename(folder)
    return folder


@pytest.mark.slow
def test_the_protocol_tests_pass_on_the_newest_uvicorn() -> None:
    if os.environ.get(UNDER_TEST):
        pytest.skip("this is the run on the newest uvicorn")
    if os.environ.get(NEWEST) != "1" and not REQUIRED:
        pytest.skip(f"set {NEWEST}=1 to run the protocol tests on the newest uvicorn (CI does)")
    newest = _newest_uvicorn()
    folder = _installed(newest) if newest is not None else None
    if newest is None or folder is None:
        reason = "the package index cannot be reached to fetch the newest uvicorn"
        if REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)
    if newest == version("uvicorn"):
        return  # this very run is on the newest uvicorn
    path = os.pathsep.join(p for p in [str(folder), os.environ.get("PYTHONPATH")] if p)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
        + [str(ROOT / "tests" / name) for name in WIRE_TESTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": path, UNDER_TEST: newest},
    )
    assert run.returncode == 0, f"on uvicorn {newest}:\n{run.stdout[-6000:]}{run.stderr[-2000:]}"
