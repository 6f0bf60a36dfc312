"""The examples that call an API and crunch data work as their docstrings say: served as users
serve them, against a real upstream and a real process pool."""

from __future__ import annotations

import asyncio
import hashlib

import httpx

import forecast
import hasher
from ai_spine_tools.testing import AsyncToolTestClient, assert_success
from serverproc import EXAMPLES, running_server
from upstream import upstream_api


async def test_forecast_asks_the_api_and_passes_its_answer_on() -> None:
    async with upstream_api() as api:
        forecast.tool.configure(api_url=f"{api.url}/echo", api_key="k-1")
        try:
            async with AsyncToolTestClient(forecast.tool) as client:
                data = assert_success(await client.execute({"city": "Lima"}))
        finally:
            forecast.tool.configure(api_url=None, api_key=None)
    assert data["city"] == "Lima"
    assert data["query"] == [["q", "Lima"], ["units", "celsius"]]
    assert data["headers"]["x-api-key"] == "k-1"


async def test_forecast_retries_a_flaky_api_then_answers() -> None:
    async with upstream_api() as api:
        api.failures = 2
        forecast.tool.configure(api_url=f"{api.url}/flaky")
        try:
            async with AsyncToolTestClient(forecast.tool) as client:
                data = assert_success(await client.execute({"city": "Oslo"}))
        finally:
            forecast.tool.configure(api_url=None)
    assert data["calls"] == 3


async def test_forecast_with_the_api_down_is_a_retryable_error() -> None:
    async with AsyncToolTestClient(forecast.tool) as client:
        forecast.tool.configure(api_url="http://127.0.0.1:9/weather")
        try:
            response = await client.execute({"city": "Rome"})
        finally:
            forecast.tool.configure(api_url=None)
    assert response.status_code == 503
    assert response.error_code == "UPSTREAM_UNAVAILABLE"
    assert response.json["retryable"] is True


def test_hasher_served_computes_in_worker_processes() -> None:
    expected = hasher.chain_hashes("hello", 1000)
    assert expected == _chain("hello", 1000)
    with running_server(EXAMPLES / "hasher.py") as server:
        body = {"input_data": {"text": "hello", "rounds": 1000}}

        async def both() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                calls = [client.post("/api/execute", json=body) for _ in range(2)]
                return list(await asyncio.gather(*calls))

        answers = asyncio.run(both())
        pools = httpx.get(f"{server.url}/metrics", timeout=5).json()["pools"]
    assert [a.json()["output_data"]["digest"] for a in answers] == [expected, expected]
    assert pools["processes"]["calls"] == 2


def _chain(text: str, rounds: int) -> str:
    digest = text.encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()
