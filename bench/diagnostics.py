"""What the diagnostics cost per request, in-process: the event-loop watch and leak watch on vs off.

Calls the weather tool's ASGI app directly (no socket), one variant at a time, each round on a
fresh event loop with the app's lifespan running (so the watchdog thread and the RSS sampler
run exactly as in a server), alternating variants, and keeps each variant's best round:

- ``off``: ``AI_SPINE_DIAGNOSTICS=false``;
- ``on``: the defaults (the watchdog pings every 25 ms while executions are in flight);
- ``on_busy``: the watchdog pinging every 25 ms throughout (its worst case).

    python -m bench.diagnostics            # the full run (about 20 seconds)
    python -m bench.diagnostics --smoke    # a second or two, no target checked

Target: diagnostics cost at most 3% of the per-request time (``overhead <= 0.03``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.server._app import ToolApp
from ai_spine_tools.server._inprocess import InProcessApp
from ai_spine_tools.server._wire import Message

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "diagnostics.json"
sys.path.insert(0, str(ROOT / "examples"))

import weather  # noqa: E402 - the example tool lives outside the package

BODY = b'{"input_data": {"city": "Madrid", "units": "celsius"}}'
TARGET_OVERHEAD = 0.03
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/api/execute",
    "raw_path": b"/api/execute",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"bench"), (b"content-type", b"application/json")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 3000),
}


async def one_round(variant: str, requests: int) -> float:
    """Microseconds per execute request of one round of ``variant``."""
    settings = ServerSettings().replace(diagnostics=variant != "off")
    app = ToolApp(weather.tool, settings)
    runner = InProcessApp(app)
    await runner.start()
    if variant == "on_busy" and app.diagnostics is not None:
        app.diagnostics.loop._busy = lambda: True
    message = {"type": "http.request", "body": BODY, "more_body": False}
    statuses: set[int] = set()

    async def receive() -> Message:
        return message

    async def send(sent: Message) -> None:
        if sent["type"] == "http.response.start":
            statuses.add(sent["status"])

    try:
        for _ in range(requests // 10):  # warm up
            await app(dict(SCOPE), receive, send)
        started = time.perf_counter()
        for index in range(requests):
            await app(dict(SCOPE), receive, send)
            if index % 200 == 0:
                await asyncio.sleep(0)  # let the loop run its callbacks (the watchdog's pings)
        took = time.perf_counter() - started
    finally:
        await runner.stop()
    if statuses != {200}:
        raise RuntimeError(f"unexpected statuses {statuses}")
    return took / requests * 1e6


def run(requests: int, rounds: int) -> dict[str, Any]:
    """Best µs per request of each variant over ``rounds`` alternating rounds."""
    variants = ["off", "on", "on_busy"]
    best: dict[str, float] = {}
    for index in range(rounds):
        for name in variants[index % 3 :] + variants[: index % 3]:
            us = asyncio.run(one_round(name, requests))
            best[name] = min(best.get(name, us), us)
    return {
        "us_per_request": {name: round(us, 3) for name, us in best.items()},
        "overhead": round(best["on"] / best["off"] - 1, 4),
        "overhead_busy": round(best["on_busy"] / best["off"] - 1, 4),
        "requests_per_round": requests,
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--smoke", action="store_true", help="a short run, no target checked")
    args = parser.parse_args()
    requests, rounds = (2_000, 2) if args.smoke else (30_000, 7)
    result = run(requests, rounds)
    print(json.dumps(result, indent=2))
    if args.smoke:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if result["overhead"] > TARGET_OVERHEAD:
        sys.exit(f"diagnostics cost {result['overhead']:.1%} per request (target <= 3%)")


if __name__ == "__main__":
    main()
