"""``ai-spine profile``: a bounded load under pyinstrument (HTML) or py-spy (an SVG flame graph)
writes a non-empty profile and prints the top frames."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ai_spine_tools.cli import main
from ai_spine_tools.cli._profile import top_frames_from_flamegraph

WEATHER = str(Path(__file__).resolve().parent.parent / "examples" / "weather.py")
SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")

FLAMEGRAPH = """<svg>
<g><title>all (100 samples, 100%)</title><rect x="0%" y="52" width="100%" fg:x="0" fg:w="100"/></g>
<g><title>main (app.py:1) (100 samples, 100.00%)</title><rect y="68" fg:x="0" fg:w="100"/></g>
<g><title>parse (app.py:9) (30 samples, 30.00%)</title><rect x="0%" y="84" fg:x="0" fg:w="30"/></g>
<g><title>encode (app.py:20) (60 samples, 60.00%)</title><rect y="84" fg:x="30" fg:w="60"/></g>
<g><title>dumps (json.py:5) (50 samples, 50.00%)</title><rect y="100" fg:x="30" fg:w="50"/></g>
</svg>"""


def test_top_frames_are_ranked_by_own_samples() -> None:
    top = {
        f.frame: (f.own_percent, f.total_percent) for f in top_frames_from_flamegraph(FLAMEGRAPH)
    }
    assert top == {
        "dumps (json.py:5)": (50.0, 50.0),
        "parse (app.py:9)": (30.0, 30.0),
        "encode (app.py:20)": (10.0, 60.0),
        "main (app.py:1)": (10.0, 100.0),
    }


def test_profile_writes_an_html_profile_in_process(tmp_path: Path) -> None:
    out = tmp_path / "profile.html"
    result = CliRunner().invoke(
        main, ["profile", WEATHER, "--duration", "1.5", "--users", "4", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000
    assert "pyinstrument profile of" in result.output
    assert "own %  total %  frame" in result.output


@pytest.mark.skipif(
    not os.path.exists(SPY) or os.geteuid() != 0, reason="py-spy needs root to attach"
)
def test_profile_writes_a_flame_graph_of_a_local_server(tmp_path: Path) -> None:
    out = tmp_path / "profile.svg"
    result = CliRunner().invoke(
        main,
        ["profile", WEATHER, "--server", "--duration", "2", "--users", "4", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<?xml")
    assert "py-spy profile of" in result.output
    assert re.match(r"^\s+[\d.]+\s+[\d.]+\s+\S", result.output.splitlines()[3])  # a ranked frame
