"""Run ``ai-spine serve TARGET`` as a child process on a free loopback port, for the diagnostic
commands (``ai-spine doctor``, ``ai-spine profile --server``) that need a real server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["LocalServer", "local_server"]


@dataclass(frozen=True, slots=True)
class LocalServer:
    """A running server: its base URL and process id."""

    url: str
    pid: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def local_server(
    target: str, *, env: Mapping[str, str] | None = None, ready_timeout: float = 30.0
) -> Iterator[LocalServer]:
    """Serve ``target`` on 127.0.0.1 until the block ends (SIGTERM, then kill if needed).

    Raises ``RuntimeError`` with the server's output when it does not become healthy.
    """
    port = _free_port()
    command = [sys.executable, "-m", "ai_spine_tools", "serve", target]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
        server = LocalServer(f"http://127.0.0.1:{port}", process.pid)
        try:
            deadline = time.monotonic() + ready_timeout
            while not _healthy(server.url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    output = log.read().decode(errors="replace")[-2000:]
                    raise RuntimeError(f"the server did not start:\n{output}")
                time.sleep(0.05)
            yield server
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
