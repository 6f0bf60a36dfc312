"""The ``cpu`` workload's parts: its apps, its request, and the check of the issue's target.

The target: while four executions of about a second run at once on two cores, ``GET /health``
keeps answering (p99 < 50 ms) and the four finish in less than 0.6 of four times one execution
(the process pool runs them in parallel and the event loop stays free).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import msgspec

from bench.apps.cpu_work import rounds_for
from bench.harness import API_KEY, App, HealthProber, Probe, Server, ours_app

__all__ = ["FASTAPI", "OURS", "YARDSTICK", "body", "concurrency", "rounds_for"]

WORKERS = os.cpu_count() or 1
ENV = {"AI_SPINE_PROCESS_WORKERS": str(WORKERS)}
YARDSTICK = App("yardstick", "bench.apps.cpu_bare:app", env=ENV)
OURS = ours_app("cpu_ours.py", **ENV)
FASTAPI = App("fastapi", "bench.apps.cpu_fastapi:app", env=ENV)
HEADERS = {"content-type": "application/json", "x-api-key": API_KEY}


def body(rounds: int, seed: str = "bench") -> bytes:
    """Return the execute request hashing ``seed`` ``rounds`` times."""
    return msgspec.json.encode({"input_data": {"seed": seed, "rounds": rounds}})


def concurrency(env: dict[str, str], smoke: bool) -> dict[str, Any]:
    """Time one execution alone, then four at once while /health is polled, for ours and the
    yardstick (executions of ~1 s; ~0.25 s in a smoke run)."""
    seconds = 0.25 if smoke else 1.0
    rounds = rounds_for(seconds)
    apps = {app.name: _four_at_once(app, env, rounds) for app in (OURS, YARDSTICK)}
    return {
        "concurrency": {"seconds_each": seconds, "rounds": rounds, "workers": WORKERS, **apps},
        "failures": sum(app["failures"] for app in apps.values()),
    }


def _four_at_once(app: App, env: dict[str, str], rounds: int) -> dict[str, Any]:
    server = Server(app, Probe(body(1)), env)
    try:
        request = body(rounds)
        url = f"{server.url}/api/execute"

        def execute(seed: int = 0) -> int:
            reply = httpx.post(
                url, content=body(rounds, f"seed {seed}"), headers=HEADERS, timeout=120
            )
            return reply.status_code

        alone, statuses = [], []
        for _ in range(2):  # the faster of two: one execution on an otherwise idle server
            started = time.perf_counter()
            statuses.append(
                httpx.post(url, content=request, headers=HEADERS, timeout=120).status_code
            )
            alone.append(time.perf_counter() - started)
        with HealthProber(server.port, interval=0.005) as prober:
            started = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                statuses += list(pool.map(execute, range(4)))
            four = time.perf_counter() - started
    finally:
        server.stop()
    one = min(alone)
    health = prober.summary()
    return {
        "one_s": round(one, 3),
        "four_s": round(four, 3),
        "four_vs_4x_one": round(four / (4 * one), 3),
        "health": health,
        "failures": sum(status != 200 for status in statuses) + int(health["failures"]),
    }
