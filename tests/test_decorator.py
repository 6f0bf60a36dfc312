"""The ``@tool`` decorator: fields from type hints, defaults, the context and config parameters."""

from __future__ import annotations

import datetime as dt
import inspect
import os
import threading
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

import pytest
from msgspec import Meta

from ai_spine_tools import (
    Tool,
    ToolContext,
    ToolDefinitionError,
    api_key_field,
    string_field,
    tool,
)
from ai_spine_tools.core._decorator import field_from_hint
from ai_spine_tools.fields import (
    ArrayField,
    BooleanField,
    DateField,
    DateTimeField,
    EnumField,
    Field,
    IntegerField,
    JSONField,
    NumberField,
    ObjectField,
    StringField,
    TimeField,
    UUIDField,
)


@tool(name="weather-lookup", capabilities=["weather.current"])
async def weather(
    city: Annotated[str, Meta(max_length=100)],
    units: Literal["celsius", "fahrenheit"] = "celsius",
    *,
    context: ToolContext,
) -> dict[str, Any]:
    """Get current weather for a specific city.

    The rest of the docstring is not part of the description.
    """
    return {"city": city, "units": units, "tool": context.tool_id}


def test_decorator_builds_a_tool_from_type_hints() -> None:
    assert isinstance(weather, Tool)
    assert weather.name == "weather-lookup"
    assert weather.version == "1.0.0"
    assert weather.metadata.description == "Get current weather for a specific city."
    assert weather.metadata.capabilities == ("weather.current",)
    fields = weather.input_schema.fields
    assert fields["city"] == StringField(required=True, max_length=100)
    assert fields["units"] == EnumField(["celsius", "fahrenheit"], default="celsius")
    assert set(fields) == {"city", "units"}


async def test_decorated_tool_runs_with_keyword_arguments_and_context() -> None:
    result = await weather.run({"city": "Madrid"})
    assert result.data == {"city": "Madrid", "units": "celsius", "tool": "weather-lookup"}


async def test_decorated_tool_validates_from_the_hints() -> None:
    result = await weather.run({"city": "x" * 101, "units": "kelvin"})
    assert result.failure is not None
    assert [(e["path"], e["code"]) for e in result.failure.details["errors"]] == [
        ("city", "too_long"),
        ("units", "enum"),
    ]


def test_decorated_tool_keeps_the_function() -> None:
    assert weather.__wrapped__.__name__ == "weather"  # type: ignore[attr-defined]
    assert "specific city" in (weather.__doc__ or "")


HINTS: list[tuple[Any, Any, Field]] = [
    (str, inspect.Parameter.empty, StringField(required=True)),
    (int, 3, IntegerField(default=3)),
    (float, 0.5, NumberField(default=0.5)),
    (bool, False, BooleanField(default=False)),
    (dt.date, "2024-01-01", DateField(default="2024-01-01")),
    (dt.datetime, None, DateTimeField()),
    (dt.time, None, TimeField()),
    (uuid.UUID, None, UUIDField()),
    (Any, None, JSONField()),
    (dict[str, Any], None, ObjectField()),
    (dict, None, ObjectField()),
    (list[str], None, ArrayField(StringField(required=True))),
    (list, None, ArrayField()),
    (set[int], None, ArrayField(IntegerField(required=True), unique_items=True)),
    (str | None, None, StringField()),
    (int | str, None, JSONField()),
    (Literal[1, 2, 3], 1, EnumField([1, 2, 3], default=1)),
    (Annotated[int, Meta(ge=1, le=10)], 5, IntegerField(min=1, max=10, default=5)),
    (Annotated[float, Meta(multiple_of=0.5)], None, NumberField(multiple_of=0.5)),
    (
        Annotated[str, Meta(pattern="^[a-z]+$", min_length=2)],
        None,
        StringField(pattern="^[a-z]+$", min_length=2),
    ),
    (
        Annotated[str, Meta(description="City name", examples=["Madrid"])],
        None,
        StringField(description="City name", example="Madrid"),
    ),
    (Annotated[str, "City name"], None, StringField(description="City name")),
    (
        Annotated[list[str], Meta(min_length=1, max_length=3)],
        None,
        ArrayField(StringField(required=True), min_items=1, max_items=3),
    ),
    (
        list[Annotated[str, Meta(max_length=5)]],
        None,
        ArrayField(StringField(required=True, max_length=5)),
    ),
    (Annotated[str, string_field(format="email")], None, string_field(format="email")),
    (str, string_field(max_length=3), string_field(max_length=3)),
]


@pytest.mark.parametrize(("hint", "default", "expected"), HINTS, ids=lambda v: repr(v)[:40])
def test_field_from_hint(hint: Any, default: Any, expected: Field) -> None:
    assert field_from_hint(hint, default, "p") == expected


async def test_dates_reach_the_function_as_python_values() -> None:
    @tool()
    async def schedule(day: dt.date, at: dt.time, ref: uuid.UUID) -> dict[str, Any]:
        """Schedule something."""
        return {"day": day, "at": at, "ref": ref}

    result = await schedule.run(
        {"day": "2024-02-29", "at": "09:30:00", "ref": "00000000-0000-4000-8000-000000000000"}
    )
    assert result.data == {
        "day": dt.date(2024, 2, 29),
        "at": dt.time(9, 30),
        "ref": uuid.UUID("00000000-0000-4000-8000-000000000000"),
    }
    assert schedule.name == "schedule"


async def test_list_parameters_and_defaults() -> None:
    @tool()
    async def tag_things(tags: list[str], limit: int = 10, strict: bool = False) -> dict[str, Any]:
        """Tag things."""
        return {"tags": tags, "limit": limit, "strict": strict}

    assert tag_things.name == "tag-things"
    result = await tag_things.run({"tags": ["a", "b"]})
    assert result.data == {"tags": ["a", "b"], "limit": 10, "strict": False}
    bad = await tag_things.run({"tags": ["a", 1], "limit": "10"})
    assert bad.failure is not None
    assert [(e["path"], e["code"]) for e in bad.failure.details["errors"]] == [
        ("tags[1]", "type"),
        ("limit", "type"),
    ]


async def test_config_parameter_receives_the_resolved_config() -> None:
    @tool(config={"api_key": api_key_field(required=True)})
    async def lookup(q: str, config: dict[str, Any]) -> dict[str, Any]:
        """Look up."""
        return {"q": q, "key_length": len(config["api_key"])}

    assert set(lookup.input_schema.fields) == {"q"}
    assert (await lookup.run({"q": "x"}, {"api_key": "abcd"})).data == {"q": "x", "key_length": 4}
    assert (await lookup.run({"q": "x"})).error_code == "CONFIGURATION_ERROR"


async def test_context_parameter_may_have_any_name_when_hinted() -> None:
    @tool()
    async def whoami(ctx: ToolContext) -> str:
        """Who am I."""
        return ctx.tool_id

    assert whoami.input_schema.fields == {}
    assert (await whoami.run({})).data == "whoami"


async def test_sync_function_runs_in_a_worker_thread() -> None:
    @tool()
    def blocking(n: int) -> dict[str, Any]:
        """Block."""
        return {"n": n, "thread": threading.get_ident()}

    result = await blocking.run({"n": 2})
    assert result.data["n"] == 2
    assert result.data["thread"] != threading.get_ident()


@tool
async def bare_tool(city: str) -> dict[str, str]:
    """Echo a city."""
    return {"city": city}


async def test_bare_decorator_names_the_tool_after_the_function() -> None:
    assert isinstance(bare_tool, Tool)
    assert (bare_tool.name, bare_tool.metadata.description) == ("bare-tool", "Echo a city.")
    assert (await bare_tool.run({"city": "Lima"})).data == {"city": "Lima"}


def test_a_misspelt_decorator_option_names_the_metadata_key_meant() -> None:
    with pytest.raises(ToolDefinitionError, match="did you mean 'capabilities'"):

        @tool(capabilites=["x"])
        async def f(a: str) -> str:
            return a


def test_decorator_options_reach_the_metadata() -> None:
    @tool(
        "explicit-name",
        version="2.1.0-beta.1",
        description="Explicit description",
        author="me",
        tags=["x"],
        timeout_ms=1000,
        unknown_fields="ignore",
    )
    async def f(a: str) -> str:
        """Docstring loses to the explicit description."""
        return a

    assert f.metadata.name == "explicit-name"
    assert f.metadata.version == "2.1.0-beta.1"
    assert f.metadata.description == "Explicit description"
    assert f.metadata.author == "me"
    assert f.metadata.tags == ("x",)
    assert f.timeout_ms == 1000


def _fn_with_args(*values: str) -> None:
    """Takes *args."""


def _fn_with_unsupported_hint(value: bytes) -> None:
    """Takes bytes."""


def _fn_with_exclusive_bound(count: Annotated[int, Meta(gt=0)]) -> None:
    """Takes a positive int."""


def _fn_with_tz(at: Annotated[dt.datetime, Meta(tz=True)]) -> None:
    """Takes an aware datetime."""


def _fn_with_misplaced_constraint(flag: Annotated[bool, Meta(max_length=3)]) -> None:
    """Puts a length on a boolean."""


def _fn_without_description(a: str) -> None:
    pass


DECORATOR_ERRORS: list[tuple[Callable[..., Any], str]] = [
    (_fn_with_args, "cannot take \\*values"),
    (_fn_with_unsupported_hint, "cannot make a field from type hint"),
    (_fn_with_exclusive_bound, r"Meta\(gt=\) is not supported"),
    (_fn_with_tz, r"Meta\(tz=\) is not supported"),
    (_fn_with_misplaced_constraint, "boolean fields do not take max_length"),
    (_fn_without_description, "description must be a non-empty string"),
]


@pytest.mark.parametrize(("fn", "match"), DECORATOR_ERRORS)
def test_decorator_rejects_what_it_cannot_honour(fn: Callable[..., Any], match: str) -> None:
    with pytest.raises(ToolDefinitionError, match=match):
        tool()(fn)


@tool(name="in-a-worker", executor="process")
def in_a_worker(word: str, *, context: ToolContext, config: dict[str, Any]) -> dict[str, Any]:
    """Runs whole in a process-pool worker."""
    return {"pid": os.getpid(), "word": word, "execution_id": context.execution_id}


async def test_executor_process_runs_the_decorated_function_in_another_process() -> None:
    async with in_a_worker:
        result = await in_a_worker.run({"word": "hi"}, execution_id="e-7")
    assert result.ok, result
    assert result.data["pid"] != os.getpid()
    assert result.data | {"pid": 0} == {"pid": 0, "word": "hi", "execution_id": "e-7"}


async def async_word(word: str) -> str:
    """Async."""
    return word


def test_executor_process_is_refused_for_what_it_cannot_run() -> None:
    def nested(word: str) -> str:
        """Nested."""
        return word

    with pytest.raises(ToolDefinitionError, match="this execute is async"):
        tool(executor="process")(async_word)
    with pytest.raises(ToolDefinitionError, match=r"got test_executor_process_is_refused"):
        tool(executor="process")(nested)
