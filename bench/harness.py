"""The benchmark's machinery: serve an app, load it with wrk, poll its health, keep the medians.

Each app runs on uvicorn (one worker, uvloop, httptools) on 127.0.0.1, ours as users run it
(``ai-spine serve``, with the SDK's protocol). Apps of a workload run in alternating rounds, each
round in another order, and each keeps the median of its rounds, so slow moments of a noisy
machine fall on all of them alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-key"
OURS_ENV = {"AI_SPINE_API_KEYS": API_KEY, "AI_SPINE_LOG_LEVEL": "warning"}


@dataclass(frozen=True)
class App:
    """One contender: the ASGI app uvicorn serves, or the tool file ``ai-spine serve`` serves (our
    server as users run it: uvicorn with the SDK's protocol), and the environment it needs."""

    name: str
    target: str
    served_by: str = "uvicorn"  # or "ai-spine"
    env: dict[str, str] = field(default_factory=dict)
    path: str = "/api/execute"  # where its execute route is (a suite's tool: /<name>/api/execute)


def ours_app(tool_file: str, name: str = "ours", **env: str) -> App:
    """Return our server serving ``bench/apps/<tool_file>`` as users run it."""
    return App(name, str(ROOT / "bench" / "apps" / tool_file), "ai-spine", {**OURS_ENV, **env})


@dataclass(frozen=True)
class Probe:
    """The request that says a server is ready: a POST of ``body``, or a GET when it is None."""

    body: bytes | None
    path: str = "/api/execute"


@dataclass
class Measure:
    """What one load run against one app measured."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    non_2xx: int
    errors: int = 0  # wrk's socket errors: connect, read, write and timeouts
    health: dict[str, float] | None = None  # /health latency under the load, when polled
    checks: dict[str, Any] | None = None  # what the workload read from the app afterwards


@dataclass
class Result:
    """The median of an app's rounds, with its idle memory and every failure counted."""

    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    idle_rss_mb: float
    non_2xx: int
    errors: int
    health_p50_ms: float | None
    health_p99_ms: float | None
    rounds: list[Measure]


class Server:
    """A uvicorn process serving one app on a free port, ready once ``probe`` succeeds."""

    def __init__(self, app: App, probe: Probe, env: Mapping[str, str] | None = None) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        address = ["--host", "127.0.0.1", "--port", str(self.port)]
        if app.served_by == "ai-spine":  # uvloop and httptools, as uvicorn picks them by default
            command = [sys.executable, "-m", "ai_spine_tools", "serve", app.target, *address]
        else:
            command = [
                *(sys.executable, "-m", "uvicorn", app.target, *address),
                *("--loop", "uvloop", "--http", "httptools", "--no-access-log"),
                *("--log-level", "warning"),
            ]
        environ = {
            **os.environ,
            **(env or {}),
            **app.env,
            "PYTHONPATH": f"{ROOT}:{ROOT / 'examples'}",
        }
        self.process = subprocess.Popen(command, cwd=ROOT, env=environ)
        self.url = f"http://127.0.0.1:{self.port}"
        self.execute_url = self.url + app.path
        self.probe = probe if probe.body is None else dataclasses.replace(probe, path=app.path)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        self.ps = psutil.Process(self.process.pid)

    def wait_ready(self) -> None:
        """Return once the probe succeeds. After a load, this also waits out the work its
        callers left behind when they went (queued behind it in a process pool, say)."""
        probe = self.probe
        deadline = time.monotonic() + 60
        headers = {"content-type": "application/json", "x-api-key": API_KEY}
        url = self.url + probe.path
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                if probe.body is None:
                    reply = httpx.get(url)
                else:
                    reply = httpx.post(url, content=probe.body, headers=headers, timeout=30)
                if reply.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def rss_mb(self) -> float:
        """Return the resident memory of the server process (its workers not included)."""
        return float(self.ps.memory_info().rss / 1e6)

    def stop(self) -> None:
        """Stop the server (terminate, then kill after 10 s)."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass(frozen=True)
class WrkRun:
    """One run of wrk, parsed."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    requests: int


def wrk(url: str, seconds: float, connections: int, script: Path, timeout: float = 2.0) -> WrkRun:
    """Run wrk (one thread, ``connections`` keep-alive connections) against ``url``."""
    out = subprocess.run(
        [
            *("wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"),
            *(f"--timeout={max(1, round(timeout))}s", "--latency", "-s", str(script), url),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + timeout + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.MULTILINE))
    return WrkRun(
        requests_per_s=rps,
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        errors=sum(map(int, sockets.groups())) if sockets else 0,
        requests=total,
    )


def _ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


class HealthProber:
    """Polls ``GET /health`` on one keep-alive connection every ``interval`` seconds, in a thread,
    timing each answer: a light second load that says whether the server stays responsive."""

    def __init__(self, port: int, interval: float = 0.02) -> None:
        self.port = port
        self.interval = interval
        self.latencies_ms: list[float] = []
        self.failures = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> HealthProber:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def _poll(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self._done.is_set():
            started = time.perf_counter()
            try:
                connection.request("GET", "/health")
                reply = connection.getresponse()
                reply.read()
                if reply.status != 200:
                    self.failures += 1
            except (OSError, http.client.HTTPException):
                self.failures += 1
                connection.close()
            else:
                self.latencies_ms.append((time.perf_counter() - started) * 1000.0)
            self._done.wait(max(0.0, self.interval - (time.perf_counter() - started)))
        connection.close()

    def summary(self) -> dict[str, float]:
        """Return the probes' count, failures, p50 and p99 in ms."""
        values = sorted(self.latencies_ms) or [float("nan")]
        return {
            "probes": len(self.latencies_ms),
            "failures": self.failures,
            "p50_ms": round(values[len(values) // 2], 2),
            "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))], 2),
        }


Inspect = Callable[[App, Server], dict[str, Any] | None]


@dataclass(frozen=True, kw_only=True)
class Load:
    """How a workload loads each of its apps."""

    script: Path  # wrk's Lua script: method, headers, and the body of each request
    probe: Probe
    env: Mapping[str, str]  # where the services are, for every app
    seconds: float
    connections: int
    timeout: float = 2.0
    health: bool = False  # poll /health during the measured run
    inspect: Inspect | None = None  # read the app's own figures after the measured run


def measure(server: Server, load: Load, seconds: float) -> Measure:
    """Load ``server`` for ``seconds`` while sampling its RSS (and polling its health)."""
    peak = server.rss_mb()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.1):
            peak = max(peak, server.rss_mb())

    sampler = threading.Thread(target=sample)
    sampler.start()
    prober = HealthProber(server.port) if load.health else None
    try:
        with contextlib.ExitStack() as stack:
            if prober is not None:
                stack.enter_context(prober)
            run = wrk(server.execute_url, seconds, load.connections, load.script, load.timeout)
    finally:
        done.set()
        sampler.join()
    return Measure(
        round(run.requests_per_s, 1),
        run.p50_ms,
        run.p99_ms,
        round(peak, 1),
        run.non_2xx,
        run.errors,
        prober.summary() if prober is not None else None,
    )


def run_rounds(apps: list[App], load: Load, rounds: int) -> dict[str, Result]:
    """Measure every app ``rounds`` times, each round in another order; return the medians."""
    measures: dict[str, list[Measure]] = {app.name: [] for app in apps}
    idle: dict[str, float] = {}
    for turn in range(rounds):
        shift = turn % len(apps)  # each round starts with another app: no app always goes last
        for app in apps[shift:] + apps[:shift]:
            server = Server(app, load.probe, load.env)
            try:
                idle.setdefault(app.name, round(server.rss_mb(), 1))
                measure(server, load, max(1.0, load.seconds / 4))  # warm-up
                server.wait_ready()
                result = measure(server, load, load.seconds)
                if load.inspect is not None:
                    result.checks = load.inspect(app, server)
                measures[app.name].append(result)
            finally:
                server.stop()
    return {name: _median(name, runs, idle[name]) for name, runs in measures.items()}


def _median(name: str, runs: list[Measure], idle_mb: float) -> Result:
    health = [m.health for m in runs if m.health is not None]
    return Result(
        name=name,
        requests_per_s=statistics.median(m.requests_per_s for m in runs),
        p50_ms=statistics.median(m.p50_ms for m in runs),
        p99_ms=statistics.median(m.p99_ms for m in runs),
        peak_rss_mb=max(m.peak_rss_mb for m in runs),
        idle_rss_mb=idle_mb,
        non_2xx=sum(m.non_2xx for m in runs),
        errors=sum(m.errors for m in runs),
        health_p50_ms=statistics.median(h["p50_ms"] for h in health) if health else None,
        health_p99_ms=statistics.median(h["p99_ms"] for h in health) if health else None,
        rounds=runs,
    )
