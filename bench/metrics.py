"""What observability costs per request, in-process: metrics on vs off, request logs, tracing.

Calls the weather tool's ASGI app directly (no socket, no HTTP parsing: only our own code runs, so
the differences are not drowned in the server's) with the production defaults (API-key auth on),
in rounds where each variant takes its turn; it reports each variant's best round, and the
overheads as the median, over rounds, of one variant's time over another's in the same round.
It also times the pieces: recording one request (``ToolMetrics.record``), one histogram
observation, a custom counter and a custom timer.

    python -m bench.metrics            # the full run (about a minute)
    python -m bench.metrics --smoke    # a second or two, no targets checked

Target: built-in metrics cost at most 5% of the per-request time (``metrics_overhead <= 0.05``).
``python -m bench.server --metrics-off`` measures the same over HTTP, with wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
import timeit
from pathlib import Path
from typing import Any

from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.observability._custom_metrics import CustomMetrics
from ai_spine_tools.observability._histogram import LatencyHistogram
from ai_spine_tools.observability._logging import JSONFormatter
from ai_spine_tools.observability._metrics import ToolMetrics
from ai_spine_tools.server._app import create_app
from ai_spine_tools.server._inprocess import InProcessApp
from ai_spine_tools.server._wire import Message

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "metrics.json"
sys.path.insert(0, str(ROOT / "examples"))

import weather  # noqa: E402 - the example tool lives outside the package

API_KEY = "bench-key-0123456789abcdef"
BODY = b'{"input_data": {"city": "Madrid", "units": "celsius"}}'
TARGET_OVERHEAD = 0.05
VARIANTS: dict[str, dict[str, Any]] = {
    "metrics_on": {},
    "metrics_off": {"metrics": False},
    "request_logs": {"log_requests": True},
}


def _tracing_variant() -> bool:
    """Add the ``tracing`` variant when OpenTelemetry's SDK is installed: spans made and ended
    by an SDK provider with no exporter, so what is timed is ours and the SDK's, not I/O."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        return False
    trace.set_tracer_provider(TracerProvider())
    VARIANTS["tracing"] = {"tracing": True}
    return True


async def measure(requests: int, rounds: int) -> dict[str, list[float]]:
    """Microseconds per execute request of each variant in each round; the variants' apps are
    started once and take turns, in a rotating order, so drifts of a noisy machine fall on all."""
    apps = {
        name: create_app(weather.tool, ServerSettings(api_keys=(API_KEY,), **overrides))
        for name, overrides in VARIANTS.items()
    }
    runners = [InProcessApp(app) for app in apps.values()]
    for runner in runners:
        await runner.start()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/execute",
        "raw_path": b"/api/execute",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"x-api-key", API_KEY.encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 3000),
    }
    message = {"type": "http.request", "body": BODY, "more_body": False}
    statuses: set[int] = set()

    async def receive() -> Message:
        return message

    async def send(sent: Message) -> None:
        if sent["type"] == "http.response.start":
            statuses.add(sent["status"])

    out: dict[str, list[float]] = {name: [] for name in apps}
    names = list(apps)
    try:
        for index in range(rounds):
            for name in names[index % len(names) :] + names[: index % len(names)]:
                app = apps[name]
                started = time.perf_counter()
                for _ in range(requests):
                    await app(dict(scope), receive, send)
                out[name].append((time.perf_counter() - started) / requests * 1e6)
    finally:
        for runner in runners:
            await runner.stop()
    if statuses != {200}:
        raise RuntimeError(f"unexpected statuses {statuses}")
    return out


def pieces_ns(number: int) -> dict[str, float]:
    """Nanoseconds per call of the recording pieces (best of five repeats of ``number``)."""
    metrics = ToolMetrics()
    histogram = LatencyHistogram()
    custom = CustomMetrics()
    custom.increment("hits")

    def best(statement: Any) -> float:
        return round(min(timeit.repeat(statement, number=number, repeat=5)) / number * 1e9, 1)

    def timed() -> None:
        with custom.timer("block"):
            pass

    return {
        "record_success": best(lambda: metrics.record(0.42)),
        "record_error": best(lambda: metrics.record(0.42, "VALIDATION_ERROR")),
        "histogram_observe": best(lambda: histogram.observe(0.42)),
        "custom_increment": best(lambda: custom.increment("hits")),
        "custom_timer_block": best(timed),
    }


def run(*, requests: int, rounds: int, calls: int) -> dict[str, Any]:
    """Measure every variant in alternating rounds; return the results."""
    sink = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - for the whole run
    sink.setFormatter(JSONFormatter())
    package = logging.getLogger("ai_spine_tools")
    package.addHandler(sink)  # request logs are formatted as JSON, then thrown away
    package.setLevel(logging.INFO)
    package.propagate = False
    traced = _tracing_variant()
    samples = asyncio.run(measure(requests, rounds))
    best = {name: round(min(values), 3) for name, values in samples.items()}
    # Each round's variants ran back to back: compare within rounds, then take the median.
    metrics_ratio = statistics.median(
        on / off for on, off in zip(samples["metrics_on"], samples["metrics_off"], strict=True)
    )
    logs_ratio = statistics.median(
        logs / on for logs, on in zip(samples["request_logs"], samples["metrics_on"], strict=True)
    )
    overheads = {
        "metrics_overhead": round(metrics_ratio - 1, 4),
        "request_logs_overhead": round(logs_ratio - 1, 4),
    }
    if traced:
        overheads["tracing_overhead"] = round(
            statistics.median(
                t / on for t, on in zip(samples["tracing"], samples["metrics_on"], strict=True)
            )
            - 1,
            4,
        )
    return {
        "machine": {"python": sys.version.split()[0]},
        "settings": {"requests": requests, "rounds": rounds, "calls": calls},
        "per_request_us": best,
        **overheads,
        "pieces_ns": pieces_ns(calls),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, report and save."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="a second or two, no targets checked")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200_000, help="calls per timing of a piece")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.requests, args.rounds, args.calls = 300, 3, 10_000
    results = run(requests=args.requests, rounds=args.rounds, calls=args.calls)
    for name, value in results["per_request_us"].items():
        print(f"{name:<14}{value:>9.3f} us/request")
    print(f"metrics overhead: {results['metrics_overhead']:.1%}")
    print(f"request logs overhead: {results['request_logs_overhead']:.1%}")
    if "tracing_overhead" in results:
        print(f"tracing overhead: {results['tracing_overhead']:.1%}")
    for name, value in results["pieces_ns"].items():
        print(f"{name:<20}{value:>8.1f} ns")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.smoke:
        return 0
    met = results["metrics_overhead"] <= TARGET_OVERHEAD
    print(f"[{'PASS' if met else 'FAIL'}] metrics cost <= {TARGET_OVERHEAD:.0%} per request")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
