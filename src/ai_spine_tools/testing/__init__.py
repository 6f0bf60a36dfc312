"""Test and load-test AI Spine tools: in-process clients, a platform mock, data and assertions.

- ``ToolTestClient(tool)``: the tool's real server app, in-process, lifespan included; sync
  (``with``) or async (``async with``). ``test_tool(tool, input)`` runs one execution with it.
- ``HTTPStub``: answers ``context.http`` with canned responses, a handler, or a local server
  (``ToolTestClient(tool, http=stub)``), recording each ``StubRequest``.
- ``MockAISpineClient``: calls a tool (in-process or at a URL) the way the AI Spine platform does.
- ``load_test(tool_or_url, ...)``: bounded load test returning a ``LoadTestReport``;
  ``ProgressLine`` shows its progress live. ``leak_check`` runs it in rounds and judges the
  server's RSS after each (``LeakCheckReport``).
- ``valid_input(tool)`` and ``invalid_inputs(tool)``: test data from the tool's schema.
- ``assert_success`` and ``assert_validation_error``: assertions with readable failures.

The pytest plugin (``ai_spine_tools.testing.plugin``, loaded automatically) adds the fixtures
``tool_client``, ``http_stub`` and ``mock_spine_client``, and runs ``async def`` tests.
``import ai_spine_tools`` never imports this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ai_spine_tools.testing._assertions import assert_success, assert_validation_error
    from ai_spine_tools.testing._client import (
        AsyncToolTestClient,
        ToolResponse,
        ToolTestClient,
        test_tool,
    )
    from ai_spine_tools.testing._data import InvalidInput, invalid_inputs, valid_input
    from ai_spine_tools.testing._http_stub import HTTPStub, StubRequest, StubResponse
    from ai_spine_tools.testing._leak import LeakCheckReport, LeakRound, leak_check
    from ai_spine_tools.testing._load import LoadProgress, load_test
    from ai_spine_tools.testing._progress import ProgressLine
    from ai_spine_tools.testing._report import LatencySummary, LoadTestReport, TimelinePoint
    from ai_spine_tools.testing._spine import MockAISpineClient, SpineResult
    from ai_spine_tools.testing._targets import ensure_loopback

__all__ = [
    "AsyncToolTestClient",
    "HTTPStub",
    "InvalidInput",
    "LatencySummary",
    "LeakCheckReport",
    "LeakRound",
    "LoadProgress",
    "LoadTestReport",
    "MockAISpineClient",
    "ProgressLine",
    "SpineResult",
    "StubRequest",
    "StubResponse",
    "TimelinePoint",
    "ToolResponse",
    "ToolTestClient",
    "assert_success",
    "assert_validation_error",
    "ensure_loopback",
    "invalid_inputs",
    "leak_check",
    "load_test",
    "test_tool",
    "valid_input",
]

# Each name is imported from its module on first use, so that the pytest plugin (a module of this
# package, which pytest loads in every project where the SDK is installed) costs no server stack
# until a fixture asks for it.
_MODULES = {
    "assert_success": "_assertions",
    "assert_validation_error": "_assertions",
    "AsyncToolTestClient": "_client",
    "ToolResponse": "_client",
    "ToolTestClient": "_client",
    "test_tool": "_client",
    "InvalidInput": "_data",
    "invalid_inputs": "_data",
    "valid_input": "_data",
    "HTTPStub": "_http_stub",
    "StubRequest": "_http_stub",
    "StubResponse": "_http_stub",
    "LeakCheckReport": "_leak",
    "LeakRound": "_leak",
    "leak_check": "_leak",
    "LoadProgress": "_load",
    "load_test": "_load",
    "ProgressLine": "_progress",
    "LatencySummary": "_report",
    "LoadTestReport": "_report",
    "TimelinePoint": "_report",
    "MockAISpineClient": "_spine",
    "SpineResult": "_spine",
    "ensure_loopback": "_targets",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
