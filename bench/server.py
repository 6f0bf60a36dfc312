"""Side-by-side HTTP benchmark of the work tools do: a bare yardstick, ours and FastAPI.

Workloads (``bench/workloads.py``), each against a bare ASGI + msgspec yardstick using the best
client for the job, and FastAPI doing the same with the same client:

- ``no_io``: the weather tool, no I/O (also ours answering from its result cache);
- ``upstream_http``: the weather from a local upstream JSON API (``context.http``; aiohttp);
- ``postgres``: a lookup by primary key (``PostgresPool``; an asyncpg pool);
- ``redis_l2``: a result-cache hit read from Redis (redis-py with hiredis);
- ``cpu``: ~50 ms of hashing in a process pool (``context.to_process``; ProcessPoolExecutor),
  with ``/health`` polled meanwhile, and the check of four ~1 s executions at once.

Every app serves 32 wrk keep-alive connections on uvicorn (one worker, uvloop, httptools), ours
through ``ai-spine serve``; apps alternate in rounds and keep their medians (``bench/harness.py``).
Results are ratios against the yardstick and FastAPI, with every failed request counted. The
no-I/O workload also records idle and peak RSS, a leak check (RSS after 10,000 and after 100,000
requests) and the cold import time of ``ai_spine_tools``.

    python -m bench.server                       # the full run, targets checked (quiet machine)
    python -m bench.server --smoke               # every workload briefly, no targets
    python -m bench.server --workload postgres   # one workload (repeat the option for more)
    python -m bench.server --metrics-off         # also ours with AI_SPINE_METRICS=false (no_io)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from bench.harness import ROOT, Probe, Server, wrk
from bench.workloads import METRICS_OFF, NO_IO, WEATHER_BODY, WORKLOADS, Workload, lua, run_workload

RESULTS = ROOT / "bench" / "results"


def leak_check(total: int, connections: int) -> dict[str, float]:
    """RSS of a fresh server of ours after 10% of ``total`` requests and after all of them."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(lua([WEATHER_BODY]))
        script = Path(handle.name)
    server = Server(NO_IO.apps[1], Probe(WEATHER_BODY))
    try:
        served = 0
        marks: dict[str, float] = {"idle_mb": round(server.rss_mb(), 1)}
        first = total // 10
        while served < total:
            served += wrk(f"{server.url}/api/execute", 1, connections, script).requests
            if "after_10pct_mb" not in marks and served >= first:
                marks["after_10pct_mb"] = round(server.rss_mb(), 1)
                marks["requests_at_10pct"] = served
        marks["after_all_mb"] = round(server.rss_mb(), 1)
        marks["requests"] = served
        marks["growth_ratio"] = round(marks["after_all_mb"] / marks["after_10pct_mb"], 3)
        return marks
    finally:
        server.stop()
        script.unlink()


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
    workloads: list[Workload],
    *,
    seconds: float,
    rounds: int,
    connections: int,
    leak_requests: int,
    smoke: bool = False,
) -> dict[str, Any]:
    """Run ``workloads`` one after the other and return every result."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run 'apt-get install wrk' (Debian) and try again")
    sections: dict[str, Any] = {}
    for workload in workloads:
        print(f"-- {workload.name}", flush=True)
        section = run_workload(
            workload, seconds=seconds, rounds=rounds, connections=connections, smoke=smoke
        )
        if workload.name == NO_IO.name and "skipped" not in section:
            section["leak_check"] = leak_check(leak_requests, connections) if leak_requests else {}
            section["import_time_ms"] = import_time_ms()
        sections[workload.name] = section
    return {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "settings": {"seconds": seconds, "rounds": rounds, "connections": connections},
        "workloads": sections,
    }


def report(results: dict[str, Any], *, check: bool) -> bool:
    """Print each workload's table, ratios and targets; return whether every target is met
    (a skipped workload's targets are listed as skipped, neither met nor failed)."""
    tally = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for name, section in results["workloads"].items():
        print(f"\n== {name}" + (f": {section['title']}" if "title" in section else ""))
        if "skipped" in section:
            print(section["skipped"])
            if check:
                for label, _ in WORKLOADS[name].targets:
                    tally["SKIP"] += 1
                    print(f"[SKIP] {label}")
            continue
        print(
            f"{'app':<18}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'idle MB':>9}{'failed':>8}", end=""
        )
        print(f"{'health p99':>12}" if WORKLOADS[name].health else "")
        for app, r in section["results"].items():
            print(
                f"{app:<18}{r['requests_per_s']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                f"{r['idle_rss_mb']:>9.1f}{r['non_2xx'] + r['errors']:>8}",
                end="",
            )
            print(f"{r['health_p99_ms']:>12.2f}" if r["health_p99_ms"] is not None else "")
        print(", ".join(f"{key} {value}" for key, value in section["ratios"].items()))
        for key in ("leak_check", "import_time_ms", "concurrency"):
            if key in section:
                print(f"{key}: {section[key]}")
        if section["failures"]:
            print(f"FAILED REQUESTS: {section['failures']}")
        if check:
            for label, met in WORKLOADS[name].targets:
                verdict = "PASS" if met(section) else "FAIL"
                tally[verdict] += 1
                print(f"[{verdict}] {label}")
    if check:
        print(f"\ntargets: {tally['PASS']} met, {tally['FAIL']} failed, {tally['SKIP']} skipped")
    return tally["FAIL"] == 0


def plot(results: dict[str, Any], path: Path) -> None:
    """Draw one panel per workload: requests/s per app, p99 written on each bar."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart drawn")
        return
    sections = results["workloads"]
    if not sections:
        return
    columns = min(3, len(sections))
    rows = -(-len(sections) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 4 * rows), squeeze=False)
    colors = {"yardstick": "#999999", "fastapi": "#e2862a"}
    for axis, (name, section) in zip(axes.flat, sections.items(), strict=False):
        if "skipped" in section:  # say so where its panel would be
            reason = textwrap.fill(section["skipped"], 40)
            axis.text(0.5, 0.5, f"{name}\n\n{reason}", ha="center", va="center", fontsize=9)
            axis.set_axis_off()
            continue
        apps = list(section["results"])
        values = [section["results"][app] for app in apps]
        bars = axis.bar(
            apps,
            [v["requests_per_s"] for v in values],
            color=[colors.get(app, "#2a7ae2") for app in apps],
        )
        for bar, v in zip(bars, values, strict=True):
            note = f"p99 {v['p99_ms']:.1f} ms"
            if v["health_p99_ms"] is not None:
                note += f"\nhealth p99 {v['health_p99_ms']:.1f} ms"
            axis.annotate(
                note,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        ratio = section["ratios"]["ours_vs_yardstick_rps"]
        axis.set_title(f"{name}: {section['title']}\nours / yardstick = {ratio}", fontsize=9)
        axis.set_ylabel("requests/s (higher is better)", fontsize=8)
        axis.margins(y=0.2)
        axis.tick_params(axis="x", labelrotation=20, labelsize=8)
    for axis in list(axes.flat)[len(sections) :]:
        axis.set_visible(False)
    figure.suptitle("uvicorn, 1 worker, 32 connections; medians of alternating rounds")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, report and save."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="every workload briefly, no targets")
    parser.add_argument(
        "--workload", action="append", choices=list(WORKLOADS), help="run only this workload"
    )
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
    workloads = [WORKLOADS[name] for name in args.workload or WORKLOADS]
    if args.metrics_off:
        workloads = [
            dataclasses.replace(w, apps=[*w.apps, METRICS_OFF]) if w is NO_IO else w
            for w in workloads
        ]
    results = run(
        workloads,
        seconds=args.seconds,
        rounds=args.rounds,
        connections=args.connections,
        leak_requests=args.leak_requests,
        smoke=args.smoke,
    )
    ok = report(results, check=not args.smoke)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if not args.smoke:
        plot(results, args.out.with_suffix(".png"))
    return 0 if ok or args.smoke else 1


if __name__ == "__main__":
    raise SystemExit(main())
