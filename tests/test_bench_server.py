"""The server benchmark runs end to end in its smoke mode, so it cannot rot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_server_benchmark_smoke_mode_reports_every_app(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("AI_SPINE_REQUIRE_SERVICES") == "1":
            pytest.fail("wrk is required (apt-get install wrk)")
        pytest.skip("wrk is not installed (apt-get install wrk)")
    out = tmp_path / "server.json"
    subprocess.run(
        [sys.executable, "-m", "bench.server", "--smoke", "--out", str(out)],
        cwd=ROOT,
        check=True,
        timeout=180,
        capture_output=True,
    )
    results = json.loads(out.read_text())
    assert set(results["results"]) == {"baseline", "ours", "fastapi", "ours_cache_hit"}
    for app in results["results"].values():
        assert app["requests_per_s"] > 0
        assert app["idle_rss_mb"] > 0
        assert all(round_["non_2xx"] == 0 for round_ in app["rounds"])
    assert results["ratios"]["ours_vs_baseline_rps"] > 0
    assert results["import_time_ms"] > 0
