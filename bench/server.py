"""Side-by-side HTTP benchmark: a bare ASGI baseline, our server, and FastAPI, in one run.

Each app serves the seed's weather tool on uvicorn (one worker, uvloop, httptools) on 127.0.0.1,
ours as users run it (``ai-spine serve``, with the SDK's protocol). ``wrk`` drives it with 32
keep-alive connections. Apps run in alternating rounds, each round in another order, and each app
keeps the median of its rounds, so slow moments of a noisy machine fall on all of them alike.
Results are reported as ratios against the baseline and FastAPI, with idle and peak RSS, a leak
check (RSS after 10,000 and after 100,000 requests) and the cold import time of
``ai_spine_tools``.

    python -m bench.server                # the full run (about two minutes)
    python -m bench.server --smoke        # a few seconds, no targets checked
    python -m bench.server --metrics-off  # also ours with AI_SPINE_METRICS=false: what metrics cost
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
API_KEY = "bench-key"
BODY = b'{"input_data": {"city": "Madrid", "units": "celsius"}}'
WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.body = '{BODY.decode()}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "{API_KEY}"
"""


@dataclass(frozen=True)
class App:
    """One contender: the ASGI app uvicorn serves, or the tool file ``ai-spine serve`` serves (our
    server as users run it: uvicorn with the SDK's protocol), and the environment it needs."""

    name: str
    target: str
    served_by: str = "uvicorn"  # or "ai-spine"
    env: dict[str, str] = field(default_factory=dict)


WEATHER = str(ROOT / "examples" / "weather.py")
WEATHER_CACHED = str(ROOT / "bench" / "apps" / "weather_cached.py")
OURS_ENV = {"AI_SPINE_API_KEYS": API_KEY, "AI_SPINE_LOG_LEVEL": "warning"}
APPS = [
    App("baseline", "bench.apps.baseline:app"),
    App("ours", WEATHER, "ai-spine", OURS_ENV),
    App("fastapi", "bench.apps.fastapi_weather:app"),
    App("ours_cache_hit", WEATHER_CACHED, "ai-spine", OURS_ENV),
]
METRICS_OFF = App(
    "ours_metrics_off", WEATHER, "ai-spine", {**OURS_ENV, "AI_SPINE_METRICS": "false"}
)


@dataclass
class Measure:
    """What one load run against one app measured."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    non_2xx: int


@dataclass
class Result:
    """The median of an app's rounds, with its idle memory."""

    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    idle_rss_mb: float
    rounds: list[Measure]


class Server:
    """A uvicorn process serving one app on a free port."""

    def __init__(self, app: App) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        address = ["--host", "127.0.0.1", "--port", str(self.port)]
        if app.served_by == "ai-spine":  # uvloop and httptools, as uvicorn picks them by default
            command = [sys.executable, "-m", "ai_spine_tools", "serve", app.target, *address]
        else:
            command = [
                *(sys.executable, "-m", "uvicorn", app.target, *address),
                *("--loop", "uvloop", "--http", "httptools", "--no-access-log"),
                *("--log-level", "warning"),
            ]
        env = {**os.environ, **app.env, "PYTHONPATH": f"{ROOT}:{ROOT / 'examples'}"}
        self.process = subprocess.Popen(command, cwd=ROOT, env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()
        self.ps = psutil.Process(self.process.pid)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        headers = {"content-type": "application/json", "x-api-key": API_KEY}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                reply = httpx.post(f"{self.url}/api/execute", content=BODY, headers=headers)
                if reply.status_code == 200 and reply.json()["status"] == "success":
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def rss_mb(self) -> float:
        return float(self.ps.memory_info().rss / 1e6)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def wrk(
    url: str, seconds: float, connections: int, script: Path
) -> tuple[float, float, float, int, int]:
    """Run wrk; return requests/s, p50 ms, p99 ms, non-2xx count and total requests."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            f"{url}/api/execute",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx_match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.MULTILINE))
    return (
        rps,
        _ms(percentiles["50"]),
        _ms(percentiles["99"]),
        int(non2xx_match.group(1)) if non2xx_match else 0,
        total,
    )


def _ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load(server: Server, seconds: float, connections: int, script: Path) -> Measure:
    """Load ``server`` for ``seconds`` while sampling its RSS."""
    peak = server.rss_mb()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.1):
            peak = max(peak, server.rss_mb())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        rps, p50, p99, non2xx, _ = wrk(server.url, seconds, connections, script)
    finally:
        done.set()
        sampler.join()
    return Measure(round(rps, 1), p50, p99, round(peak, 1), non2xx)


def leak_check(script: Path, connections: int, total: int) -> dict[str, float]:
    """RSS of a fresh server of ours after 10% of ``total`` requests and after all of them."""
    server = Server(APPS[1])
    try:
        served = 0
        marks: dict[str, float] = {"idle_mb": round(server.rss_mb(), 1)}
        first = total // 10
        while served < total:
            _, _, _, _, count = wrk(server.url, 1, connections, script)
            served += count
            if "after_10pct_mb" not in marks and served >= first:
                marks["after_10pct_mb"] = round(server.rss_mb(), 1)
                marks["requests_at_10pct"] = served
        marks["after_all_mb"] = round(server.rss_mb(), 1)
        marks["requests"] = served
        marks["growth_ratio"] = round(marks["after_all_mb"] / marks["after_10pct_mb"], 3)
        return marks
    finally:
        server.stop()


def import_time_ms(repeats: int = 5) -> float:
    """Best-of-N time to ``import ai_spine_tools`` in a fresh interpreter."""
    code = (
        "import time; t = time.perf_counter(); import ai_spine_tools; "
        "print(time.perf_counter() - t)"
    )
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(repeats)
    ]
    return round(min(runs) * 1000, 1)


def run(
    *,
    seconds: float,
    rounds: int,
    connections: int,
    leak_requests: int,
    metrics_off: bool = False,
) -> dict[str, Any]:
    """Run the whole benchmark and return its results."""
    apps = [*APPS, METRICS_OFF] if metrics_off else APPS
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run 'apt-get install wrk' (Debian) and try again")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(WRK_SCRIPT)
        script = Path(handle.name)
    measures: dict[str, list[Measure]] = {app.name: [] for app in apps}
    idle: dict[str, float] = {}
    try:
        for turn in range(rounds):
            shift = turn % len(apps)  # each round starts with another app: no app always goes last
            for app in apps[shift:] + apps[:shift]:
                server = Server(app)
                try:
                    idle.setdefault(app.name, round(server.rss_mb(), 1))
                    load(server, max(1.0, seconds / 4), connections, script)  # warm-up
                    measures[app.name].append(load(server, seconds, connections, script))
                finally:
                    server.stop()
        leak = leak_check(script, connections, leak_requests) if leak_requests else {}
    finally:
        script.unlink()
    results = {
        name: Result(
            name=name,
            requests_per_s=statistics.median(m.requests_per_s for m in runs),
            p50_ms=statistics.median(m.p50_ms for m in runs),
            p99_ms=statistics.median(m.p99_ms for m in runs),
            peak_rss_mb=max(m.peak_rss_mb for m in runs),
            idle_rss_mb=idle[name],
            rounds=runs,
        )
        for name, runs in measures.items()
    }
    ours, base, fast = results["ours"], results["baseline"], results["fastapi"]
    ratios = {
        "ours_vs_baseline_rps": round(ours.requests_per_s / base.requests_per_s, 3),
        "ours_vs_baseline_p99": round(ours.p99_ms / base.p99_ms, 3),
        "ours_vs_fastapi_rps": round(ours.requests_per_s / fast.requests_per_s, 3),
        "cache_hit_vs_baseline_rps": round(
            results["ours_cache_hit"].requests_per_s / base.requests_per_s, 3
        ),
    }
    if metrics_off:
        off = results[METRICS_OFF.name]
        ratios["metrics_on_vs_off_rps"] = round(ours.requests_per_s / off.requests_per_s, 3)
    return {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "settings": {"seconds": seconds, "rounds": rounds, "connections": connections},
        "results": {name: asdict(result) for name, result in results.items()},
        "ratios": ratios,
        "leak_check": leak,
        "import_time_ms": import_time_ms(),
    }


Target = tuple[str, Callable[[dict[str, Any]], bool]]
TARGETS: list[Target] = [
    ("ours >= 0.70 x baseline requests/s", lambda r: r["ratios"]["ours_vs_baseline_rps"] >= 0.70),
    ("ours p99 <= 1.5 x baseline p99", lambda r: r["ratios"]["ours_vs_baseline_p99"] <= 1.5),
    ("ours >= 3 x FastAPI requests/s", lambda r: r["ratios"]["ours_vs_fastapi_rps"] >= 3.0),
    ("idle RSS <= 60 MB", lambda r: r["results"]["ours"]["idle_rss_mb"] <= 60),
    (
        "RSS after all <= 1.10 x RSS after 10%",
        lambda r: r["leak_check"].get("growth_ratio", 1) <= 1.10,
    ),
    ("import ai_spine_tools <= 150 ms", lambda r: r["import_time_ms"] <= 150),
    (
        "a cache hit >= 1.0 x baseline requests/s",
        lambda r: r["ratios"]["cache_hit_vs_baseline_rps"] >= 1.0,
    ),
    (
        "metrics on >= 0.95 x metrics off requests/s (with --metrics-off)",
        lambda r: r["ratios"].get("metrics_on_vs_off_rps", 1.0) >= 0.95,
    ),
]


def report(results: dict[str, Any], *, check: bool) -> bool:
    """Print the table, ratios and targets; return whether every target is met."""
    print(f"{'app':<18}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'idle MB':>9}{'peak MB':>9}")
    for name, r in results["results"].items():
        print(
            f"{name:<18}{r['requests_per_s']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['idle_rss_mb']:>9.1f}{r['peak_rss_mb']:>9.1f}"
        )
    for name, value in results["ratios"].items():
        print(f"{name}: {value}")
    print(f"leak check: {results['leak_check']}")
    print(f"import ai_spine_tools: {results['import_time_ms']} ms")
    ok = True
    if check:
        for label, met in TARGETS:
            passed = bool(met(results))
            ok &= passed
            print(f"[{'PASS' if passed else 'FAIL'}] {label}")
    return ok


def plot(results: dict[str, Any], path: Path) -> None:
    """Draw requests/s and p99 per app, if matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart drawn")
        return
    names = list(results["results"])
    rps = [results["results"][n]["requests_per_s"] for n in names]
    p99 = [results["results"][n]["p99_ms"] for n in names]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"baseline": "#999999", "fastapi": "#e2862a"}
    palette = [colors.get(name, "#2a7ae2") for name in names]
    left.bar(names, rps, color=palette)
    left.set_title("requests/s (higher is better)")
    right.bar(names, p99, color=palette)
    right.set_title("p99 latency, ms (lower is better)")
    for axis in (left, right):
        axis.tick_params(axis="x", labelrotation=25, labelsize=8)
    figure.suptitle("weather tool on uvicorn, 1 worker, 32 connections")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, report and save."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="a few seconds, no targets checked")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--leak-requests", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "server.json")
    parser.add_argument(
        "--metrics-off", action="store_true", help="also run ours with AI_SPINE_METRICS=false"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.leak_requests = 1, 0
        args.seconds = min(args.seconds, 1.0)
    results = run(
        seconds=args.seconds,
        rounds=args.rounds,
        connections=args.connections,
        leak_requests=args.leak_requests,
        metrics_off=args.metrics_off,
    )
    ok = report(results, check=not args.smoke)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if not args.smoke:
        plot(results, args.out.with_suffix(".png"))
    return 0 if ok or args.smoke else 1


if __name__ == "__main__":
    raise SystemExit(main())
