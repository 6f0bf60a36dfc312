"""``ai-spine doctor``: start a tool, load it briefly, and say in plain words what is wrong.

The checks follow the performance guide's targets and its four common problems: response time
(p99 under 200 ms for a simple tool), throughput (over 100 requests/s), error rate (under 1%),
baseline memory (under 100 MB), blocking work on the event loop, memory leaks, CPU use, and
connection-pool or queue exhaustion. The server's own diagnostics (``/metrics`` resources and
pools, ``/health``) are read every half second during the load, so the report shows the peaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ai_spine_tools.cli._checks import Finding
from ai_spine_tools.core._tool import Tool
from ai_spine_tools.fields._patterns import engine as pattern_engine
from ai_spine_tools.observability._leakwatch import leak_verdict
from ai_spine_tools.testing._report import LoadTestReport

__all__ = ["Finding", "diagnose", "render"]

_MB = 1024 * 1024
TARGET_P99_MS = 200.0
TARGET_RPS = 100.0
TARGET_BASELINE_MB = 100.0
TARGET_ERROR_RATE = 0.01
_MARK = {"ok": "✓", "warning": "!", "problem": "✗", "info": "·"}
_RANK = {"problem": 0, "warning": 1}


@dataclass(slots=True, kw_only=True)
class _Samples:
    points: list[dict[str, Any]] = field(default_factory=list)

    def add(self, metrics: Mapping[str, Any]) -> None:
        self.points.append(dict(metrics))

    def peak(self, pick: Callable[[Mapping[str, Any]], Any]) -> float:
        values = [v for v in (_safe(pick, p) for p in self.points) if isinstance(v, int | float)]
        return max(values, default=0.0)


def _safe(pick: Callable[[Mapping[str, Any]], Any], point: Mapping[str, Any]) -> Any:
    try:
        return pick(point)
    except (KeyError, TypeError):
        return None


async def diagnose(
    subject: Tool | str,
    input: Mapping[str, Any],
    *,
    users: int,
    duration: float,
    config: Mapping[str, Any] | None = None,
) -> tuple[LoadTestReport, dict[str, Any], _Samples, dict[str, Any]]:
    """Load ``subject`` while sampling its metrics; return the load report, the metrics before
    the load, the samples during it, and ``/health`` after it."""
    from ai_spine_tools.testing import load_test

    async with _metrics_reader(subject) as read:
        before = await read("/metrics")
        samples = _Samples()
        done = asyncio.Event()

        async def sample() -> None:
            while not done.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(done.wait(), 0.5)
                samples.add(await read("/metrics"))

        sampler = asyncio.create_task(sample())
        try:
            report = await load_test(
                subject,
                input,
                concurrent_users=users,
                duration=duration,
                think_time=0,
                config=config,
            )
        finally:
            done.set()
            await sampler
        health = await read("/health")
    return report, before, samples, health


@contextlib.asynccontextmanager
async def _metrics_reader(subject: Tool | str) -> Any:
    if isinstance(subject, str):
        from ai_spine_tools.testing._http1 import HTTP1Pool

        pool = HTTP1Pool(subject.rstrip("/"), timeout=10.0)

        async def over_http(path: str) -> dict[str, Any]:
            _status, body = await pool.request("GET", path)
            data = msgspec.json.decode(body) if body else {}
            return data if isinstance(data, dict) else {}

        try:
            yield over_http
        finally:
            await pool.aclose()
        return
    from ai_spine_tools.server._app import create_app
    from ai_spine_tools.server._inprocess import InProcessApp

    app = InProcessApp(create_app(subject))
    await app.start()  # the tool's setup, and the diagnostics of this app

    async def in_process(path: str) -> dict[str, Any]:
        response = await app.request("GET", path)
        data = msgspec.json.decode(response.body)
        return data if isinstance(data, dict) else {}

    try:
        yield in_process
    finally:
        await app.stop()


def findings(
    report: LoadTestReport,
    before: Mapping[str, Any],
    samples: _Samples,
    health: Mapping[str, Any],
    *,
    in_process: bool,
) -> dict[str, list[Finding]]:
    """Turn the measurements into findings, section by section."""
    after = report.tool_metrics or (samples.points[-1] if samples.points else {})
    sections: dict[str, list[Finding]] = {}
    lat = report.latency
    rate = report.requests_per_second
    sections["Throughput and latency"] = [
        _check(
            rate >= TARGET_RPS,
            f"throughput {rate:,.0f} requests/s with {report.concurrent_users} users "
            f"(target: more than {TARGET_RPS:.0f})",
            "find where the time goes with ai-spine profile; for CPU-bound tools run the "
            "work in processes (await context.to_process(fn, ...) or executor='process'; "
            "docs: CPU-bound work) and add workers (--workers)",
            priority=60,
        ),
        _check(
            lat.p99_ms < TARGET_P99_MS,
            f"latency p99 {lat.p99_ms:,.1f} ms, p50 {lat.p50_ms:,.1f} ms "
            f"(target for a simple tool: p99 under {TARGET_P99_MS:.0f} ms)",
            "see the event loop and pools below; cache results (cache={'ttl': ...}) or "
            "time the slow calls with context.metrics.timer(...)",
            priority=50,
        ),
        _check(
            report.error_rate < TARGET_ERROR_RATE,
            f"error rate {report.error_rate:.2%} of {report.total_requests:,} requests"
            + (f" ({_codes(report.errors_by_code)})" if report.errors_by_code else "")
            + f" (target: under {TARGET_ERROR_RATE:.0%})",
            "read the server log for these errors; ai-spine call TOOL INPUT shows one",
            priority=10,
        ),
    ]
    rss_before = _get(before, "resources", "memory_usage_bytes") or 0
    points = [
        (_get(p, "requests", "total") or 0, _get(p, "resources", "memory_usage_bytes") or 0)
        for p in samples.points
    ]
    points = [p for p in points if p[1]]
    trend = leak_verdict(points, min_samples=4, min_requests=50, min_growth_mb=4.0)
    where = "this process, load generator included" if in_process else "the server process"
    memory = [
        _check(
            rss_before / _MB < TARGET_BASELINE_MB,
            f"baseline RSS {rss_before / _MB:.1f} MB before the load ({where}; "
            f"target: under {TARGET_BASELINE_MB:.0f} MB)",
            "import heavy libraries lazily, load large data on first use, or keep it outside "
            "the process (Redis, a database)",
            priority=70,
        ),
    ]
    if points:
        first, last = points[0][1] / _MB, points[-1][1] / _MB
        text = (
            f"RSS trend {first:.1f} → {last:.1f} MB over "
            f"{points[-1][0] - points[0][0]:,} requests "
            f"({trend.slope_mb_per_1k_requests:+.2f} MB per 1000 requests): "
            + ("growing steadily, a leak" if trend.leaking else trend.reason)
        )
        memory.append(
            _check(
                not trend.leaking,
                text,
                "something keeps memory per request: a global list or dict, a cache without "
                "max size, connections or listeners never closed; confirm with "
                "ai-spine load TOOL --leak-check",
                priority=30,
            )
        )
    else:
        memory.append(Finding(level="info", message="RSS trend: no samples during the load"))
    sections["Memory"] = memory
    lag = _get(after, "resources", "event_loop_lag_ms") or {}
    blocked = _get(after, "resources", "event_loop_blocked") or {}
    peak_lag = max(samples.peak(lambda p: p["resources"]["event_loop_lag_ms"]["max"]), 0.0)
    max_lag = max(float(lag.get("max", 0.0) or 0.0), peak_lag)
    threshold = float(blocked.get("threshold_ms", 100) or 100)
    by_tool = blocked.get("by_tool") or {}
    if not lag:
        loop = [Finding(level="info", message="event-loop lag: not reported (diagnostics off)")]
    elif by_tool:
        names = ", ".join(f"{name} ({n}x)" for name, n in by_tool.items())
        loop = [
            Finding(
                level="problem",
                message=f"the event loop was blocked past {threshold:.0f} ms by: {names}; "
                f"worst lag {max_lag:,.0f} ms",
                fix="a blocking call runs inside async execute: use an async library or "
                "await asyncio.sleep, or declare execute with a plain def so it runs in the "
                "thread pool; CPU-bound work belongs in processes: await "
                "context.to_process(fn, ...) or create_tool(..., executor='process') (docs: "
                "CPU-bound work). The server log names the call with "
                "AI_SPINE_BLOCKING_STACKS=true",
                priority=20,
            )
        ]
    else:
        loop = [
            _check(
                max_lag < threshold,
                f"event-loop lag max {max_lag:,.1f} ms, last {float(lag.get('current', 0)):.1f} "
                f"ms (blocking threshold {threshold:.0f} ms); no execute blocked the loop",
                "the loop was late without a tool on its stack: CPU-heavy work or garbage "
                "collection between requests; profile with ai-spine profile",
                priority=40,
            )
        ]
    sections["Event loop"] = loop
    sections["Pools and queue"] = _pressure(after, samples)
    sections["CPU"] = [_cpu(after, samples, where)]
    sections["Installation"] = [Finding(level="info", message=pattern_engine())]
    return sections


def _cpu(after: Mapping[str, Any], samples: _Samples, where: str) -> Finding:
    """CPU use at its peak, as a share of one core and of the cores the server may use."""
    cores = int(_get(after, "resources", "cpu_cores") or samples.peak(_cores) or 1)
    peak = min(samples.peak(lambda p: p["resources"]["cpu_usage_percent"]), 100.0 * cores)
    processes = _get(after, "pools", "processes")
    pool = (
        f"; the process pool's {processes.get('max_size', '?')} workers are not counted"
        if isinstance(processes, Mapping)
        else ""
    )
    return Finding(
        level="info",
        message=f"CPU peaked at {peak:.0f}% of one core, {peak / cores:.0f}% of the {cores} "
        f"core{'s' if cores != 1 else ''} ({where}{pool}); where it goes: "
        "ai-spine profile TOOL --duration 20 --out profile.svg; CPU-bound work runs on every "
        "core with context.to_process or executor='process' (docs: CPU-bound work)",
    )


def _cores(point: Mapping[str, Any]) -> Any:
    return point["resources"]["cpu_cores"]


def _pressure(after: Mapping[str, Any], samples: _Samples) -> list[Finding]:
    concurrency = _get(after, "concurrency") or {}
    limit = concurrency.get("limit", 0)
    in_flight = samples.peak(lambda p: p["concurrency"]["in_flight"])
    queued = samples.peak(lambda p: p["concurrency"]["queued"])
    rejected = concurrency.get("rejected", 0) or 0
    out = [
        _check(
            not rejected,
            f"executions in flight peaked at {in_flight:.0f} of {limit} allowed, queue peaked "
            f"at {queued:.0f} of {concurrency.get('queue_size', 0)}, {rejected} refused with "
            "OVERLOADED",
            "raise AI_SPINE_MAX_CONCURRENT_EXECUTIONS if the machine has room, or add workers "
            "and instances",
            priority=35,
        )
    ]
    pools = _get(after, "pools") or {}
    for name, figures in sorted(pools.items()):
        if "restarts" in figures:  # the process pool: workers, not connections
            out.append(_process_pool(name, figures, samples))
            continue
        wait = figures.get("acquire_wait_ms") or {}
        waiting = samples.peak(functools.partial(_pool_waiting, name))
        size = figures.get("max_size", figures.get("max_connections", "?"))
        timeouts = figures.get("acquire_timeouts", 0) or 0
        if wait:
            text = (
                f"pool {name}: waits to get a connection avg {wait.get('avg', 0):.1f} ms, "
                f"max {wait.get('max', 0):.1f} ms; up to {waiting:.0f} callers waiting for "
                f"{size} connections; {timeouts} timeouts"
            )
            bad = wait.get("max", 0) >= 100 or timeouts
        else:
            text = f"pool {name}: {figures.get('in_use', 0)} of {size} connections in use"
            bad = waiting > 0
        out.append(
            _check(
                not bad,
                text,
                f"pool {name} is too small for the load or holds connections too long: raise "
                "its size (DB_POOL_MAX, AI_SPINE_MAX_CONNECTIONS), keep transactions short",
                priority=25,
            )
        )
    if not pools:
        out.append(Finding(level="ok", message="connection pools: none in use"))
    return out


def _process_pool(name: str, figures: Mapping[str, Any], samples: _Samples) -> Finding:
    busy = samples.peak(lambda p: p["pools"][name]["busy"])
    queued = samples.peak(lambda p: p["pools"][name]["queued"])
    restarts = figures.get("restarts", 0) or 0
    return _check(
        not queued and not restarts,
        f"process pool: {busy:.0f} of {figures.get('max_size', '?')} workers busy at the peak, "
        f"up to {queued:.0f} calls waiting for one; {restarts} workers replaced "
        f"({figures.get('crashes', 0)} crashed, the rest stopped past a deadline)",
        "calls waited for a worker: raise AI_SPINE_PROCESS_WORKERS if cores are idle, or add "
        "instances; replaced workers mean calls ran past their deadline (raise timeout_ms or "
        "split the work) or crashed (see the server log)",
        priority=25,
    )


def _pool_waiting(name: str, point: Mapping[str, Any]) -> Any:
    return point["pools"][name]["waiting"]


def _check(ok: bool, text: str, fix: str, *, priority: int) -> Finding:
    return Finding(level="ok" if ok else "problem", message=text, fix=fix, priority=priority)


def _codes(by_code: Mapping[str, int]) -> str:
    return ", ".join(f"{code} {n:,}" for code, n in sorted(by_code.items(), key=lambda kv: -kv[1]))


def _get(data: Mapping[str, Any], *keys: str) -> Any:
    value: Any = data
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def render(title: str, sections: Mapping[str, list[Finding]]) -> str:
    """The report as text: each section's findings, then what to fix first."""
    lines = [title, ""]
    for number, (name, items) in enumerate(sections.items(), 1):
        lines.append(f"{number}. {name}")
        lines += [f"   {_MARK[f.level]} {f.message}" for f in items]
        lines.append("")
    todo = sorted(
        (f for items in sections.values() for f in items if f.level in _RANK),
        key=lambda f: (_RANK[f.level], f.priority),
    )
    lines.append(f"{len(sections) + 1}. What to fix first")
    if todo:
        lines += [f"   {i}. {f.message}\n      fix: {f.fix or ''}" for i, f in enumerate(todo, 1)]
    else:
        lines.append("   nothing: every target is met")
    return "\n".join(lines)


def problems(sections: Mapping[str, list[Finding]]) -> Iterator[Finding]:
    """The findings that miss a target."""
    return (f for items in sections.values() for f in items if f.level == "problem")
