"""``ai-spine profile``: a bounded load against a tool while a sampling profiler watches.

Two well-kept profilers, picked by the output file's suffix:

- ``.html``: pyinstrument, in this process (the tool served in-process by ``load_test``); the
  page is pyinstrument's interactive call tree.
- ``.svg``: py-spy, a separate process sampling the target's stacks (this process, or with
  ``--server`` a local ``ai-spine serve`` of the tool, or ``--pid`` a server you run); the file is
  a flame graph. py-spy reads another process's memory: it needs root or ptrace permission
  (``--cap-add SYS_PTRACE`` in Docker).

Either way the top frames by own time (where the CPU went) are printed as text. Both come in the
``[profile]`` extra.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ai_spine_tools.core._tool import Tool
from ai_spine_tools.exceptions import MissingExtraError

__all__ = ["FrameCost", "profile_tool", "top_frames_from_flamegraph"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameCost:
    """One function's share of the samples: its own (self) and its total (inclusive) share."""

    frame: str
    own_percent: float
    total_percent: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileResult:
    """What a profiling run wrote and measured."""

    path: Path
    profiler: str
    requests: int
    requests_per_second: float
    top: list[FrameCost]

    def summary(self, limit: int = 15) -> str:
        """The top frames as a table, with what was written where."""
        lines = [
            f"{self.profiler} profile of {self.requests:,} requests "
            f"({self.requests_per_second:,.0f} req/s) written to {self.path}",
            "",
            "  own %  total %  frame",
        ]
        lines += [
            f"  {f.own_percent:>5.1f}  {f.total_percent:>7.1f}  {f.frame}" for f in self.top[:limit]
        ]
        if not self.top:
            lines.append("  (no samples)")
        return "\n".join(lines)


def profile_tool(
    tool: Tool | None,
    input: Mapping[str, Any],
    *,
    out: Path,
    duration: float,
    users: int = 20,
    url: str | None = None,
    pid: int | None = None,
    config: Mapping[str, Any] | None = None,
    rate: int = 200,
) -> ProfileResult:
    """Load ``tool`` (in-process) or ``url`` for ``duration`` seconds while profiling, write the
    profile to ``out`` (``.svg``: py-spy on ``pid`` or this process; ``.html``: pyinstrument)."""
    suffix = out.suffix.lower()
    if suffix not in (".svg", ".html"):
        raise ValueError(f"the profile is .svg (py-spy) or .html (pyinstrument), not {out.name!r}")
    if suffix == ".html" and (url is not None or pid is not None):
        raise ValueError("pyinstrument (.html) profiles this process only: use .svg for a server")
    subject: Tool | str
    if url is not None:
        subject = url
    elif tool is not None:
        subject = tool
    else:
        raise ValueError("give a tool, or --url")
    if suffix == ".html":
        return _with_pyinstrument(subject, input, out, duration, users, config)
    return _with_py_spy(subject, input, out, duration, users, config, pid or os.getpid(), rate)


def _load(
    subject: Tool | str,
    input: Mapping[str, Any],
    duration: float,
    users: int,
    config: Mapping[str, Any] | None,
) -> tuple[int, float]:
    from ai_spine_tools.testing import load_test

    report = asyncio.run(
        load_test(
            subject, input, concurrent_users=users, duration=duration, think_time=0, config=config
        )
    )
    return report.total_requests, report.requests_per_second


def _with_pyinstrument(
    subject: Tool | str,
    input: Mapping[str, Any],
    out: Path,
    duration: float,
    users: int,
    config: Mapping[str, Any] | None,
) -> ProfileResult:
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise MissingExtraError("ai-spine profile", "pyinstrument", "profile") from None
    profiler = Profiler(interval=0.001)
    profiler.start()
    try:
        requests, rate = _load(subject, input, duration, users, config)
    finally:
        profiler.stop()
    out.write_text(profiler.output_html(), encoding="utf-8")
    session = profiler.last_session
    top: list[FrameCost] = []
    if session is not None:
        root = session.root_frame()
        if root is not None:
            top = _top_from_tree(root)
    return ProfileResult(
        path=out, profiler="pyinstrument", requests=requests, requests_per_second=rate, top=top
    )


def _top_from_tree(root: Any) -> list[FrameCost]:
    own: dict[str, float] = defaultdict(float)
    total: dict[str, float] = defaultdict(float)
    whole = root.time or 1e-9
    stack = [(root, frozenset[str]())]
    while stack:
        frame, above = stack.pop()
        if frame.is_synthetic:
            continue
        name = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
        own[name] += frame.total_self_time
        if name not in above:  # recursion counts once in the total
            total[name] += frame.time
        stack.extend((child, above | {name}) for child in frame.children)
    return _ranked(own, total, whole)


def _ranked(own: dict[str, float], total: dict[str, float], whole: float) -> list[FrameCost]:
    ranked = sorted(own, key=lambda name: own[name], reverse=True)
    return [
        FrameCost(
            frame=name,
            own_percent=round(100.0 * own[name] / whole, 2),
            total_percent=round(100.0 * total.get(name, own[name]) / whole, 2),
        )
        for name in ranked
        if own[name] > 0
    ]


def _with_py_spy(
    subject: Tool | str,
    input: Mapping[str, Any],
    out: Path,
    duration: float,
    users: int,
    config: Mapping[str, Any] | None,
    pid: int,
    rate: int,
) -> ProfileResult:
    executable = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(executable).exists():
        raise MissingExtraError("ai-spine profile --server", "py-spy", "profile")
    command = [executable, "record", "--pid", str(pid), "--output", str(out)]
    command += ["--format", "flamegraph", "--rate", str(rate), "--nonblocking"]
    command += ["--duration", str(max(1, round(duration)))]
    spy = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(0.3)  # let it attach before the load starts
    if spy.poll() is not None:
        output = spy.stdout.read().decode(errors="replace") if spy.stdout else ""
        raise ValueError(f"py-spy could not attach to process {pid} (root or ptrace?): {output}")
    try:
        requests, per_second = _load(subject, input, duration, users, config)
        spy.wait(timeout=duration + 30)
    finally:
        if spy.poll() is None:
            spy.terminate()
            spy.wait(10)
    output = spy.stdout.read().decode(errors="replace") if spy.stdout else ""
    if spy.stdout is not None:
        spy.stdout.close()
    if not out.exists() or out.stat().st_size == 0:
        raise ValueError(f"py-spy wrote no profile: {output.strip()[-500:]}")
    top = top_frames_from_flamegraph(out.read_text(encoding="utf-8"))
    return ProfileResult(
        path=out, profiler="py-spy", requests=requests, requests_per_second=per_second, top=top
    )


_FRAME = re.compile(
    r'<title>(?P<title>[^<]*)</title><rect[^>]*?\by="(?P<y>[\d.]+)"[^>]*?'
    r'fg:x="(?P<x>\d+)"[^>]*?fg:w="(?P<w>\d+)"'
)
_SUFFIX = re.compile(r" \([\d,]+ samples?, [\d.]+%\)$")


def top_frames_from_flamegraph(svg: str) -> list[FrameCost]:
    """The frames of a py-spy (inferno) flame graph ranked by own samples: each frame's width
    less its children's (the frames one level further out, within its span)."""
    frames = []
    for match in _FRAME.finditer(svg):
        name = _SUFFIX.sub("", html.unescape(match["title"]))
        frames.append((float(match["y"]), int(match["x"]), int(match["w"]), name))
    if not frames:
        return []
    root = max(frames, key=lambda f: f[2])
    levels = sorted({f[0] for f in frames}, key=lambda y: abs(y - root[0]))
    by_level: dict[float, list[tuple[float, int, int, str]]] = defaultdict(list)
    for frame in frames:
        by_level[frame[0]].append(frame)
    own: dict[str, float] = defaultdict(float)
    total: dict[str, float] = defaultdict(float)
    for index, level in enumerate(levels):
        outer = by_level[levels[index + 1]] if index + 1 < len(levels) else []
        for _y, x, w, name in by_level[level]:
            if name == "all":
                continue
            children = sum(cw for _, cx, cw, _ in outer if x <= cx < x + w)
            own[name] += w - children
            total[name] += w
    return _ranked(own, total, float(root[2]))
