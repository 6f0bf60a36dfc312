"""The validation benchmark still runs (smoke mode: tiny counts, no targets checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_validation_benchmark_smoke_run_writes_results(tmp_path: Path) -> None:
    pytest.importorskip("pydantic")
    output = tmp_path / "validation.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.validation", "--smoke", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "weather, valid" in completed.stdout
    assert "smoke run: targets not checked" in completed.stdout
    results = json.loads(output.read_text())
    assert results["smoke"] is True
    assert [row["case"] for row in results["rows"]] == [
        "weather, valid",
        "weather, invalid",
        "15 fields, valid",
        "15 fields, invalid",
    ]
    for row in results["rows"]:
        assert row["ours_ns"] > 0
        assert row["msgspec_ns"] > 0
        assert row["pydantic_ns"] > 0
