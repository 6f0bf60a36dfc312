"""The suite's tests: each tool alone, then the suite as it is served (each under its name)."""

from __future__ import annotations

from typing import Any

import pytest
from my_tool.tool import slug, tools, words

from ai_spine_tools import tools_asgi
from ai_spine_tools.testing import (
    ToolTestClient,
    assert_success,
    invalid_inputs,
    valid_input,
)


@pytest.mark.parametrize("tool", tools, ids=lambda tool: tool.name)
def test_a_valid_input_succeeds(tool: Any) -> None:
    with ToolTestClient(tool) as client:
        assert_success(client.execute(valid_input(tool)))


@pytest.mark.parametrize("tool", tools, ids=lambda tool: tool.name)
def test_every_broken_constraint_is_refused(tool: Any) -> None:
    with ToolTestClient(tool) as client:
        for case in invalid_inputs(tool):
            response = client.execute(case.input)
            assert response.status_code == 400, case.description
            assert response.error_code == "VALIDATION_ERROR"


def test_words_counts_and_ranks() -> None:
    with ToolTestClient(words) as client:
        response = client.execute({"text": "One fish. Two fish. Red fish.", "top_n": 1})
    assert_success(response)
    assert response.output_data == {"word_count": 6, "top_words": [{"word": "fish", "count": 3}]}


def test_slug_is_ascii_and_bounded() -> None:
    with ToolTestClient(slug) as client:
        response = client.execute({"text": "Héllo, Wörld!", "max_length": 8})
    assert response.output_data == {"slug": "hello-wo"}


def test_the_suite_serves_each_tool_under_its_name() -> None:
    with ToolTestClient(tools_asgi(tools)) as client:
        listing = client.get("/").json
        assert [tool["name"] for tool in listing["tools"]] == ["words", "slug"]
        answer = client.post("/slug/api/execute", json={"input_data": {"text": "A Title"}})
        assert answer.output_data == {"slug": "a-title"}
        assert client.get("/words/health").status_code == 200
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 200
