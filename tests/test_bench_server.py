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


def test_the_baseline_and_fastapi_send_the_same_headers_as_ours() -> None:
    """The benchmark compares like with like: the same response headers from every app."""
    import asyncio

    from bench.apps import baseline, fastapi_weather

    import weather
    from ai_spine_tools._app import create_app
    from ai_spine_tools._inprocess import InProcessApp
    from ai_spine_tools._settings import ServerSettings

    body = b'{"input_data": {"city": "Madrid", "units": "celsius"}}'
    headers = [("content-type", "application/json"), ("x-api-key", "bench-key")]

    async def names(app: object) -> set[str]:
        client = InProcessApp(app)  # type: ignore[arg-type]
        await client.start()
        try:
            response = await client.request("POST", "/api/execute", body=body, headers=headers)
        finally:
            await client.stop()
        assert response.status == 200
        return set(response.headers)

    ours = asyncio.run(names(create_app(weather.tool, ServerSettings(api_keys=("bench-key",)))))
    for other in (baseline.app, fastapi_weather.app):
        assert asyncio.run(names(other)) >= ours
