"""How ``execute`` is called: its parameters matched by name to ``input``, ``config`` and
``context``, decided once when the tool is declared.

The accepted forms:

- parameters named ``input``, ``config`` and ``context``: any of them, in any order, positional
  or keyword-only (``execute(input)``, ``execute(context, input)``,
  ``execute(input, *, context)``); other parameters must have defaults;
- no parameters at all;
- exactly three parameters, which take the TypeScript SDK's order ``(input, config, context)``
  (``execute(inp, cfg, ctx)``, ``execute(input, cfg, context)``) unless one is named for
  another place; or ``*args``.

Anything else (``execute(input, ctx)``, ``execute(data)``, four parameters) is a
``ToolDefinitionError`` naming these forms, rather than an error on every call.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from ai_spine_tools.exceptions import ToolDefinitionError

__all__ = [
    "NAMES",
    "Binding",
    "Executor",
    "bind",
    "check_executor",
    "collect_stream",
    "is_async",
    "is_stream",
    "positional_arity",
]

Executor = Literal["thread", "process"]
"""Where a plain ``def execute`` runs: the thread pool, or the server's process pool."""

NAMES = ("input", "config", "context")
_FORMS = (
    "name its parameters input, config and context (any of them, in any order, keyword-only "
    "too: execute(input), execute(input, context), execute(input, *, context)), or give it "
    "exactly three parameters, taken in the order (input, config, context)"
)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@dataclass(frozen=True, slots=True)
class Binding:
    """Which of ``(input, config, context)`` go to ``execute``, and how.

    ``positional`` holds their indices in the order they are passed; ``keywords`` the name and
    index of those passed by keyword.
    """

    positional: tuple[int, ...]
    keywords: tuple[tuple[str, int], ...] = ()

    @property
    def prefix(self) -> int | None:
        """``n`` when the first ``n`` values go positionally and nothing else (a slice does)."""
        n = len(self.positional)
        return n if not self.keywords and self.positional == tuple(range(n)) else None

    @property
    def uses_context(self) -> bool:
        """True when ``execute`` receives the context."""
        return 2 in self.positional or any(index == 2 for _, index in self.keywords)

    def arrange(self, *values: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments for ``execute`` from ``(input, config, context)``."""
        return (
            tuple(values[index] for index in self.positional),
            {name: values[index] for name, index in self.keywords},
        )


def bind(fn: Callable[..., Any], role: str = "execute") -> Binding:
    """Match ``fn``'s parameters to ``(input, config, context)``; raise ``ToolDefinitionError``
    naming the accepted forms when they do not fit."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: the TypeScript order
        return Binding((0, 1, 2))
    named = [p for p in parameters if p.name in NAMES and p.kind is not p.VAR_POSITIONAL]
    if not named:
        return _unnamed(parameters, role)
    ordered = [p for p in parameters if p.kind in _POSITIONAL]
    if len(ordered) == 3 and all(
        NAMES.index(p.name) == i if p.name in NAMES else p.default is p.empty
        for i, p in enumerate(ordered)
    ):  # (input, cfg, context): the TypeScript order, with some of its names
        return Binding((0, 1, 2))
    positional: list[int] = []
    keywords: list[tuple[str, int]] = []
    skipped: inspect.Parameter | None = None  # a positional parameter left to its default
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.name not in NAMES:
            if parameter.default is parameter.empty:
                what = "required keyword-only " if parameter.kind is parameter.KEYWORD_ONLY else ""
                raise ToolDefinitionError(
                    f"{role} takes a {what}parameter named {parameter.name!r}, which is none of "
                    f"{', '.join(NAMES)} and has no default: {_FORMS}"
                )
            if parameter.kind in _POSITIONAL:
                skipped = parameter
            continue
        index = NAMES.index(parameter.name)
        if parameter.kind is parameter.KEYWORD_ONLY or (
            skipped is not None and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
        ):
            keywords.append((parameter.name, index))
        elif skipped is not None:  # positional-only after one left to its default
            raise ToolDefinitionError(
                f"{role}'s positional-only parameter {parameter.name!r} follows "
                f"{skipped.name!r}, which it cannot skip: {_FORMS}"
            )
        else:
            positional.append(index)
    return Binding(tuple(positional), tuple(keywords))


def _unnamed(parameters: list[inspect.Parameter], role: str) -> Binding:
    """A function none of whose parameters is named input, config or context."""
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return Binding((0, 1, 2))
    ordered = [p for p in parameters if p.kind in _POSITIONAL]
    required = [p for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if required:
        raise ToolDefinitionError(
            f"{role} has a required keyword-only parameter {required[0].name!r}, which is none "
            f"of {', '.join(NAMES)}: {_FORMS}"
        )
    if len(ordered) == 3:
        return Binding((0, 1, 2))
    if not any(p.default is p.empty for p in ordered):
        return Binding(())  # nothing it needs: call it with nothing
    names = ", ".join(p.name for p in ordered)
    raise ToolDefinitionError(
        f"{role}({names}) takes {len(ordered)} parameter(s) named none of "
        f"{', '.join(NAMES)}: {_FORMS}"
    )


def is_stream(fn: Callable[..., Any]) -> bool:
    target = fn.func if isinstance(fn, functools.partial) else fn
    return inspect.isasyncgenfunction(target) or inspect.isasyncgenfunction(
        getattr(target, "__call__", None)  # noqa: B004 - a callable object's async generator
    )


def collect_stream(fn: Callable[..., AsyncIterator[Any]]) -> Callable[..., Awaitable[Any]]:
    async def collected(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"items": [item async for item in fn(*args, **kwargs)]}

    return collected


def check_executor(executor: Any, execute: Callable[..., Any], *, is_async: bool) -> Executor:
    """Refuse an executor that cannot run ``execute``, when the tool is declared."""
    if executor == "thread":
        return "thread"
    if executor != "process":
        raise ToolDefinitionError(f"executor must be 'thread' or 'process' (got {executor!r})")
    if is_async or is_stream(execute):
        raise ToolDefinitionError(
            "executor='process' runs a plain def execute in a worker process; this execute is "
            "async (it runs on the event loop already: await context.to_process(fn, ...) in it "
            "for its CPU-bound part, or make it a plain def)"
        )
    qualname = getattr(execute, "__qualname__", "")
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise ToolDefinitionError(
            f"executor='process' pickles execute by reference to send it to a worker process: "
            f"define it with def at the top level of a module (got {qualname})"
        )
    return "process"


def is_async(fn: Callable[..., Any]) -> bool:
    target = fn.func if isinstance(fn, functools.partial) else fn
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004 - a callable object's async __call__
    )


def positional_arity(fn: Callable[..., Any], role: str, most: int) -> int:
    """How many of the ``most`` positional arguments ``fn`` takes."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return most
    count = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            return most
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
        elif parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            raise ToolDefinitionError(
                f"{role} must not have required keyword-only parameters ({parameter.name})"
            )
    return min(count, most)
