"""The pytest plugin of ai-spine-tools, loaded automatically once the package is installed.

Fixtures:

- ``tool_client``: a started ``ToolTestClient`` for the test's tool. The tool comes from a ``tool``
  fixture you define (in the test module or a ``conftest.py``), or from the marker
  ``@pytest.mark.ai_spine_tool(tool_or_target, **settings)``; the marker's keyword arguments are
  server settings (``api_keys=("k",)``, ``errors_as_200=True``, ...). Parametrize ``tool``
  (``@pytest.mark.parametrize("tool", [a, b])``) to run a test against several tools.
- ``http_stub``: an ``HTTPStub``; a test that also takes ``tool_client`` gets a client whose
  ``context.http`` the stub answers.
- ``mock_spine_client``: a ``MockAISpineClient``, closed (tools' cleanup run) after the test.

``tool_client`` resets the tool's state first (``tool.reset()``: breakers, cached results,
custom metrics). ``async def`` tests run on a new event loop each, unless another plugin
(pytest-asyncio, anyio) runs them; async fixtures need pytest-asyncio.

``assert_success`` and ``assert_validation_error`` are importable from here and from
``ai_spine_tools.testing``. Disable the plugin with ``-p no:ai_spine_tools``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ai_spine_tools.core._tool import Tool
from ai_spine_tools.testing._assertions import assert_success, assert_validation_error

if TYPE_CHECKING:  # imported inside the fixtures: pytest loads this module in every project
    from ai_spine_tools.testing._client import ToolTestClient
    from ai_spine_tools.testing._spine import MockAISpineClient

__all__ = [
    "assert_success",
    "assert_validation_error",
    "http_stub",
    "mock_spine_client",
    "pytest_configure",
    "pytest_pyfunc_call",
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
    """A started ``ToolTestClient`` for ``tool``, its state reset; setup runs before the test,
    cleanup after. With the ``http_stub`` fixture in the test, the stub answers context.http."""
    marker = request.node.get_closest_marker(MARKER)
    settings = {k: v for k, v in (marker.kwargs if marker else {}).items() if k != "tool"}
    if "http_stub" in request.fixturenames:
        settings["http"] = request.getfixturevalue("http_stub")
    from ai_spine_tools.testing._client import ToolTestClient

    with ToolTestClient(tool, **settings) as client:
        yield client


@pytest.fixture
def http_stub() -> Any:
    """An ``HTTPStub`` (``ai_spine_tools.testing``) for the test's ``context.http``."""
    from ai_spine_tools.testing._http_stub import HTTPStub

    return HTTPStub()


@pytest.hookimpl
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an ``async def`` test on a new event loop, when no other plugin has taken it (an
    async test pytest-asyncio or anyio runs reaches here as their synchronous wrapper)."""
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    if pyfuncitem.get_closest_marker("anyio"):
        return None  # anyio's, even if its plugin is not installed (pytest then says so)
    import asyncio

    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    with asyncio.Runner() as runner:
        runner.run(function(**arguments))
    return True


@pytest.fixture
def mock_spine_client() -> Iterator[MockAISpineClient]:
    """A ``MockAISpineClient``, closed after the test."""
    from ai_spine_tools.testing._spine import MockAISpineClient

    client = MockAISpineClient()
    try:
        yield client
    finally:
        client.close()
