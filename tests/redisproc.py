"""Redis for the tests: the shared one at 127.0.0.1:6379, or a throwaway ``redis-server``.

Tests that need Redis skip with the reason when it is absent, except under
``AI_SPINE_REQUIRE_SERVICES=1`` (set by ``.ci/run``), where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from serverproc import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
REQUIRED = os.environ.get("AI_SPINE_REQUIRE_SERVICES") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (AI_SPINE_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def require_redis_package() -> None:
    """Skip (or fail) when the ``redis`` package is not installed."""
    try:
        import redis  # noqa: F401
    except ImportError:
        _unavailable("the redis package is not installed (pip install 'ai-spine-tools[redis]')")


def answers_ping(port: int, host: str = "127.0.0.1") -> bool:
    """True when a Redis server answers PING on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def shared_redis() -> str:
    """Return the URL of the Redis at 127.0.0.1:6379, skipping (or failing) without one."""
    require_redis_package()
    if not answers_ping(6379):
        _unavailable("no Redis answers at 127.0.0.1:6379")
    return REDIS_URL


def unique_prefix() -> str:
    """A key prefix no other test (or run) uses."""
    return f"ai-spine-test:{uuid.uuid4().hex[:12]}:"


def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


class ThrowawayRedis:
    """A ``redis-server`` on its own port that a test may kill and start again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._directory = directory
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (on the same port every time) and wait until it answers."""
        binary = shutil.which("redis-server")
        if binary is None:
            _unavailable("redis-server is not installed (Debian package redis-server)")
            return
        self._process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not answers_ping(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        """Kill the server at once (no shutdown, no save)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)
        self._process = None


@contextmanager
def throwaway_redis(directory: Path) -> Iterator[ThrowawayRedis]:
    """Run a ``redis-server`` for the block; it is killed at the end whatever happened."""
    require_redis_package()
    server = ThrowawayRedis(directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()
