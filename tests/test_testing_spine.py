"""MockAISpineClient: in-process against a Tool, and over HTTP against a real server process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import weather
from ai_spine_tools import ToolContext, UpstreamConnectionError, create_tool, string_field
from ai_spine_tools.testing import MockAISpineClient, SpineResult
from serverproc import EXAMPLES, ServerProcess, free_port, running_server


def echo_tool(events: list[str]) -> Any:
    async def setup() -> None:
        events.append("setup")

    async def cleanup() -> None:
        events.append("cleanup")

    async def execute(
        input: dict[str, Any], config: dict[str, Any], context: ToolContext
    ) -> dict[str, Any]:
        return {
            "input": input,
            "config": config,
            "user_agent": context.security.user_agent if context.security else None,
        }

    return create_tool(
        metadata={"name": "echo", "version": "1.0.0", "description": "echoes its request"},
        schema={
            "input": {"text": string_field(required=True)},
            "config": {"region": string_field(default="eu")},
        },
        execute=execute,
        setup=setup,
        cleanup=cleanup,
    )


@pytest.fixture(scope="module")
def weather_server() -> Iterator[ServerProcess]:
    with running_server(EXAMPLES / "weather.py") as server:
        yield server


async def test_in_process_success_reads_what_the_platform_reads() -> None:
    async with MockAISpineClient() as spine:
        result = await spine.execute(weather.tool, {"city": "Madrid"}, execution_id="exec-7")
    assert isinstance(result, SpineResult)
    assert result.ok
    assert result.status == "success"
    assert result.http_status == 200
    assert result.execution_id == "exec-7"
    assert result.output_data is not None
    assert result.output_data["city"] == "Madrid"
    assert result.error_message is None


async def test_in_process_error_carries_code_and_message() -> None:
    async with MockAISpineClient() as spine:
        result = await spine.execute(weather.tool, {"city": "x" * 101})
    assert not result.ok
    assert result.status == "error"
    assert result.http_status == 400
    assert result.error_code == "VALIDATION_ERROR"
    assert result.error_message == "Invalid input: 'city' must be at most 100 characters (got 101)"
    assert result.output_data is None
    assert [e["code"] for e in result.validation_errors] == ["too_long"]


async def test_requests_are_shaped_like_the_platforms() -> None:
    events: list[str] = []
    tool = echo_tool(events)
    async with MockAISpineClient() as spine:
        result = await spine.execute(tool, {"text": "hi"}, {"region": "us"})
    assert result.output_data == {
        "input": {"text": "hi"},
        "config": {"region": "us"},
        "user_agent": "ai-spine-platform-mock/1.0",
    }


def test_one_client_serves_several_event_loops_and_cleans_up_on_close() -> None:
    events: list[str] = []
    tool = echo_tool(events)
    spine = MockAISpineClient()
    first = asyncio.run(spine.execute(tool, {"text": "a"}))
    second = asyncio.run(spine.execute(tool, {"text": "b"}))
    assert first.ok
    assert second.ok
    assert events == ["setup"]  # set up once, on first use
    spine.close()
    assert events == ["setup", "cleanup"]
    spine.close()  # a second close does nothing
    assert events == ["setup", "cleanup"]


async def test_concurrent_first_calls_set_the_tool_up_once() -> None:
    events: list[str] = []
    tool = echo_tool(events)
    async with MockAISpineClient() as spine:
        results = await asyncio.gather(*(spine.execute(tool, {"text": str(i)}) for i in range(20)))
    assert all(result.ok for result in results)
    assert events == ["setup", "cleanup"]


async def test_target_must_be_a_tool_or_a_url() -> None:
    async with MockAISpineClient() as spine:
        with pytest.raises(TypeError, match="a Tool or a base URL"):
            await spine.execute(42, {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "content", "code", "message"),
    [
        (502, b"Bad gateway", "INVALID_RESPONSE", "HTTP 502: the response is not an execute"),
        (200, b"[1, 2]", "INVALID_RESPONSE", "HTTP 200: the response is not an execute"),
        (200, b'{"status": "maybe"}', "INVALID_RESPONSE", "HTTP 200"),
        (
            503,
            b'{"status": "error", "error_code": "OVERLOADED", "error_message": "busy"}',
            "OVERLOADED",
            "busy",
        ),
    ],
)
def test_responses_that_are_errors(status: int, content: bytes, code: str, message: str) -> None:
    result = SpineResult.from_response(status, content)
    assert result.status == "error"
    assert result.error_code == code
    assert result.error_message is not None
    assert result.error_message.startswith(message)


@pytest.mark.slow
async def test_over_http_against_a_real_server(weather_server: ServerProcess) -> None:
    async with MockAISpineClient() as spine:
        ok = await spine.execute(weather_server.url, {"city": "Madrid", "units": "fahrenheit"})
        bad = await spine.execute(weather_server.url + "/api/execute", {"units": "kelvin"})
    assert ok.ok
    assert ok.http_status == 200
    assert ok.output_data is not None
    assert ok.output_data["units"] == "fahrenheit"
    assert bad.error_code == "VALIDATION_ERROR"
    assert {e["path"] for e in bad.validation_errors} == {"city", "units"}


@pytest.mark.slow
def test_over_http_from_plain_sync_code(weather_server: ServerProcess) -> None:
    with MockAISpineClient() as spine:
        result = asyncio.run(spine.execute(weather_server.url + "/", {"city": "Lima"}))
    assert result.ok


async def test_unreachable_url_raises_a_connection_error() -> None:
    async with MockAISpineClient(timeout=2.0) as spine:
        with pytest.raises(UpstreamConnectionError):
            await spine.execute(f"http://127.0.0.1:{free_port()}", {"city": "Oslo"})
