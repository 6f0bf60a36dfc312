"""Several server processes sharing one real Redis: results, rate limits, and Redis failing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from ai_spine_tools import sign_request
from redisproc import closed_port, shared_redis, throwaway_redis, unique_prefix
from serverproc import TOOLS, ServerProcess, running_server

pytestmark = pytest.mark.slow

CACHED = TOOLS / "cached.py"
LIMIT = 10
SIGNING = "signing-secret-shared-by-instances"


def signed(server: ServerProcess, q: str) -> tuple[httpx.Response, httpx.Response]:
    """A signed execute request to ``server``, and the same bytes sent again."""
    body = json.dumps({"input_data": {"q": q}}).encode()
    headers = {**sign_request(SIGNING, body), "Content-Type": "application/json"}
    first = httpx.post(f"{server.url}/api/execute", content=body, headers=headers, timeout=10)
    return first, httpx.post(f"{server.url}/api/execute", content=body, headers=headers, timeout=10)


def execute(server: ServerProcess, q: str, *, key: str | None = None) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    return httpx.post(
        f"{server.url}/api/execute", json={"input_data": {"q": q}}, headers=headers, timeout=10
    )


def redis_keys(url: str, prefix: str) -> set[str]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return {name.decode() for name in client.scan_iter(match=prefix + "*")}
    finally:
        client.close()


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[ServerProcess, ServerProcess, str]]:
    """Servers A and B on one Redis prefix, limited to LIMIT requests a minute per API key."""
    prefix = unique_prefix()
    env = {
        "REDIS_URL": shared_redis(),
        "AI_SPINE_REDIS_PREFIX": prefix,
        "AI_SPINE_API_KEYS": "cache-key,limit-key",
        "AI_SPINE_RATE_LIMIT": f"{LIMIT}/minute",
        "AI_SPINE_SIGNING_SECRETS": SIGNING,
    }
    with ExitStack() as stack:
        a = stack.enter_context(running_server(CACHED, env=env))
        b = stack.enter_context(running_server(CACHED, env=env))
        yield a, b, prefix
    import redis

    client = redis.Redis.from_url(shared_redis())
    try:
        for name in client.scan_iter(match=prefix + "*"):
            client.unlink(name)
    finally:
        client.close()


def test_a_result_served_by_one_instance_is_a_hit_on_the_other(
    pair: tuple[ServerProcess, ServerProcess, str],
) -> None:
    a, b, prefix = pair
    first = execute(a, "shared", key="cache-key")
    second = execute(b, "shared", key="cache-key")
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert second.json()["output_data"] == first.json()["output_data"]
    assert second.json()["output_data"]["pid"] == a.process.pid  # computed by A, not B
    assert second.json()["cache"]["key"] == first.json()["cache"]["key"]
    assert prefix + first.json()["cache"]["key"] in redis_keys(shared_redis(), prefix)
    health = httpx.get(f"{b.url}/health", timeout=10).json()
    assert health["checks"]["cache"]["status"] == "ok"
    assert health["checks"]["rate_limit"] == "shared"


@pytest.mark.parametrize("extra", [3])
def test_the_rate_limit_holds_across_instances(
    pair: tuple[ServerProcess, ServerProcess, str], extra: int
) -> None:
    a, b, _ = pair
    statuses = [
        execute((a, b)[n % 2], f"limit-{n}", key="limit-key").status_code
        for n in range(LIMIT + extra)
    ]
    assert statuses.count(429) == extra
    assert statuses[:LIMIT] == [200] * LIMIT


def test_a_signed_request_is_accepted_once_across_instances(
    pair: tuple[ServerProcess, ServerProcess, str],
) -> None:
    a, b, prefix = pair
    body = json.dumps({"input_data": {"q": "signed-once"}}).encode()
    headers = {**sign_request(SIGNING, body), "Content-Type": "application/json"}
    answers = [
        httpx.post(f"{server.url}/api/execute", content=body, headers=headers, timeout=10)
        for server in (a, b, a)
    ]
    assert [r.status_code for r in answers] == [200, 401, 401]
    for replay in answers[1:]:
        assert "already received" in replay.json()["error_message"]
    assert any(key.startswith(prefix + "signatures:") for key in redis_keys(shared_redis(), prefix))
    probe = sign_request(SIGNING, method="GET", path="/metrics")  # a GET is accepted once too
    probes = [httpx.get(f"{server.url}/metrics", headers=probe, timeout=10) for server in (b, a)]
    assert [r.status_code for r in probes] == [200, 401]


def test_unreachable_redis_leaves_the_server_serving_and_degraded() -> None:
    shared_redis()
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0",
        "REDIS_COMMAND_TIMEOUT": "300",
        "AI_SPINE_RATE_LIMIT": "1000/minute",
        "AI_SPINE_SIGNING_SECRETS": SIGNING,
        "AI_SPINE_API_KEYS": "cache-key",
    }
    with running_server(CACHED, env=env) as server:
        responses = [execute(server, "offline", key="cache-key") for _ in range(2)]
        first, replay = signed(server, "offline-signed")  # replays refused locally meanwhile
        health = httpx.get(f"{server.url}/health", timeout=10)
        ready = httpx.get(f"{server.url}/ready", timeout=10)
    assert [r.status_code for r in responses] == [200, 200]
    assert [r.headers["X-Cache"] for r in responses] == ["MISS", "HIT"]  # memory still works
    assert (first.status_code, replay.status_code) == (200, 401)
    assert health.status_code == 200
    body: dict[str, Any] = health.json()
    assert body["status"] == "degraded"
    assert body["checks"]["cache"]["status"] == "degraded"
    assert body["checks"]["rate_limit"] == "degraded"
    assert ready.status_code == 200


def test_redis_killed_mid_run_then_back_is_used_again(tmp_path: Path) -> None:
    prefix = unique_prefix()
    with throwaway_redis(tmp_path) as redis_server:
        env = {
            "REDIS_URL": redis_server.url,
            "AI_SPINE_REDIS_PREFIX": prefix,
            "REDIS_COMMAND_TIMEOUT": "300",
            "REDIS_RETRY_DELAY": "50",
        }
        with running_server(CACHED, env=env) as server:
            assert execute(server, "before").headers["X-Cache"] == "MISS"
            assert len(redis_keys(redis_server.url, prefix)) == 1

            redis_server.kill()
            during = [execute(server, q) for q in ("before", "during")]
            assert [r.status_code for r in during] == [200, 200]
            assert [r.headers["X-Cache"] for r in during] == ["HIT", "MISS"]
            health = httpx.get(f"{server.url}/health", timeout=10).json()
            assert (health["status"], health["checks"]["cache"]["status"]) == (
                "degraded",
                "degraded",
            )

            redis_server.start()  # same port, empty: no restart of the tool server
            deadline = time.monotonic() + 10
            n = 0
            while not redis_keys(redis_server.url, prefix) and time.monotonic() < deadline:
                n += 1
                assert execute(server, f"after-{n}").status_code == 200
                time.sleep(0.05)
            assert len(redis_keys(redis_server.url, prefix)) == 1
            health = httpx.get(f"{server.url}/health", timeout=10).json()
            assert health["status"] == "healthy"
            metrics = httpx.get(f"{server.url}/metrics", timeout=10).json()
    assert metrics["cache"]["redis_errors"] >= 1
    assert metrics["cache"]["degraded"] is False
