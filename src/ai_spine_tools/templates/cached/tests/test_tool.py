"""The tool's own tests: results are cached, and the cache can be bypassed."""

from __future__ import annotations

from my_tool.tool import tool

from ai_spine_tools.testing import ToolTestClient, assert_success, invalid_inputs


def test_a_repeated_request_is_a_cache_hit() -> None:
    with ToolTestClient(tool) as client:
        # no-cache skips the lookup (even a result left in Redis by an earlier run) and stores anew
        first = client.execute({"number": 360}, headers={"Cache-Control": "no-cache"})
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


def test_every_broken_constraint_is_refused() -> None:
    with ToolTestClient(tool) as client:
        for case in invalid_inputs(tool):
            assert client.execute(case.input).status_code == 400, case.description
