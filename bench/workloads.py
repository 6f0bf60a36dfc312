"""The workloads: what users' tools do, each run by a bare yardstick, ours and FastAPI.

A workload names its apps, the request bodies wrk rotates through, the services it sets up, and
the targets the full run checks. ``run_workload`` runs one and returns its section of
``server.json``: per-app medians, ratios against the yardstick and FastAPI, and failures.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import cpu, services
from bench.harness import (
    API_KEY,
    OURS_ENV,
    ROOT,
    App,
    Inspect,
    Load,
    Probe,
    Result,
    Server,
    ours_app,
    run_rounds,
)

Section = dict[str, Any]
Target = tuple[str, Callable[[Section], bool]]
Services = Callable[[list[bytes]], AbstractContextManager[dict[str, str]]]

WEATHER = str(ROOT / "examples" / "weather.py")
SUITE_PATH = (
    "/weather-lookup/api/execute"  # the weather example among ten (bench/apps/suite_ten.py)
)
WEATHER_BODY = b'{"input_data": {"city": "Madrid", "units": "celsius"}}'
CITIES = [f"City {n:03d}" for n in range(300)]


@contextmanager
def _no_services(bodies: list[bytes]) -> Iterator[dict[str, str]]:
    yield {}


@dataclass(frozen=True, kw_only=True)
class Workload:
    """One kind of work, run side by side by its apps (the first is the yardstick)."""

    name: str
    title: str
    apps: list[App]
    bodies: Callable[[], list[bytes]]  # what wrk sends, in turn (one body: always the same)
    probe: bytes | None = None  # the request that says an app is ready (None: the first body)
    services: Services = _no_services
    targets: list[Target] = field(default_factory=list)
    timeout: float = 2.0  # wrk's per-request timeout, seconds
    health: bool = False  # poll /health while loading
    inspect: Inspect | None = None
    extra: Callable[[dict[str, str], bool], Section] | None = None  # a check of its own


def _ratios(results: dict[str, Result]) -> dict[str, float | None]:
    ours, yardstick, fastapi = results["ours"], results["yardstick"], results["fastapi"]
    out = {
        "ours_vs_yardstick_rps": _ratio(ours.requests_per_s, yardstick.requests_per_s),
        "ours_vs_yardstick_p99": _ratio(ours.p99_ms, yardstick.p99_ms),
        "ours_vs_fastapi_rps": _ratio(ours.requests_per_s, fastapi.requests_per_s),
        "ours_vs_fastapi_p99": _ratio(ours.p99_ms, fastapi.p99_ms),
    }
    if "ours_cache_hit" in results:
        hit = results["ours_cache_hit"]
        out["cache_hit_vs_yardstick_rps"] = _ratio(hit.requests_per_s, yardstick.requests_per_s)
    if "ours_suite" in results:  # ten tools in one server, the same tool loaded
        suite = results["ours_suite"]
        out["suite_vs_single_rps"] = _ratio(suite.requests_per_s, ours.requests_per_s)
        out["suite_vs_single_idle_rss"] = _ratio(suite.idle_rss_mb, ours.idle_rss_mb)
    if "ours_metrics_off" in results:
        off = results["ours_metrics_off"]
        out["metrics_on_vs_off_rps"] = _ratio(ours.requests_per_s, off.requests_per_s)
    if ours.health_p99_ms is not None and yardstick.health_p99_ms is not None:
        out["ours_vs_yardstick_health_p99"] = _ratio(ours.health_p99_ms, yardstick.health_p99_ms)
    return out


def _ratio(numerator: float, denominator: float) -> float | None:
    """Return the ratio to three places, or None when there is nothing to divide by."""
    return round(numerator / denominator, 3) if denominator else None


def lua(bodies: list[bytes]) -> str:
    """Return wrk's script: POST each body in turn (requests built once, in ``init``)."""
    head = [
        'wrk.method = "POST"',
        'wrk.headers["Content-Type"] = "application/json"',
        f'wrk.headers["X-API-Key"] = "{API_KEY}"',
    ]
    if len(bodies) == 1:
        return "\n".join([*head, f"wrk.body = [==[{bodies[0].decode()}]==]", ""])
    return "\n".join(
        [
            *head,
            "local bodies = {",
            *(f"  [==[{body.decode()}]==]," for body in bodies),
            "}",
            "local requests, i = {}, 0",
            "init = function(args)",
            "  for n, body in ipairs(bodies) do requests[n] = wrk.format(nil, nil, nil, body) end",
            "end",
            "request = function()",
            "  i = i % #requests + 1",
            "  return requests[i]",
            "end",
            "",
        ]
    )


def run_workload(
    workload: Workload, *, seconds: float, rounds: int, connections: int, smoke: bool
) -> Section:
    """Run ``workload``'s apps side by side; return its results, ratios and failures."""
    bodies = workload.bodies()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(lua(bodies))
        script = Path(handle.name)
    try:
        with workload.services(bodies) as env:
            load = Load(
                script=script,
                probe=Probe(workload.probe or bodies[0]),
                env=env,
                seconds=seconds,
                connections=connections,
                timeout=workload.timeout,
                health=workload.health,
                inspect=workload.inspect,
            )
            results = run_rounds(workload.apps, load, rounds)
            extra = workload.extra(env, smoke) if workload.extra is not None else {}
    except services.ServiceMissingError as exc:
        return {"skipped": str(exc)}
    finally:
        script.unlink()
    failures = sum(
        r.non_2xx + r.errors + sum(int((m.health or {}).get("failures", 0)) for m in r.rounds)
        for r in results.values()
    )
    return {
        "title": workload.title,
        "results": {name: asdict(result) for name, result in results.items()},
        "ratios": _ratios(results),
        "failures": failures + int(extra.get("failures", 0)),
        **extra,
    }


def _redis_figures(app: App, server: Server) -> dict[str, Any] | None:
    """Ours' result-cache figures: every hit must have been read from Redis, or shared with a
    request for the same key that was reading it (``coalesced``)."""
    if app.name != "ours":
        return None
    reply = httpx.get(f"{server.url}/metrics", headers={"x-api-key": API_KEY}, timeout=10)
    cache = reply.json()["cache"]
    return {
        "result_hits": cache["results"]["hits"],
        "result_misses": cache["results"]["misses"],
        "l2_hits": cache["l2"]["hits"],
        "coalesced": cache["results"]["coalesced"],
    }


def _all_from_redis(section: Section) -> bool:
    checks = [m["checks"] for m in section["results"]["ours"]["rounds"]]
    return all(
        c["l2_hits"] + c["coalesced"] == c["result_hits"] and c["result_misses"] == 0
        for c in checks
    )


def _no_failures(name: str) -> Target:
    return (f"{name}: every request succeeded", lambda s: s["failures"] == 0)


def _ratio_at_least(label: str, key: str, value: float) -> Target:
    # a ratio is None when its yardstick served nothing: a failure, not a pass
    return (label, lambda s: (s["ratios"].get(key) or 0.0) >= value)


def _ratio_at_most(label: str, key: str, value: float) -> Target:
    return (label, lambda s: s["ratios"].get(key) is not None and s["ratios"][key] <= value)


def _at_least(name: str, value: float) -> Target:
    label = f"{name}: ours >= {value:.2f} x yardstick requests/s"
    return _ratio_at_least(label, "ours_vs_yardstick_rps", value)


NO_IO = Workload(
    name="no_io",
    title="weather tool, no I/O",
    apps=[
        App("yardstick", "bench.apps.baseline:app"),
        App("ours", WEATHER, "ai-spine", OURS_ENV),
        App("fastapi", "bench.apps.fastapi_weather:app"),
        ours_app("weather_cached.py", "ours_cache_hit"),
        dataclasses.replace(ours_app("suite_ten.py", "ours_suite"), path=SUITE_PATH),
    ],
    bodies=lambda: [WEATHER_BODY],
    targets=[
        _no_failures("no_io"),
        _at_least("no_io", 0.70),
        _ratio_at_most("no_io: ours p99 <= 1.5 x yardstick p99", "ours_vs_yardstick_p99", 1.5),
        _ratio_at_least("no_io: ours >= 3 x FastAPI requests/s", "ours_vs_fastapi_rps", 3.0),
        ("no_io: idle RSS <= 60 MB", lambda s: s["results"]["ours"]["idle_rss_mb"] <= 60),
        _ratio_at_least(
            "no_io: one tool of ten in one server >= 0.97 x served alone (routing by prefix)",
            "suite_vs_single_rps",
            0.97,
        ),
        _ratio_at_most(
            "no_io: ten tools in one server idle RSS <= 1.5 x one tool",
            "suite_vs_single_idle_rss",
            1.5,
        ),
        (
            "no_io: RSS after all <= 1.10 x RSS after 10%",
            lambda s: s.get("leak_check", {}).get("growth_ratio", 1) <= 1.10,
        ),
        ("import ai_spine_tools <= 150 ms", lambda s: s.get("import_time_ms", 0) <= 150),
        _ratio_at_least(
            "no_io: a cache hit >= 1.0 x yardstick requests/s", "cache_hit_vs_yardstick_rps", 1.0
        ),
        (
            "no_io: metrics on >= 0.95 x metrics off requests/s (with --metrics-off)",
            lambda s: (s["ratios"].get("metrics_on_vs_off_rps", 1.0) or 0.0) >= 0.95,
        ),
    ],
)
METRICS_OFF = App(
    "ours_metrics_off", WEATHER, "ai-spine", {**OURS_ENV, "AI_SPINE_METRICS": "false"}
)

UPSTREAM_HTTP = Workload(
    name="upstream_http",
    title="weather from an upstream JSON API",
    apps=[
        App("yardstick", "bench.apps.http_bare:app"),
        ours_app("http_ours.py"),
        App("fastapi", "bench.apps.http_fastapi:app"),
    ],
    bodies=lambda: [WEATHER_BODY],
    services=lambda bodies: services.upstream(),
    targets=[_no_failures("upstream_http"), _at_least("upstream_http", 0.75)],
)

POSTGRES = Workload(
    name="postgres",
    title="PostgreSQL lookup by primary key",
    apps=[
        App("yardstick", "bench.apps.pg_bare:app"),
        ours_app("pg_ours.py"),
        App("fastapi", "bench.apps.pg_fastapi:app"),
    ],
    bodies=lambda: [b'{"input_data": {"id": %d}}' % n for n in range(1, services.USERS + 1)],
    services=lambda bodies: services.postgres(),
    targets=[_no_failures("postgres"), _at_least("postgres", 0.90)],
)

REDIS_OURS = ours_app("redis_ours.py")
REDIS_L2 = Workload(
    name="redis_l2",
    title="result-cache hit from Redis (L2)",
    apps=[
        App("yardstick", "bench.apps.redis_bare:app"),
        REDIS_OURS,
        App("fastapi", "bench.apps.redis_fastapi:app"),
    ],
    bodies=lambda: [b'{"input_data": {"city": "%s"}}' % city.encode() for city in CITIES],
    services=lambda bodies: services.redis_results(REDIS_OURS, bodies),
    inspect=_redis_figures,
    targets=[
        _no_failures("redis_l2"),
        ("redis_l2: ours read every hit from Redis", _all_from_redis),
        _at_least("redis_l2", 0.85),
    ],
)

CPU = Workload(
    name="cpu",
    title="~50 ms of hashing in a process pool",
    apps=[cpu.YARDSTICK, cpu.OURS, cpu.FASTAPI],
    bodies=lambda: [cpu.body(cpu.rounds_for(0.05))],
    probe=cpu.body(1),  # also waits out the executions a finished load left queued
    timeout=30.0,  # 32 callers queue for 2 workers: ~1 s each, more on a busy machine
    health=True,
    extra=cpu.concurrency,
    targets=[
        _no_failures("cpu"),
        (
            "cpu: /health p99 < 50 ms while four ~1 s executions run at once",
            lambda s: s["concurrency"]["ours"]["health"]["p99_ms"] < 50,
        ),
        (
            "cpu: four at once finish in < 0.6 x four times one",
            lambda s: s["concurrency"]["ours"]["four_vs_4x_one"] < 0.6,
        ),
    ],
)

WORKLOADS = {w.name: w for w in (NO_IO, UPSTREAM_HTTP, POSTGRES, REDIS_L2, CPU)}
