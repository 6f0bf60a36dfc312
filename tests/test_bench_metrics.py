"""The in-process observability benchmark runs end to end in its smoke mode, so it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_metrics_benchmark_smoke_mode_reports_every_variant(tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    subprocess.run(
        [sys.executable, "-m", "bench.metrics", "--smoke", "--out", str(out)],
        cwd=ROOT,
        check=True,
        timeout=120,
        capture_output=True,
    )
    results = json.loads(out.read_text())
    assert set(results["per_request_us"]) >= {"metrics_on", "metrics_off", "request_logs"}
    assert all(value > 0 for value in results["per_request_us"].values())
    assert set(results["pieces_ns"]) >= {"record_success", "histogram_observe"}
    assert isinstance(results["metrics_overhead"], float)
