"""``create_tool`` and ``Tool``: the seed's declaration shape, in-process runs, every kind of result
``execute`` may produce, sync execution in threads, timeouts and the setup/cleanup lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from ai_spine_tools import (
    ExecutionTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    Tool,
    ToolContext,
    ToolDefinitionError,
    ToolError,
    ToolResult,
    ValidationError,
    api_key_field,
    array_field,
    create_tool,
    enum_field,
    integer_field,
    string_field,
)

METADATA = {
    "name": "weather-lookup",
    "version": "1.0.0",
    "description": "Get current weather for a specific city",
    "capabilities": ["weather.current"],
}
SCHEMA: Mapping[str, Mapping[str, Any]] = {
    "input": {
        "city": string_field(required=True, max_length=100),
        "units": enum_field(["celsius", "fahrenheit"], default="celsius"),
    },
    "config": {"api_key": api_key_field(required=False, env="WEATHER_API_KEY")},
}


def make_tool(execute: Callable[..., Any], **options: Any) -> Tool:
    return create_tool(metadata=METADATA, schema=SCHEMA, execute=execute, **options)


async def get_weather(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> dict[str, Any]:
    return {"city": input["city"], "units": input["units"], "temperature": 21.5}


# -- the seed's shape ---------------------------------------------------------------------------


async def test_seed_shaped_tool_runs_in_process() -> None:
    tool = make_tool(get_weather)
    result = await tool.run({"city": "Madrid"})
    assert result.ok
    assert result.status == "success"
    assert result.data == {"city": "Madrid", "units": "celsius", "temperature": 21.5}
    assert result.failure is None
    assert result.error_code is None


async def test_tool_exposes_its_metadata() -> None:
    tool = make_tool(get_weather)
    assert tool.name == "weather-lookup"
    assert tool.version == "1.0.0"
    assert repr(tool) == "<Tool weather-lookup 1.0.0>"
    assert tool.metadata.capabilities == ("weather.current",)


async def test_invalid_input_is_a_validation_error_result() -> None:
    tool = make_tool(get_weather)
    result = await tool.run({"units": "kelvin"})
    assert result.failure is not None
    assert result.error_code == "VALIDATION_ERROR"
    assert result.failure.status == 400
    assert [(e["path"], e["code"]) for e in result.failure.details["errors"]] == [
        ("city", "required"),
        ("units", "enum"),
    ]
    with pytest.raises(ValidationError):
        result.raise_for_error()


async def test_successful_result_raise_for_error_returns_it() -> None:
    result = await make_tool(get_weather).run({"city": "Oslo"})
    assert result.raise_for_error() is result


async def test_execute_receives_validated_values_and_a_context() -> None:
    seen: dict[str, Any] = {}

    async def execute(
        input: dict[str, Any], config: dict[str, Any], context: ToolContext
    ) -> dict[str, Any]:
        seen.update(input=input, config=config, context=context)
        return {}

    tool = make_tool(execute)
    await tool.run(
        {"city": "Lima"},
        {"api_key": "k"},
        execution_id="exec-1",
        metadata={"trace": "t"},
        timeout_ms=5000,
    )
    assert seen["input"] == {"city": "Lima", "units": "celsius"}
    assert seen["config"] == {"api_key": "k"}
    context: ToolContext = seen["context"]
    assert context.execution_id == "exec-1"
    assert context.tool_id == "weather-lookup"
    assert context.tool_version == "1.0.0"
    assert context.metadata == {"trace": "t"}
    assert context.timeout_ms == 5000
    assert context.timestamp.tzinfo is not None
    assert context.timestamp.utcoffset() == dt.timedelta(0)
    remaining = context.remaining_ms()
    assert remaining is not None
    assert 0 < remaining <= 5000
    assert context.debug is False


async def test_each_execution_gets_a_new_execution_id() -> None:
    ids: list[str] = []

    async def execute(input: dict[str, Any], config: Any, context: ToolContext) -> None:
        ids.append(context.execution_id)

    tool = make_tool(execute)
    for _ in range(3):
        await tool.run({"city": "x"})
    assert len(set(ids)) == 3
    assert all(len(i) == 36 for i in ids)


@pytest.mark.parametrize("arity", [0, 1, 2, 3])
async def test_execute_may_take_fewer_arguments(arity: int) -> None:
    calls: list[int] = []

    async def none() -> str:
        calls.append(0)
        return "ok"

    async def one(input: dict[str, Any]) -> str:
        calls.append(1)
        return "ok"

    async def two(input: dict[str, Any], config: dict[str, Any]) -> str:
        calls.append(2)
        return "ok"

    async def three(input: dict[str, Any], config: dict[str, Any], context: ToolContext) -> str:
        calls.append(3)
        return "ok"

    execute = (none, one, two, three)[arity]
    result = await make_tool(execute).run({"city": "x"})
    assert result.data == "ok"
    assert calls == [arity]


# -- what execute may return --------------------------------------------------------------------


def _returning(value: Any) -> Callable[..., Any]:
    async def execute(input: dict[str, Any]) -> Any:
        return value

    return execute


SUCCESSES: list[tuple[Any, Any]] = [
    ({"temperature": 20}, {"temperature": 20}),
    ([1, 2], [1, 2]),
    ("text", "text"),
    (None, None),
    (ToolResult.success({"a": 1}), {"a": 1}),
    ({"status": "success", "data": {"a": 1}}, {"a": 1}),
    ({"status": "success", "data": {"a": 1}, "metadata": {"cached": True}}, {"a": 1}),
    ({"status": "done", "data": 1}, {"status": "done", "data": 1}),  # not the seed's shape
    ({"status": "success", "rows": 3}, {"status": "success", "rows": 3}),  # extra keys: data
]


@pytest.mark.parametrize(("returned", "data"), SUCCESSES)
async def test_execute_return_values_become_success_results(returned: Any, data: Any) -> None:
    result = await make_tool(_returning(returned)).run({"city": "x"})
    assert result.ok
    assert result.data == data


ERRORS: list[tuple[Any, str, int, bool]] = [
    (ToolResult.error("UPSTREAM_DOWN", "down", type="network_error"), "UPSTREAM_DOWN", 503, False),
    (
        ToolResult.error("RATE_LIMIT_EXCEEDED", "slow down", retryable=True),
        "RATE_LIMIT_EXCEEDED",
        429,
        True,
    ),
    (
        {"status": "error", "error": {"code": "TIMEOUT_ERROR", "message": "slow", "type": "x"}},
        "TIMEOUT_ERROR",
        408,
        False,
    ),
    (
        {
            "status": "error",
            "error": {"code": "NO_CITY", "message": "?", "type": "validation_error"},
        },
        "NO_CITY",
        400,
        False,
    ),
    (
        {
            "status": "error",
            "error": {"code": "QUOTA", "type": "rate_limit_error", "retryable": True},
        },
        "QUOTA",
        429,
        True,
    ),
    ({"status": "error", "error": {"code": "WEIRD", "message": "?"}}, "WEIRD", 500, False),
    ({"status": "error"}, "EXECUTION_ERROR", 500, False),
    ({"status": "error", "error": "plain text"}, "EXECUTION_ERROR", 500, False),
]


@pytest.mark.parametrize(("returned", "code", "status", "retryable"), ERRORS)
async def test_execute_error_results_keep_code_and_map_http_status(
    returned: Any, code: str, status: int, retryable: bool
) -> None:
    result = await make_tool(_returning(returned)).run({"city": "x"})
    assert not result.ok
    assert result.failure is not None
    assert result.error_code == code
    assert result.failure.status == status
    assert result.failure.retryable is retryable


async def test_seed_error_shape_keeps_message_details_and_retry_after() -> None:
    returned = {
        "status": "error",
        "error": {
            "code": "UPSTREAM",
            "message": "Weather API is down",
            "type": "network_error",
            "retryable": True,
            "retryAfterMs": 1500,
            "details": {"provider": "acme"},
        },
    }
    result = await make_tool(_returning(returned)).run({"city": "x"})
    assert result.failure is not None
    assert result.failure.to_dict() == {
        "error_code": "UPSTREAM",
        "error_message": "Weather API is down",
        "error_type": "network_error",
        "error_details": {"provider": "acme"},
        "retryable": True,
        "retry_after_ms": 1500,
    }


class QuotaExceededError(ToolError):
    """The caller's upstream quota is used up."""

    code = "QUOTA_EXCEEDED"
    status = 429
    type = "rate_limit_error"
    retryable = True


RAISED: list[tuple[ToolError, str, int]] = [
    (QuotaExceededError("quota used up"), "QUOTA_EXCEEDED", 429),
    (RateLimitError("slow down", retry_after_ms=100), "RATE_LIMIT_EXCEEDED", 429),
    (ServiceUnavailableError("upstream down"), "SERVICE_UNAVAILABLE", 503),
    (ValidationError([]), "VALIDATION_ERROR", 400),
    (ToolError("custom", code="MY_CODE", status=418), "MY_CODE", 418),
]


@pytest.mark.parametrize(("error", "code", "status"), RAISED)
async def test_raised_tool_errors_keep_their_code_and_status(
    error: ToolError, code: str, status: int
) -> None:
    async def execute(input: dict[str, Any]) -> None:
        raise error

    result = await make_tool(execute).run({"city": "x"})
    assert result.failure is error
    assert result.error_code == code
    assert result.failure.status == status
    assert result.error_message == error.message


async def _crash(input: dict[str, Any]) -> None:
    raise RuntimeError("db password=hunter2 at 10.0.0.7")


async def test_unexpected_exception_hides_internals(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="ai_spine_tools"):
        result = await make_tool(_crash).run({"city": "x"})
    assert result.failure is not None
    assert result.error_code == "EXECUTION_ERROR"
    assert result.failure.status == 500
    assert result.error_message == "Tool execution failed"
    assert "hunter2" not in repr(result.failure.to_dict())
    assert "hunter2" in caplog.text  # the server log keeps the traceback


async def test_unexpected_exception_message_shows_in_debug() -> None:
    result = await make_tool(_crash).run({"city": "x"}, debug=True)
    assert result.error_message == "RuntimeError: db password=hunter2 at 10.0.0.7"


# -- sync execute -------------------------------------------------------------------------------


async def test_sync_execute_runs_in_a_worker_thread() -> None:
    seen: dict[str, Any] = {}

    def execute(input: dict[str, Any], config: dict[str, Any], context: ToolContext) -> str:
        seen["thread"] = threading.get_ident()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            seen["loop"] = False
        else:
            seen["loop"] = True
        return str(input["city"])

    result = await make_tool(execute).run({"city": "Quito"})
    assert result.data == "Quito"
    assert seen["thread"] != threading.get_ident()
    assert seen["loop"] is False


def in_a_worker(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "city": input["city"],
        "execution_id": context.execution_id,
        "timeout_ms": context.timeout_ms,
        "remaining": (context.remaining_ms() or 0) > 0,
        "metadata": dict(context.metadata),
        "debug": context.debug,
        "aware": context.timestamp.tzinfo is not None,
        "resources": context.resources,
    }


async def test_executor_process_runs_a_plain_def_in_another_process() -> None:
    async with make_tool(in_a_worker, executor="process", setup=lambda: "pool") as tool:
        assert tool.resources == "pool"
        result = await tool.run(
            {"city": "Quito"}, execution_id="e-1", metadata={"trace": "t"}, debug=True
        )
    assert result.ok, result
    assert result.data["pid"] != os.getpid()
    assert result.data | {"pid": 0} == {
        "pid": 0,
        "city": "Quito",
        "execution_id": "e-1",
        "timeout_ms": 25_000,
        "remaining": True,
        "metadata": {"trace": "t"},
        "debug": True,
        "aware": True,
        "resources": None,  # setup's result lives in the server process
    }


async def test_sync_execute_exceptions_are_mapped_too() -> None:
    def execute(input: dict[str, Any]) -> None:
        raise QuotaExceededError("no quota")

    result = await make_tool(execute).run({"city": "x"})
    assert result.error_code == "QUOTA_EXCEEDED"


async def test_sync_executions_run_concurrently() -> None:
    barrier = threading.Barrier(2, timeout=5)

    def execute(input: dict[str, Any]) -> int:
        return barrier.wait()  # both calls must be in flight at once to pass

    tool = make_tool(execute, max_threads=2)
    results = await asyncio.gather(tool.run({"city": "a"}), tool.run({"city": "b"}))
    assert sorted(r.data for r in results) == [0, 1]


# -- timeouts -----------------------------------------------------------------------------------


async def test_timeout_returns_timeout_error_and_cancels_the_task() -> None:
    events: list[str] = []

    async def execute(input: dict[str, Any]) -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        finally:
            events.append("finally")
        return "too late"

    result = await make_tool(execute).run({"city": "x"}, timeout_ms=50)
    assert result.failure is not None
    assert isinstance(result.failure, ExecutionTimeoutError)
    assert result.error_code == "TIMEOUT_ERROR"
    assert result.failure.status == 408
    assert result.failure.retryable is True
    assert result.failure.details == {"timeout_ms": 50}
    assert events == ["cancelled", "finally"]


async def test_tool_timeout_applies_when_run_gives_none() -> None:
    async def execute(input: dict[str, Any]) -> None:
        await asyncio.sleep(10)

    result = await make_tool(execute, timeout_ms=30).run({"city": "x"})
    assert result.error_code == "TIMEOUT_ERROR"


async def test_a_timeout_raised_by_the_tool_itself_is_an_upstream_timeout_not_ours() -> None:
    async def execute(input: dict[str, Any]) -> None:
        raise TimeoutError("upstream took too long")

    result = await make_tool(execute).run({"city": "x"}, timeout_ms=5000)
    assert result.failure is not None
    assert (result.error_code, result.failure.status) == ("UPSTREAM_TIMEOUT", 504)


async def test_run_counts_an_async_execute_that_blocks_past_its_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def execute(input: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.15)  # noqa: ASYNC251 - blocks the loop: the deadline cannot cancel it
        return {"slept": True}

    tool = make_tool(execute)
    result = await tool.run({"city": "x"}, timeout_ms=20)
    assert result.data == {"slept": True}  # the work is done: its result is kept, and reported
    assert tool.overruns == 1
    [warning] = [r.getMessage() for r in caplog.records if "past its 20 ms" in r.getMessage()]
    assert "blocked the event loop" in warning
    tool.reset()
    assert tool.overruns == 0


async def test_an_execution_stopped_at_its_deadline_is_no_overrun() -> None:
    async def execute(input: dict[str, Any]) -> None:
        await asyncio.sleep(10)

    tool = make_tool(execute)
    assert (await tool.run({"city": "x"}, timeout_ms=20)).error_code == "TIMEOUT_ERROR"
    assert tool.overruns == 0


async def test_sync_execute_times_out_too() -> None:
    release = threading.Event()

    def execute(input: dict[str, Any]) -> None:
        release.wait(5)

    try:
        result = await make_tool(execute).run({"city": "x"}, timeout_ms=30)
    finally:
        release.set()
    assert result.error_code == "TIMEOUT_ERROR"


# -- lifecycle ----------------------------------------------------------------------------------


class Pool:
    """A stand-in for a connection pool made by setup."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)
        self.closed = False


async def test_async_with_runs_setup_once_and_cleanup_once() -> None:
    calls: list[str] = []
    seen: list[Any] = []

    async def setup(config: dict[str, Any]) -> Pool:
        calls.append("setup")
        return Pool(config)

    async def cleanup(pool: Pool) -> None:
        calls.append("cleanup")
        pool.closed = True

    async def execute(input: dict[str, Any], config: Any, context: ToolContext) -> str:
        seen.append(context.resources)
        return "ok"

    tool = make_tool(execute, setup=setup, cleanup=cleanup)
    async with tool:
        assert tool.started
        await tool.run({"city": "a"})
        await tool.run({"city": "b"})
        await tool.start()  # a second start does nothing
    assert not tool.started
    assert calls == ["setup", "cleanup"]
    assert len(seen) == 2
    pool = seen[0]
    assert isinstance(pool, Pool)
    assert seen[1] is pool
    assert pool.closed
    assert pool.config == {"api_key": None}
    assert tool.resources is pool


async def test_setup_and_cleanup_may_take_no_arguments_and_be_sync() -> None:
    calls: list[str] = []

    def setup() -> str:
        calls.append("setup")
        return "resources"

    def cleanup() -> None:
        calls.append("cleanup")

    async with make_tool(get_weather, setup=setup, cleanup=cleanup) as tool:
        assert tool.resources == "resources"
    assert calls == ["setup", "cleanup"]


async def test_run_starts_the_tool_when_needed() -> None:
    calls: list[str] = []

    async def setup(config: dict[str, Any]) -> None:
        calls.append("setup")

    tool = make_tool(get_weather, setup=setup)
    await tool.run({"city": "x"})
    await tool.run({"city": "y"})
    assert calls == ["setup"]
    await tool.stop()
    await tool.stop()  # a second stop does nothing


async def test_concurrent_starts_run_setup_once() -> None:
    calls: list[str] = []

    async def setup(config: dict[str, Any]) -> None:
        calls.append("setup")
        await asyncio.sleep(0.01)

    tool = make_tool(get_weather, setup=setup)
    await asyncio.gather(*(tool.run({"city": "x"}) for _ in range(5)))
    assert calls == ["setup"]


async def test_health_check_defaults_to_healthy_and_calls_the_tools_own() -> None:
    assert await make_tool(get_weather).check_health() is True

    async def health_check() -> dict[str, Any]:
        return {"status": "degraded"}

    tool = make_tool(get_weather, health_check=health_check)
    assert await tool.check_health() == {"status": "degraded"}


# -- declaration errors -------------------------------------------------------------------------


async def _noop(input: dict[str, Any]) -> None:
    return None


async def _kw_only(input: dict[str, Any], *, required: str) -> None:
    return None


def _sync_noop(input: dict[str, Any]) -> None:
    return None


async def _stream(input: dict[str, Any]) -> AsyncIterator[int]:
    yield 1


def _nested() -> Callable[[dict[str, Any]], None]:
    def execute(input: dict[str, Any]) -> None:
        return None

    return execute


DECLARATION_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"schema": {"output": {}}}, "schema takes 'input' and 'config'"),
    ({"schema": ["input"]}, "schema must be a mapping"),
    ({"schema": {"input": ["city"]}}, "must be a mapping of field names"),
    ({"schema": {"input": {"city": "string"}}}, "field builder or a mapping"),
    ({"schema": {"input": {"city": {"type": "strin"}}}}, "unknown type"),
    ({"schema": {"input": {"": string_field()}}}, "not a string"),
    ({"execute": "not callable"}, "execute must be callable"),
    ({"execute": _kw_only}, "required keyword-only"),
    ({"timeout_ms": 0}, "timeout_ms must be a positive integer"),
    ({"timeout_ms": 1.5}, "timeout_ms must be a positive integer"),
    ({"unknown_fields": "drop"}, "unknown_fields must be 'reject' or 'ignore'"),
    ({"metadata": {"name": "x"}}, "Invalid tool metadata"),
    ({"execute": _sync_noop, "executor": "fork"}, "executor must be 'thread' or 'process'"),
    ({"executor": "process"}, "executor='process' runs a plain def execute"),
    ({"execute": _stream, "executor": "process"}, "this execute is async"),
    ({"execute": lambda input: None, "executor": "process"}, "top level of a module"),
    ({"execute": _nested(), "executor": "process"}, r"got _nested.<locals>.execute"),
]


def test_a_misspelt_create_tool_keyword_names_the_closest_one() -> None:
    options: dict[str, Any] = {"metadata": METADATA, "execute": _noop, "timeout": 1000}
    with pytest.raises(ToolDefinitionError) as raised:
        create_tool(**options)
    assert raised.value.message.startswith(
        "create_tool() got an unknown keyword 'timeout'; did you mean 'timeout_ms'?"
    )


@pytest.mark.parametrize(("options", "match"), DECLARATION_ERRORS)
def test_create_tool_rejects_bad_declarations(options: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {"metadata": METADATA, "execute": _noop, **options}
    with pytest.raises(ToolDefinitionError, match=match):
        create_tool(**arguments)


async def test_dict_form_fields_work_in_create_tool() -> None:
    tool = create_tool(
        metadata=METADATA,
        schema={
            "input": {
                "tags": {"type": "array", "maxItems": 20, "items": string_field(max_length=50)},
                "mode": {"type": "enum", "values": ["a", "b"], "default": "a"},
            }
        },
        execute=_returning("ok"),
    )
    assert (await tool.run({"tags": ["x"]})).ok
    result = await tool.run({"tags": ["x"] * 21})
    assert result.failure is not None
    assert result.failure.details["errors"][0]["path"] == "tags"


async def test_tool_without_a_schema_takes_an_empty_input() -> None:
    tool = create_tool(metadata=METADATA, execute=_returning({"pong": True}))
    assert (await tool.run()).data == {"pong": True}
    assert (await tool.run({"x": 1})).error_code == "VALIDATION_ERROR"


async def test_array_input_reaches_execute_as_a_list() -> None:
    tool = create_tool(
        metadata=METADATA,
        schema={"input": {"ids": array_field(string_field(transform="upper"))}},
        execute=lambda input: input["ids"],
    )
    assert (await tool.run({"ids": ["a", "b"]})).data == ["A", "B"]


async def test_reset_closes_breakers_and_forgets_cached_results_and_custom_metrics() -> None:
    async def execute(input: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        context.metrics.increment("calls")
        return {"n": input["n"]}

    tool = create_tool(
        metadata={"name": "resettable", "version": "1.0.0", "description": "x"},
        schema={"input": {"n": integer_field()}},
        execute=execute,
        cache={"ttl": 60},
    )
    breaker = tool.breakers.get("upstream", failure_threshold=1)
    with contextlib.suppress(ConnectionError):
        async with breaker:
            raise ConnectionError("down")
    await tool.cache.set(tool.cache.key({"n": 1}), "cached")
    await tool.run({"n": 1})
    assert breaker.stats()["state"] == "open"
    assert tool.get_metrics().custom == {"calls": 1}
    tool.reset()
    assert breaker.stats()["state"] == "closed"
    assert await tool.cache.get(tool.cache.key({"n": 1})) is None
    assert tool.get_metrics().custom == {}
