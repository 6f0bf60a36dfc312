"""execute's parameters matched by name: every accepted form gets what it names, and any other
form fails when the tool is defined, naming the accepted forms."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from ai_spine_tools import ToolContext, create_tool, string_field
from ai_spine_tools.core._signature import Binding, bind
from ai_spine_tools.exceptions import ToolDefinitionError

METADATA = {"name": "shapes", "version": "1.0.0", "description": "d"}


def _all_three(input: Any, config: Any, context: Any) -> Any: ...
def _input_only(input: Any) -> Any: ...
def _input_context(input: Any, context: Any) -> Any: ...
def _context_input(context: Any, input: Any) -> Any: ...
def _config_only(config: Any) -> Any: ...
def _keyword_context(input: Any, *, context: Any) -> Any: ...
def _keyword_only(*, context: Any, input: Any) -> Any: ...
def _nothing() -> Any: ...
def _typescript_names(inp: Any, cfg: Any, ctx: Any) -> Any: ...
def _some_names_in_place(input: Any, cfg: Any, context: Any) -> Any: ...
def _varargs(*args: Any) -> Any: ...
def _extra_with_default(input: Any, retries: int = 3) -> Any: ...
def _skipped_then_named(input: Any, retries: int = 3, context: Any = None) -> Any: ...


VALID: list[tuple[Callable[..., Any], Binding]] = [
    (_all_three, Binding((0, 1, 2))),
    (_input_only, Binding((0,))),
    (_input_context, Binding((0, 2))),
    (_context_input, Binding((2, 0))),
    (_config_only, Binding((1,))),
    (_keyword_context, Binding((0,), (("context", 2),))),
    (_keyword_only, Binding((), (("context", 2), ("input", 0)))),
    (_nothing, Binding(())),
    (_typescript_names, Binding((0, 1, 2))),
    (_some_names_in_place, Binding((0, 1, 2))),
    (_varargs, Binding((0, 1, 2))),
    (_extra_with_default, Binding((0,))),
    (_skipped_then_named, Binding((0,), (("context", 2),))),
    (dict, Binding((0, 1, 2))),  # no signature to read: the TypeScript order
    (functools.partial(_all_three, {}), Binding((1, 2))),  # input given: the rest by name
]


@pytest.mark.parametrize(("execute", "binding"), VALID)
def test_accepted_forms_bind_by_name(execute: Callable[..., Any], binding: Binding) -> None:
    assert bind(execute) == binding


def _input_ctx(input: Any, ctx: Any) -> Any: ...
def _four(input: Any, config: Any, context: Any, extra: Any) -> Any: ...
def _four_unnamed(a: Any, b: Any, c: Any, d: Any) -> Any: ...
def _one_unnamed(data: Any) -> Any: ...
def _two_unnamed(a: Any, b: Any) -> Any: ...
def _misplaced(context: Any, config: Any, ctx: Any) -> Any: ...
def _required_keyword(input: Any, *, retries: int) -> Any: ...
def _positional_only_after_default(input: Any, retries: int = 3, context: Any = None, /) -> Any: ...


INVALID: list[tuple[Callable[..., Any], str]] = [
    (_input_ctx, "parameter named 'ctx'"),
    (_four, "parameter named 'extra'"),
    (_four_unnamed, r"execute\(a, b, c, d\) takes 4"),
    (_one_unnamed, r"execute\(data\) takes 1"),
    (_two_unnamed, r"execute\(a, b\) takes 2"),
    (_misplaced, "parameter named 'ctx'"),
    (_required_keyword, "required keyword-only parameter named 'retries'"),
    (_positional_only_after_default, "cannot skip"),
]


@pytest.mark.parametrize(("execute", "match"), INVALID)
def test_other_forms_fail_at_definition_naming_the_accepted_ones(
    execute: Callable[..., Any], match: str
) -> None:
    with pytest.raises(ToolDefinitionError, match=match) as raised:
        create_tool(metadata=METADATA, execute=execute)
    assert "execute(input, context)" in raised.value.message
    assert "(input, config, context)" in raised.value.message


async def _context_first(context: ToolContext, input: dict[str, Any]) -> dict[str, Any]:
    return {"tool": context.tool_id, "city": input["city"]}


async def _keyword_config(input: dict[str, Any], *, config: dict[str, Any]) -> dict[str, Any]:
    return {"city": input["city"], "region": config["region"]}


def _sync_context_only(context: ToolContext) -> dict[str, Any]:
    return {"tool": context.tool_id}


@pytest.mark.parametrize(
    ("execute", "expected"),
    [
        (_context_first, {"tool": "shapes", "city": "Lima"}),
        (_keyword_config, {"city": "Lima", "region": "eu"}),
        (_sync_context_only, {"tool": "shapes"}),
    ],
)
async def test_each_form_receives_what_it_names(
    execute: Callable[..., Any], expected: dict[str, Any]
) -> None:
    made = create_tool(
        metadata=METADATA,
        schema={
            "input": {"city": string_field(required=True)},
            "config": {"region": string_field(default="eu")},
        },
        execute=execute,
    )
    result = await made.run({"city": "Lima"})
    assert result.data == expected
