"""The tool's own tests, through the ai-spine-tools testing toolkit."""

from __future__ import annotations

from my_tool.tool import tool

from ai_spine_tools.testing import (
    ToolTestClient,
    assert_success,
    invalid_inputs,
    valid_input,
)


def test_a_valid_input_succeeds() -> None:
    with ToolTestClient(tool) as client:
        response = client.execute(valid_input(tool))
    assert_success(response)


def test_every_broken_constraint_is_refused() -> None:
    with ToolTestClient(tool) as client:
        for case in invalid_inputs(tool):
            response = client.execute(case.input)
            assert response.status_code == 400, case.description
            assert response.error_code == "VALIDATION_ERROR"


def test_probes_answer() -> None:
    with ToolTestClient(tool) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 200
