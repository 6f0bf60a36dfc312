"""The ``@tool`` decorator: build a ``Tool`` from a function's signature and type hints."""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import types
import typing
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, get_args, get_origin, overload

import msgspec

from ai_spine_tools.core._context import ToolContext
from ai_spine_tools.core._create import create_tool
from ai_spine_tools.core._tool import Executor, Tool, UnknownFields
from ai_spine_tools.exceptions import ToolDefinitionError
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

__all__ = ["tool"]

_SIMPLE: dict[Any, type[Field]] = {
    str: StringField,
    int: IntegerField,
    float: NumberField,
    bool: BooleanField,
    dt.date: DateField,
    dt.datetime: DateTimeField,
    dt.time: TimeField,
    uuid.UUID: UUIDField,
    Any: JSONField,
    object: JSONField,
}
_META_OPTIONS = {
    "min_length": "min_length",
    "max_length": "max_length",
    "pattern": "pattern",
    "ge": "min",
    "le": "max",
    "multiple_of": "multiple_of",
    "description": "description",
}


@overload
def tool(name: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    name: str | None = None,
    *,
    version: str = "1.0.0",
    description: str | None = None,
    capabilities: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
    setup: Callable[..., Any] | None = None,
    cleanup: Callable[..., Any] | None = None,
    health_check: Callable[..., Any] | None = None,
    unknown_fields: UnknownFields = "reject",
    timeout_ms: int | None = None,
    cache: bool | Mapping[str, Any] | None = None,
    executor: Executor = "thread",
    **metadata: Any,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    name: str | Callable[..., Any] | None = None,
    *,
    version: str = "1.0.0",
    description: str | None = None,
    capabilities: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
    setup: Callable[..., Any] | None = None,
    cleanup: Callable[..., Any] | None = None,
    health_check: Callable[..., Any] | None = None,
    unknown_fields: UnknownFields = "reject",
    timeout_ms: int | None = None,
    cache: bool | Mapping[str, Any] | None = None,
    executor: Executor = "thread",
    **metadata: Any,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a function into a ``Tool``; each parameter becomes an input field.

    Use it bare (``@tool``: the tool is named after the function) or called
    (``@tool(name=..., capabilities=[...])``).

    A parameter's type hint gives its field (``str``, ``int``, ``float``, ``bool``, ``Literal``,
    ``list[...]``, ``dict``, ``date``, ``datetime``, ``time``, ``UUID``, ``Any``), refined by
    ``Annotated[..., msgspec.Meta(...)]`` or by a field builder given in ``Annotated`` or as the
    default. A parameter without a default is required. Parameters named ``context`` (or hinted
    ``ToolContext``) and ``config`` receive the execution context and the resolved config.
    ``cache`` turns on result caching as in ``create_tool``; ``executor="process"`` runs a plain
    ``def`` in the server's process pool, as there.
    """

    if callable(name):  # bare @tool: the function came as the name
        return tool()(name)

    def build(fn: Callable[..., Any]) -> Tool:
        if not callable(fn):
            raise ToolDefinitionError(f"@tool decorates a function (got {fn!r})")
        hints = typing.get_type_hints(fn, include_extras=True)
        fields: dict[str, Field] = {}
        context_name: str | None = None
        wants_config = False
        for parameter in inspect.signature(fn).parameters.values():
            hint = hints.get(parameter.name, Any)
            if parameter.name == "context" or hint is ToolContext:
                context_name = parameter.name
                continue
            if parameter.name == "config":
                wants_config = True
                continue
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise ToolDefinitionError(f"@tool functions cannot take *{parameter.name}")
            fields[parameter.name] = field_from_hint(hint, parameter.default, parameter.name)
        doc = inspect.getdoc(fn) or ""
        summary = description or doc.split("\n\n", 1)[0].replace("\n", " ").strip()
        is_async = inspect.iscoroutinefunction(fn)

        def arguments(
            input: dict[str, Any], config: dict[str, Any], context: ToolContext
        ) -> dict[str, Any]:
            kwargs = dict(input)
            if context_name is not None:
                kwargs[context_name] = context
            if wants_config:
                kwargs["config"] = config
            return kwargs

        async def execute_async(
            input: dict[str, Any], config: dict[str, Any], context: ToolContext
        ) -> Any:
            return await fn(**arguments(input, config, context))

        def execute_sync(
            input: dict[str, Any], config: dict[str, Any], context: ToolContext
        ) -> Any:
            return fn(**arguments(input, config, context))

        async def execute_stream(
            input: dict[str, Any], config: dict[str, Any], context: ToolContext
        ) -> AsyncIterator[Any]:
            async for item in fn(**arguments(input, config, context)):
                yield item

        execute: Callable[..., Any] = execute_async if is_async else execute_sync
        if inspect.isasyncgenfunction(fn):
            execute = execute_stream  # the server streams what it yields
        elif executor == "process" and not is_async:
            execute = _InProcess(fn, context_name=context_name, wants_config=wants_config)

        built = create_tool(
            metadata={
                "name": name or fn.__name__.replace("_", "-"),
                "version": version,
                "description": summary,
                "capabilities": list(capabilities),
                **metadata,
            },
            schema={"input": fields, "config": dict(config or {})},
            execute=execute,
            setup=setup,
            cleanup=cleanup,
            health_check=health_check,
            unknown_fields=unknown_fields,
            timeout_ms=timeout_ms,
            cache=cache,
            executor=executor,
        )
        built.__doc__ = fn.__doc__
        built.__wrapped__ = fn  # type: ignore[attr-defined]
        return built

    return build


class _InProcess:
    """A decorated plain ``def`` as ``executor="process"`` runs it: pickled by the function's
    name, which in its module now names the ``Tool`` the decorator returned, so a worker takes
    the function back from that tool's ``__wrapped__``."""

    def __init__(
        self, fn: Callable[..., Any], *, context_name: str | None, wants_config: bool
    ) -> None:
        self.function = fn
        self.__qualname__ = fn.__qualname__  # what create_tool checks: defined at module level
        self.context_name = context_name
        self.wants_config = wants_config

    def __call__(self, input: dict[str, Any], config: dict[str, Any], context: ToolContext) -> Any:
        kwargs = dict(input)
        if self.context_name is not None:
            kwargs[self.context_name] = context
        if self.wants_config:
            kwargs["config"] = config
        return self.function(**kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        fn = self.function
        return (_in_process, (fn.__module__, fn.__qualname__, self.context_name, self.wants_config))


def _in_process(
    module: str, qualname: str, context_name: str | None, wants_config: bool
) -> _InProcess:
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    fn = getattr(found, "__wrapped__", found)  # the Tool, or the function itself if kept
    return _InProcess(fn, context_name=context_name, wants_config=wants_config)


def field_from_hint(hint: Any, default: Any, name: str) -> Field:
    """Return the field a parameter's type hint and default describe."""
    if isinstance(default, Field):
        return default
    required = default is inspect.Parameter.empty
    options: dict[str, Any] = {"required": required}
    if not required and default is not None:
        options["default"] = default
    return _field(hint, options, name)


def _field(hint: Any, options: dict[str, Any], name: str) -> Field:
    origin = get_origin(hint)
    if origin is Annotated:
        base, *extras = get_args(hint)
        for extra in extras:
            if isinstance(extra, Field):
                return extra
            if isinstance(extra, msgspec.Meta):
                unsupported = [a for a in ("gt", "lt", "tz") if getattr(extra, a) is not None]
                if unsupported:  # dropping them would leave a declared constraint unchecked
                    raise ToolDefinitionError(
                        f"parameter {name!r}: msgspec.Meta({'=, '.join(unsupported)}=) is not "
                        "supported (bounds are inclusive: use ge= and le=; a datetime without an "
                        "offset is read as UTC)"
                    )
                for attr, option in _META_OPTIONS.items():
                    value = getattr(extra, attr, None)
                    if value is not None:
                        options[option] = value
                if extra.examples:
                    options["example"] = extra.examples[0]
            elif isinstance(extra, str):
                options["description"] = extra
        return _field(base, options, name)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(members) == 1:
            options["required"] = False
            return _field(members[0], options, name)
        return JSONField(**_only(options, JSONField, name))
    if origin is Literal:
        return EnumField(list(get_args(hint)), **_only(options, EnumField, name))
    if origin in (list, Sequence, tuple, set, frozenset) or hint in (list, tuple):
        args = [a for a in get_args(hint) if a is not Ellipsis]
        items = _field(args[0], {"required": True}, f"{name}[]") if args else None
        renamed = {"min_length": "min_items", "max_length": "max_items"}
        opts = {renamed.get(key, key): value for key, value in options.items()}
        return ArrayField(
            items, unique_items=origin in (set, frozenset), **_only(opts, ArrayField, name)
        )
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return ObjectField(**_only(options, ObjectField, name))
    cls = _SIMPLE.get(hint)
    if cls is None:
        raise ToolDefinitionError(
            f"parameter {name!r}: cannot make a field from type hint {hint!r}; use a supported "
            "type or give a field builder as its default"
        )
    return cls(**_only(options, cls, name))


def _only(options: dict[str, Any], cls: type[Field], name: str) -> dict[str, Any]:
    accepted = set(inspect.signature(cls).parameters)
    ignored = sorted(key for key in options if key not in accepted)
    if ignored:  # a constraint that does not apply to the type would silently go unchecked
        raise ToolDefinitionError(
            f"parameter {name!r}: {cls.kind} fields do not take {', '.join(ignored)}"
        )
    return options
