"""The pytest plugin: loaded from its entry point, with tool_client and mock_spine_client."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from serverproc import EXAMPLES

pytest_plugins = ("pytester",)

WEATHER = str(EXAMPLES / "weather.py")


def run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makepyfile(test_user=source.replace("WEATHER", repr(WEATHER)))
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio")


def test_plugin_is_registered_by_its_entry_point(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure("-p", "no:asyncio")
    assert config.pluginmanager.has_plugin("ai_spine_tools")
    assert "ai_spine_tool(tool=None, **settings)" in "\n".join(config.getini("markers"))


def test_tool_client_uses_the_tool_fixture(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import pytest
from ai_spine_tools.core._loader import load_tool
from ai_spine_tools.testing.plugin import assert_success, assert_validation_error

@pytest.fixture
def tool():
    return load_tool(WEATHER)

def test_success(tool_client):
    data = assert_success(tool_client.execute({"city": "Madrid"}))
    assert data["city"] == "Madrid"

def test_validation(tool_client):
    assert_validation_error(tool_client.execute({"city": "x" * 101}), "city", "too_long")

def test_health(tool_client):
    assert tool_client.get("/health").json["status"] == "healthy"
""",
    )
    result.assert_outcomes(passed=3)


def test_marker_gives_the_tool_and_settings(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import pytest

@pytest.mark.ai_spine_tool(WEATHER, api_keys=("k1",))
def test_needs_a_key(tool_client):
    assert tool_client.execute({"city": "Oslo"}).status_code == 401
    assert tool_client.execute({"city": "Oslo"}, headers={"X-API-Key": "k1"}).ok

pytestmark = pytest.mark.ai_spine_tool(WEATHER)

def test_module_marker(tool_client, tool):
    assert tool.name == "weather-lookup"
    assert tool_client.execute({"city": "Oslo"}).ok
""",
    )
    result.assert_outcomes(passed=2)


def test_tool_can_be_parametrized(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import pytest
from ai_spine_tools import create_tool

def make(name):
    return create_tool(metadata={"name": name, "version": "1.0.0", "description": "x"},
                       execute=lambda: {"name": name})

@pytest.mark.parametrize("tool", [make("one"), make("two")], ids=["one", "two"])
def test_each(tool_client, tool):
    assert tool_client.execute({}).output_data == {"name": tool.name}
""",
    )
    result.assert_outcomes(passed=2)


def test_tool_client_runs_setup_and_cleanup_around_the_test(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import pytest
from ai_spine_tools import create_tool

events = []
tool_ = create_tool(
    metadata={"name": "life", "version": "1.0.0", "description": "x"},
    execute=lambda: {}, setup=lambda: events.append("setup"),
    cleanup=lambda: events.append("cleanup"),
)

@pytest.fixture
def tool():
    return tool_

def test_inside(tool_client):
    assert events == ["setup"]

def test_after():
    assert events == ["setup", "cleanup"]
""",
    )
    result.assert_outcomes(passed=2)


def test_without_a_tool_the_error_says_what_to_do(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_missing(tool_client):
    pass
""",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*tool_client needs a tool: define a 'tool' fixture*"])


def test_mock_spine_client_fixture_cleans_up(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import asyncio
from ai_spine_tools import create_tool

events = []
tool = create_tool(
    metadata={"name": "life", "version": "1.0.0", "description": "x"},
    execute=lambda: {"ok": True}, setup=lambda: events.append("setup"),
    cleanup=lambda: events.append("cleanup"),
)

def test_call(mock_spine_client):
    result = asyncio.run(mock_spine_client.execute(tool, {}))
    assert result.ok and result.output_data == {"ok": True}
    assert events == ["setup"]

def test_after():
    assert events == ["setup", "cleanup"]
""",
    )
    result.assert_outcomes(passed=2)


def test_async_tests_run_as_written_without_pytest_asyncio(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import asyncio
from ai_spine_tools.core._loader import load_tool
from ai_spine_tools.testing import ToolTestClient

tool = load_tool(WEATHER)

async def test_weather_async():
    async with ToolTestClient(tool) as client:
        response = await client.execute({"city": "Madrid"})
    assert response.output_data["city"] == "Madrid"

async def test_a_failing_async_test_fails():
    await asyncio.sleep(0)
    assert False, "reached"
""",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: reached*"])


def test_http_stub_fixture_answers_the_tool_clients_context_http(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
import pytest
from ai_spine_tools import create_tool

async def execute(input, context):
    return (await context.http.get("https://api.example.com/v1/rates")).json()

@pytest.fixture
def tool():
    return create_tool(metadata={"name": "rates", "version": "1.0.0", "description": "x"},
                       execute=execute)

def test_rates(tool_client, http_stub):
    http_stub.get("https://api.example.com/v1/rates", json={"eur": 1.1})
    assert tool_client.execute({}).output_data == {"eur": 1.1}
    assert http_stub.requests[0].path == "/v1/rates"
""",
    )
    result.assert_outcomes(passed=1)


def test_tool_client_resets_state_between_tests(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import pytest
from ai_spine_tools import create_tool

async def execute(input, context):
    context.metrics.increment("calls")
    async with context.breaker("upstream", failure_threshold=1, recovery_timeout=60):
        raise ConnectionError("down")

tool_ = create_tool(metadata={"name": "flaky", "version": "1.0.0", "description": "x"},
                    execute=execute)

@pytest.fixture
def tool():
    return tool_

@pytest.mark.parametrize("run", [1, 2])
def test_breaker_starts_closed(tool_client, run):
    assert tool_client.execute({}).error_code != "CIRCUIT_OPEN"
    assert tool_client.execute({}).error_code == "CIRCUIT_OPEN"
    assert tool_.get_metrics().custom == {"calls": 2}  # the second call counted, then refused
""",
    )
    result.assert_outcomes(passed=2)


def test_importing_the_plugin_loads_no_server_stack() -> None:
    # pytest imports the plugin in every project where the SDK is installed.
    code = "import ai_spine_tools.testing.plugin, json, sys; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(out.stdout))
    stack = ["starlette", "uvicorn", "httptools", "uvloop", "limits", "aiohttp", "psutil"]
    stack += ["ai_spine_tools.server", "ai_spine_tools.testing._client", "ai_spine_tools.cli"]
    found = {name for name in loaded for top in stack if name == top or name.startswith(top + ".")}
    assert not found


def test_the_testing_package_imports_its_names_on_first_use() -> None:
    import ai_spine_tools.testing as testing

    assert "load_test" in dir(testing)
    assert testing.load_test.__module__ == "ai_spine_tools.testing._load"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        testing.nothing  # noqa: B018
