"""The live dashboard: opt-in, the same auth as execute (HTTP Basic for browsers), a strict
Content-Security-Policy, and a real headless browser that finds its charts drawn under load."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import weather
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.testing import AsyncToolTestClient
from ai_spine_tools.testing._http1 import HTTP1Pool
from docsimages import publish
from serverproc import TOOLS, running_server

KEY = "dashboard-key-0123456789abcdef"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


async def test_the_dashboard_is_off_unless_asked() -> None:
    async with AsyncToolTestClient(weather.tool, ServerSettings()) as client:
        response = await client.get("/dashboard")
    assert response.status_code == 404
    assert "GET /dashboard" not in response.text
    assert "the dashboard is off; set AI_SPINE_DASHBOARD=true" in (response.error_message or "")
    assert response.error_details["enable_with"] == "AI_SPINE_DASHBOARD=true"


async def test_the_page_is_served_under_a_strict_policy() -> None:
    async with AsyncToolTestClient(weather.tool, ServerSettings(dashboard=True)) as client:
        page = await client.get("/dashboard")
        listed = (await client.get("/")).json["endpoints"]
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["x-frame-options"] == "DENY"
    policy = page.headers["content-security-policy"]
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert re.search(r"script-src [^;]*'sha256-[A-Za-z0-9+/=]+'", policy)
    assert re.search(r"style-src [^;]*'sha256-[A-Za-z0-9+/=]+'", policy)
    assert "frame-ancestors 'none'" in policy
    assert 'id="c-latency"' in page.text
    assert ' style="' not in page.text  # inline style attributes would need 'unsafe-hashes'
    assert "GET /dashboard" in listed


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        (basic("anyone", "wrong-key"), 401),
        (basic(KEY, ""), 401),
        ({"authorization": "Basic !!!not-base64"}, 401),
        (basic("", KEY), 200),
        (basic("admin", KEY), 200),
        ({"x-api-key": KEY}, 200),
        ({"authorization": f"Bearer {KEY}"}, 200),
    ],
)
async def test_the_dashboard_needs_the_key_and_takes_basic_auth(
    headers: dict[str, str], status: int
) -> None:
    settings = ServerSettings(dashboard=True, api_keys=(KEY,))
    async with AsyncToolTestClient(weather.tool, settings) as client:
        page = await client.get("/dashboard", headers=headers)
        metrics = await client.get("/metrics", headers=headers)
    assert page.status_code == metrics.status_code == status
    if status == 401:
        assert page.headers["www-authenticate"].startswith('Basic realm="ai-spine-tool"')
        assert metrics.headers["www-authenticate"].startswith("Bearer")
        assert KEY not in page.text


async def test_the_dashboard_can_be_public() -> None:
    settings = ServerSettings(dashboard=True, api_keys=(KEY,), public_routes=("/dashboard",))
    async with AsyncToolTestClient(weather.tool, settings) as client:
        assert (await client.get("/dashboard")).status_code == 200
        assert (await client.get("/metrics")).status_code == 401


async def test_a_trailing_slash_is_redirected_so_relative_links_work() -> None:
    async with AsyncToolTestClient(weather.tool, ServerSettings(dashboard=True)) as client:
        response = await client.get("/dashboard/")
    assert response.status_code == 308
    assert response.headers["location"] == "/dashboard"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("AI_SPINE_REQUIRE_SERVICES") == "1":
        pytest.fail("chromium is required (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def browse(browser: str, url: str, *arguments: str) -> str:
    """Run headless Chromium on ``url`` for six seconds of page time; return its stdout."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=6000",
                *arguments,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        )
    return done.stdout


@pytest.fixture
def loaded_dashboard() -> Iterator[str]:
    """A server with the dashboard on and auth, under load; yields the page's URL with the key
    as Basic credentials."""
    env = {"AI_SPINE_DASHBOARD": "true", "AI_SPINE_API_KEYS": KEY}
    with running_server(TOOLS / "observed.py", env=env) as server:
        stop = threading.Event()

        async def requests() -> None:
            # The project's light client, paced: a steady load that leaves the shared machine's
            # CPU to the server and the browser (httpx spent more of it than the server did).
            headers = {"x-api-key": KEY, "Content-Type": "application/json"}
            pool = HTTP1Pool(server.url, headers=headers, timeout=10)
            try:
                for index in range(100_000):  # bounded; stops with the test
                    if stop.is_set():
                        return
                    body = {"sleep_ms": index % 5, "fail_code": "" if index % 7 else "FLAKY"}
                    status, _ = await pool.request(
                        "POST", "/api/execute", json.dumps({"input_data": body}).encode()
                    )
                    assert status == 200 or not index % 7  # every seventh one fails
                    await asyncio.sleep(0.002)
            finally:
                await pool.aclose()

        def load() -> None:
            asyncio.run(requests())

        loader = threading.Thread(target=load)
        loader.start()
        try:
            yield server.url.replace("http://", f"http://viewer:{KEY}@") + "/dashboard"
        finally:
            stop.set()
            loader.join(30)


@pytest.mark.slow
def test_a_browser_finds_the_charts_drawn_while_load_runs(
    loaded_dashboard: str, tmp_path: Path
) -> None:
    browser = chromium()
    dom = browse(browser, loaded_dashboard, "--dump-dom")
    polls = re.search(r'<body[^>]*data-polls="(\d+)"', dom)
    assert polls is not None, dom[:2000]
    assert int(polls.group(1)) >= 2
    points = dict(re.findall(r'<canvas id="c-(\w+)"[^>]*data-points="(\d+)"', dom))
    assert set(points) == {"rate", "latency", "errors", "cache"}
    assert all(int(n) >= 2 for n in points.values()), points
    assert re.search(r'<div id="error"></div>', dom), "the page could not read its metrics"
    total = re.search(r'id="total">([\d,.\s]+)<', dom)
    assert total is not None
    assert int(re.sub(r"\D", "", total.group(1))) > 0
    assert re.search(r'<span class="state healthy" id="state">healthy</span>', dom)

    screenshot = tmp_path / "dashboard.png"
    browse(browser, loaded_dashboard, f"--screenshot={screenshot}", "--window-size=1280,900")
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1280, 900)
    assert len(data) > 10_000  # drawn, not blank
    publish(screenshot, "dashboard.png")
