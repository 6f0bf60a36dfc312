"""The tool's own tests: results are cached (in Redis too when REDIS_URL is set) and the cache
can be bypassed."""

from __future__ import annotations

import os
import uuid

import pytest
from my_tool.tool import tool

from ai_spine_tools.testing import ToolTestClient, assert_success, invalid_inputs


@pytest.fixture(autouse=True)
def own_redis_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's Redis keys start with a prefix of its own, so runs never share results."""
    monkeypatch.setenv("AI_SPINE_REDIS_PREFIX", f"my-tool-test-{uuid.uuid4().hex[:8]}:")


def test_a_repeated_request_is_a_cache_hit() -> None:
    with ToolTestClient(tool) as client:
        first = client.execute({"number": 360})
        second = client.execute({"number": 360})
    assert_success(first)
    assert first.output_data == {"number": 360, "factors": [2, 2, 2, 3, 3, 5]}
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT"
    assert second.output_data == first.output_data


def test_caching_can_be_turned_off_per_request() -> None:
    with ToolTestClient(tool) as client:
        client.execute({"number": 97})
        response = client.execute({"number": 97}, {"cache_enabled": False})
    assert response.headers.get("x-cache") != "HIT"


def test_results_are_shared_through_redis() -> None:
    if not os.environ.get("REDIS_URL"):
        pytest.skip("set REDIS_URL (e.g. REDIS_URL=redis://127.0.0.1:6379/0 make test)")
    with ToolTestClient(tool) as client:
        assert client.execute({"number": 1001}).headers["x-cache"] == "MISS"
        tool.reset()  # forget this process's copy: the next hit can only come from Redis
        again = client.execute({"number": 1001})
    assert again.headers["x-cache"] == "HIT"
    assert again.output_data == {"number": 1001, "factors": [7, 11, 13]}


def test_every_broken_constraint_is_refused() -> None:
    with ToolTestClient(tool) as client:
        for case in invalid_inputs(tool):
            assert client.execute(case.input).status_code == 400, case.description
