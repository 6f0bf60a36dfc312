"""The server benchmark runs end to end in its smoke mode, and its contenders are like for like."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench import services
from bench.apps._common import result_key
from bench.harness import API_KEY, Probe, Server
from bench.workloads import WORKLOADS

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_SERVICES = os.environ.get("AI_SPINE_REQUIRE_SERVICES") == "1"


def _allowed_skip(reason: str) -> bool:
    """A workload skips only without its service (PostgreSQL, Redis), and never in CI."""
    return "unreachable" in reason and not REQUIRE_SERVICES


@pytest.mark.slow
def test_server_benchmark_smoke_mode_reports_every_app_of_every_workload(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        if REQUIRE_SERVICES:
            pytest.fail("wrk is required (apt-get install wrk)")
        pytest.skip("wrk is not installed (apt-get install wrk)")
    out = tmp_path / "server.json"
    subprocess.run(
        [sys.executable, "-m", "bench.server", "--smoke", "--out", str(out)],
        cwd=ROOT,
        check=True,
        timeout=240,
        capture_output=True,
    )
    workloads = json.loads(out.read_text())["workloads"]
    assert set(workloads) == set(WORKLOADS)
    for name, section in workloads.items():
        if "skipped" in section:
            assert _allowed_skip(section["skipped"]), (name, section["skipped"])
            continue
        assert set(section["results"]) == {app.name for app in WORKLOADS[name].apps}
        for app in section["results"].values():
            assert app["requests_per_s"] > 0, (name, app["name"])
            assert app["idle_rss_mb"] > 0
            assert app["non_2xx"] == 0, (name, app["name"])
            assert app["errors"] == 0, (name, app["name"])
        assert section["failures"] == 0, name
        assert section["ratios"]["ours_vs_yardstick_rps"] > 0
        assert section["ratios"]["ours_vs_fastapi_rps"] > 0
    assert workloads["no_io"]["import_time_ms"] > 0
    if "results" in workloads["redis_l2"]:
        checks = workloads["redis_l2"]["results"]["ours"]["rounds"][0]["checks"]
        assert checks["l2_hits"] > 0
        assert checks["l2_hits"] + checks["coalesced"] == checks["result_hits"]
        assert checks["result_misses"] == 0


def test_the_baseline_and_fastapi_send_the_same_headers_as_ours() -> None:
    """The benchmark compares like with like: the same response headers from every app."""
    import asyncio

    from bench.apps import baseline, fastapi_weather

    import weather
    from ai_spine_tools._settings import ServerSettings
    from ai_spine_tools.server._app import create_app
    from ai_spine_tools.server._inprocess import InProcessApp

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


@pytest.mark.parametrize(
    ("city", "units"), [("Madrid", "celsius"), ("City 007", "fahrenheit"), ("Zürich", "celsius")]
)
def test_the_redis_yardsticks_read_the_key_ours_caches_under(city: str, units: str) -> None:
    from bench.apps.redis_ours import tool

    assert result_key(city, units) == tool.cache.key({"city": city, "units": units})
    if units == "celsius":  # the default counts: a request leaving it out shares the key
        assert result_key(city, units) == tool.cache.key({"city": city})


def _services(name: str, stack: ExitStack, bodies: list[bytes]) -> dict[str, str]:
    try:
        if name == "upstream_http":
            return stack.enter_context(services.upstream())
        if name == "postgres":
            return stack.enter_context(services.postgres())
        if name == "redis_l2":
            return stack.enter_context(services.redis_results(WORKLOADS[name].apps[1], bodies))
    except services.ServiceMissingError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    return {}


def _answer(server: Server, body: bytes) -> tuple[set[str], dict[str, Any]]:
    reply = httpx.post(
        f"{server.url}/api/execute",
        content=body,
        headers={"content-type": "application/json", "x-api-key": API_KEY},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return set(reply.headers), reply.json()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["upstream_http", "postgres", "redis_l2", "cpu"])
def test_every_app_of_a_workload_answers_as_ours_does(name: str) -> None:
    """Same headers (at least ours), same envelope, the same output: the same work."""
    workload = WORKLOADS[name]
    bodies = workload.bodies()
    body = bodies[len(bodies) // 2]
    with ExitStack() as stack:
        env = _services(name, stack, bodies)
        answers = {}
        for app in workload.apps:
            server = Server(app, Probe(workload.probe or bodies[0]), env)
            try:
                answers[app.name] = _answer(server, body)
            finally:
                server.stop()
    our_headers, ours = answers.pop("ours")
    for other, (headers, answer) in answers.items():
        assert headers >= our_headers, other
        assert answer.keys() == ours.keys(), other
        assert answer["status"] == "success"
        assert answer["output_data"] == ours["output_data"], other
        if "cache" in ours:
            assert answer["cache"]["key"] == ours["cache"]["key"]
            assert answer["cache"]["hit"] is ours["cache"]["hit"] is True
