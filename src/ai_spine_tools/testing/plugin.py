"""The pytest plugin of ai-spine-tools, loaded automatically once the package is installed.

Fixtures:

- ``tool_client``: a started ``ToolTestClient`` for the test's tool. The tool comes from a ``tool``
  fixture you define (in the test module or a ``conftest.py``), or from the marker
  ``@pytest.mark.ai_spine_tool(tool_or_target, **settings)``; the marker's keyword arguments are
  server settings (``api_keys=("k",)``, ``errors_as_200=True``, ...). Parametrize ``tool``
  (``@pytest.mark.parametrize("tool", [a, b])``) to run a test against several tools.
- ``mock_spine_client``: a ``MockAISpineClient``, closed (tools' cleanup run) after the test.

``assert_success`` and ``assert_validation_error`` are importable from here and from
``ai_spine_tools.testing``. Disable the plugin with ``-p no:ai_spine_tools``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ai_spine_tools.core._tool import Tool
from ai_spine_tools.testing._assertions import assert_success, assert_validation_error

if TYPE_CHECKING:  # imported inside the fixtures: pytest loads this module in every project
    from ai_spine_tools.testing._client import ToolTestClient
    from ai_spine_tools.testing._spine import MockAISpineClient

__all__ = [
    "assert_success",
    "assert_validation_error",
    "mock_spine_client",
    "pytest_configure",
    "tool",
    "tool_client",
]

MARKER = "ai_spine_tool"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``ai_spine_tool`` marker."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(tool=None, **settings): the Tool (or 'path/to/tool.py[:attr]') and the server "
        "settings the tool_client fixture uses",
    )


@pytest.fixture
def tool(request: pytest.FixtureRequest) -> Tool:
    """The tool under test, from ``@pytest.mark.ai_spine_tool(tool)``; define one to replace it."""
    marker = request.node.get_closest_marker(MARKER)
    target = marker.args[0] if marker is not None and marker.args else None
    if target is None and marker is not None:
        target = marker.kwargs.get("tool")
    if target is None:
        pytest.fail(
            "tool_client needs a tool: define a 'tool' fixture returning it, or mark the test "
            f"with @pytest.mark.{MARKER}(tool)",
            pytrace=False,
        )
    if isinstance(target, str):
        from ai_spine_tools.core._loader import load_tool

        return load_tool(target)
    if not isinstance(target, Tool):
        pytest.fail(f"{MARKER} takes a Tool or a target string (got {target!r})", pytrace=False)
    return target


@pytest.fixture
def tool_client(request: pytest.FixtureRequest, tool: Tool) -> Iterator[ToolTestClient]:
    """A started ``ToolTestClient`` for ``tool``; setup runs before the test, cleanup after."""
    marker = request.node.get_closest_marker(MARKER)
    settings = {k: v for k, v in (marker.kwargs if marker else {}).items() if k != "tool"}
    from ai_spine_tools.testing._client import ToolTestClient

    with ToolTestClient(tool, **settings) as client:
        yield client


@pytest.fixture
def mock_spine_client() -> Iterator[MockAISpineClient]:
    """A ``MockAISpineClient``, closed after the test."""
    from ai_spine_tools.testing._spine import MockAISpineClient

    client = MockAISpineClient()
    try:
        yield client
    finally:
        client.close()
