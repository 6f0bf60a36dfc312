"""``leak_check``: the same load, several rounds, and the server's RSS after each.

A tool that keeps something per request (a global list, an unbounded cache, connections it never
closes) grows in step with the requests. Each round is one ``load_test`` with the same options;
after it, the server's resident memory is read: in-process, this process's RSS after a garbage
collection (so garbage waiting to be collected does not count); by URL, the server's
``/metrics`` ``resources.memory_usage_bytes``. The first round is the warm-up (imports, caches
filling once, pools opening); the verdict (``leak_verdict``) judges the rounds from there on.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ai_spine_tools.core._tool import Tool
from ai_spine_tools.observability._leakwatch import LeakVerdict, leak_verdict, process_rss
from ai_spine_tools.testing._load import InputSource, load_test
from ai_spine_tools.testing._report import LoadTestReport

__all__ = ["LeakCheckReport", "LeakRound", "leak_check"]

_MB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class LeakRound:
    """RSS after one round, and the requests sent up to then."""

    round: int
    requests: int
    rss_bytes: int
    requests_per_second: float
    errors: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LeakCheckReport:
    """Each round's RSS and the verdict on their trend."""

    target: str
    mode: str
    rounds: tuple[LeakRound, ...]
    verdict: LeakVerdict

    @property
    def leaking(self) -> bool:
        """True when RSS grew steadily with the requests."""
        return self.verdict.leaking

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "target": self.target,
            "mode": self.mode,
            "rounds": [asdict(r) for r in self.rounds],
            "verdict": self.verdict.to_dict(),
        }

    def summary(self) -> str:
        """Return a readable table of RSS per round and the verdict."""
        lines = [
            f"Leak check of {self.target} ({self.mode}): {len(self.rounds)} rounds",
            "",
            "  round   requests     RSS MB   change MB    req/s   errors",
        ]
        previous: int | None = None
        for r in self.rounds:
            change = "" if previous is None else f"{(r.rss_bytes - previous) / _MB:+.2f}"
            note = "  (warm-up)" if r.round == 1 else ""
            lines.append(
                f"  {r.round:>5}{r.requests:>11,}{r.rss_bytes / _MB:>11.1f}{change:>12}"
                f"{r.requests_per_second:>9,.0f}{r.errors:>9,}{note}"
            )
            previous = r.rss_bytes
        verdict = self.verdict
        word = "LEAK SUSPECTED" if verdict.leaking else "no leak"
        lines += ["", f"  verdict: {word}: {verdict.reason}"]
        return "\n".join(lines)


async def leak_check(
    tool_or_url: Tool | str,
    input: InputSource | None = None,
    *,
    rounds: int = 5,
    slope_mb: float = 1.0,
    min_growth_mb: float = 4.0,
    on_round: Callable[[LeakRound], None] | None = None,
    **load_options: Any,
) -> LeakCheckReport:
    """Run ``rounds`` rounds of ``load_test(tool_or_url, input, **load_options)`` and judge
    the RSS after each: a leak when it grew steadily by at least ``slope_mb`` MB per 1000
    requests and ``min_growth_mb`` in all after the warm-up round."""
    if not isinstance(rounds, int) or rounds < 3:
        raise ValueError(f"a leak check needs at least 3 rounds (got {rounds!r})")
    tool = tool_or_url if isinstance(tool_or_url, Tool) else None
    results: list[LeakRound] = []
    sent = 0
    target = mode = ""
    own = tool is not None and not tool.started  # start it once, not once per round
    if tool is not None and own:
        await tool.start()
    try:
        for number in range(1, rounds + 1):
            report: LoadTestReport = await load_test(tool_or_url, input, **load_options)
            target, mode = report.target, report.mode
            sent += report.total_requests
            if tool is not None:
                gc.collect()
                rss = process_rss()
            else:
                resources = (report.tool_metrics or {}).get("resources") or {}
                rss = int(resources.get("memory_usage_bytes") or 0)
                if not rss:
                    raise ValueError(f"{tool_or_url}/metrics reports no memory_usage_bytes")
            result = LeakRound(
                round=number,
                requests=sent,
                rss_bytes=rss,
                requests_per_second=report.requests_per_second,
                errors=report.errors,
            )
            results.append(result)
            if on_round is not None:
                on_round(result)
    finally:
        if tool is not None and own:
            await tool.stop()
    verdict = leak_verdict(
        [(r.requests, r.rss_bytes) for r in results],
        slope_mb=slope_mb,
        min_growth_mb=min_growth_mb,
        min_samples=3,
        min_requests=1,
    )
    return LeakCheckReport(target=target, mode=mode, rounds=tuple(results), verdict=verdict)


def run_leak_check(
    subject: Tool | str, input: InputSource | None, *, rounds: int, quiet: bool, **options: Any
) -> None:
    """``ai-spine load --leak-check``: print RSS per round and the verdict; exit 1 on a leak."""
    import asyncio
    import sys

    import click

    def show(result: LeakRound) -> None:
        if not quiet:
            click.echo(
                f"round {result.round}/{rounds}: {result.requests:,} requests, "
                f"RSS {result.rss_bytes / _MB:.1f} MB",
                err=True,
            )

    try:
        report = asyncio.run(leak_check(subject, input, rounds=rounds, on_round=show, **options))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report.summary())
    sys.exit(1 if report.leaking else 0)
