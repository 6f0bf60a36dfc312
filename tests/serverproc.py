"""Start a real tool server in a subprocess on a free loopback port, for black-box tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

TOOLS = Path(__file__).resolve().parent / "tools"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A running server: its base URL, port and process."""

    url: str
    port: int
    process: subprocess.Popen[bytes]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the server and wait for it to exit; return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode

    def output(self) -> str:
        """Everything the server printed (only once it has exited)."""
        assert self.process.stdout is not None
        with self.process.stdout:
            return self.process.stdout.read().decode(errors="replace")


@contextmanager
def running_server(
    target: str | Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 30.0,
    command: str = "serve",
) -> Iterator[ServerProcess]:
    """Run ``ai-spine serve target`` (or ``command``) until the block ends (SIGTERM, then kill
    if needed)."""
    port = free_port()
    argv = ["-m", "ai_spine_tools", command, str(target), "--host", "127.0.0.1"]
    with _running([*argv, "--port", str(port), *args], port, env, ready_timeout) as server:
        yield server


# The reference for the SDK's own protocol: the tool's ASGI app on uvicorn as it comes.
_STOCK = (
    "import sys, uvicorn; from ai_spine_tools.core._loader import load_tool; "
    "uvicorn.run(load_tool(sys.argv[1]).asgi(), host='127.0.0.1', port=int(sys.argv[2]), "
    "http='httptools', log_level='warning')"
)


@contextmanager
def running_stock_uvicorn(
    target: str | Path, *, env: Mapping[str, str] | None = None, ready_timeout: float = 30.0
) -> Iterator[ServerProcess]:
    """Run ``tool.asgi()`` of ``target`` on stock uvicorn (httptools, its defaults) until the
    block ends."""
    port = free_port()
    with _running(["-c", _STOCK, str(target), str(port)], port, env, ready_timeout) as server:
        yield server


@contextmanager
def _running(
    argv: list[str], port: int, env: Mapping[str, str] | None, ready_timeout: float
) -> Iterator[ServerProcess]:
    environment = {**os.environ, **(env or {})}
    process = subprocess.Popen(
        [sys.executable, *argv],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    server = ServerProcess(f"http://127.0.0.1:{port}", port, process)
    deadline = time.monotonic() + ready_timeout
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{server.output()}")
            try:
                if httpx.get(f"{server.url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy in time")
            time.sleep(0.05)
        yield server
    finally:
        server.stop()
        if process.stdout is not None:
            process.stdout.close()
