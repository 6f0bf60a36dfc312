"""``create_tool``: a tool declared from metadata, a schema of fields, and its functions."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from ai_spine_tools.cache import CacheOptions
from ai_spine_tools.core._metadata import ToolMetadata
from ai_spine_tools.core._tool import Execute, Executor, Tool, UnknownFields
from ai_spine_tools.exceptions import ToolDefinitionError
from ai_spine_tools.fields import Field, as_field
from ai_spine_tools.fields._base import unknown_keyword

__all__ = ["create_tool"]

P = ParamSpec("P")
T = TypeVar("T")


def _keywords_checked(fn: Callable[P, T]) -> Callable[P, T]:
    """``fn``, refusing an unknown keyword with a message naming the closest one it takes."""
    accepted = frozenset(inspect.signature(fn).parameters)

    @functools.wraps(fn)
    def checked(*args: P.args, **kwargs: P.kwargs) -> T:
        for key in kwargs:
            if key not in accepted:
                raise ToolDefinitionError(unknown_keyword(fn.__name__, key, accepted))
        return fn(*args, **kwargs)

    return checked


@_keywords_checked
def create_tool(
    *,
    metadata: Mapping[str, Any],
    execute: Execute,
    schema: Mapping[str, Mapping[str, Any]] | None = None,
    setup: Callable[..., Any] | None = None,
    cleanup: Callable[..., Any] | None = None,
    health_check: Callable[..., Any] | None = None,
    unknown_fields: UnknownFields = "reject",
    timeout_ms: int | None = None,
    max_threads: int | None = None,
    cache: bool | Mapping[str, Any] | CacheOptions | None = None,
    executor: Executor = "thread",
) -> Tool:
    """Declare a tool from metadata, a schema of input and config fields, and its functions.

    ``execute(input, config, context)`` may be async or sync (sync runs in a bounded thread pool)
    or an async generator (the server streams what it yields). Its parameters are matched by
    name: any of ``input``, ``config`` and ``context``, in any order, keyword-only too; three
    parameters of other names take that order (see ``_signature``); any other form is a
    ``ToolDefinitionError`` here.
    It returns a dict (success data), a ``ToolResult``, or the TypeScript SDK's
    ``{"status": ..., "data": ..., "error": ...}`` shape, or raises a ``ToolError``. The schema
    is compiled once, here.

    ``cache={"ttl": 600}`` (or ``True`` for the defaults; see ``CacheOptions``) makes the server
    cache successful results, keyed by the validated input and the config fields in
    ``vary_config``; a ``cache_enabled`` (or ``cacheEnabled``) config field switches it per
    request. ``tool.cache`` invalidates them.

    ``executor="process"`` runs a plain ``def execute`` in the server's process pool (for
    CPU-bound work; ``"thread"``, the default, runs it in the thread pool): it must be defined
    at the top level of a module, and gets ``input``, ``config`` and a picklable snapshot of
    the context (see ``ToolContext.snapshot``).
    """
    schema = schema or {}
    if not isinstance(schema, Mapping):
        raise ToolDefinitionError(f"schema must be a mapping (got {type(schema).__name__})")
    unknown = set(schema) - {"input", "config"}
    if unknown:
        raise ToolDefinitionError(
            f"schema takes 'input' and 'config' (got {', '.join(map(repr, sorted(unknown)))})"
        )
    return Tool(
        metadata=ToolMetadata.from_mapping(metadata),
        input_fields=_fields(schema.get("input") or {}, "input"),
        config_fields=_fields(schema.get("config") or {}, "config"),
        execute=execute,
        setup=setup,
        cleanup=cleanup,
        health_check=health_check,
        unknown_fields=unknown_fields,
        timeout_ms=timeout_ms,
        max_threads=max_threads,
        cache=cache,
        executor=executor,
    )


def _fields(declared: Mapping[str, Any], where: str) -> dict[str, Field]:
    if not isinstance(declared, Mapping):
        raise ToolDefinitionError(f"schema[{where!r}] must be a mapping of field names to fields")
    out = {}
    for key, value in declared.items():
        if not isinstance(key, str) or not key:
            raise ToolDefinitionError(
                f"schema[{where!r}] has a field name that is not a string (got {key!r})"
            )
        out[key] = as_field(value, where=f"{where}.{key}")
    return out
