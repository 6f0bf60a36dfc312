"""Run a value through both validation entry points of a schema and check they agree."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from ai_spine_tools import ValidationError
from ai_spine_tools.fields import Field
from ai_spine_tools.fields._schema import Schema

Issue = tuple[str, str]
Outcome = dict[str, Any] | list[Issue]


def schema_of(fields: Mapping[str, Field], *, forbid_unknown: bool = True) -> Schema:
    """Compile ``fields`` as a tool's input schema."""
    return Schema(fields, subject="input", forbid_unknown=forbid_unknown)


def outcome(call: Callable[[], dict[str, Any]]) -> Outcome:
    try:
        return call()
    except ValidationError as exc:
        return [(issue.path, issue.code) for issue in exc.issues]


def fast_only(schema: Schema, value: Any) -> Outcome | None:
    """The fast path alone on ``value`` sent as JSON: ``None`` when msgspec rejects it (and the
    walker would take over), else the validated dict or the issues of the rules run after."""
    try:
        struct = schema._decoder.decode(msgspec.json.encode(value))
    except msgspec.ValidationError:
        return None
    return outcome(lambda: schema._finish(struct))


def run_both(schema: Schema, value: Any) -> Outcome:
    """Validate ``value`` from JSON bytes and in-process; assert both give the same outcome.

    Returns the validated dict, or the ``(path, code)`` of every issue. The field-by-field
    walker alone must agree too, whichever path answered, and so must the fast path alone when
    msgspec accepts the value. ``repr`` is compared so that ``1`` and ``1.0`` count as different
    outputs.
    """
    from_json = outcome(lambda: schema.decode_json(msgspec.json.encode(value)))
    in_process = outcome(lambda: schema.validate(value))
    walker = outcome(lambda: schema.diagnose(value))
    assert repr(from_json) == repr(in_process) == repr(walker)
    fast = fast_only(schema, value)
    if fast is not None:
        assert repr(fast) == repr(walker)
    return from_json


def accepted(schema: Schema, value: Any) -> dict[str, Any]:
    """Return what both paths produce for a valid ``value``."""
    out = run_both(schema, value)
    assert isinstance(out, dict), f"rejected: {out}"
    return out


def rejected(schema: Schema, value: Any) -> list[Issue]:
    """Return the ``(path, code)`` issues both paths report for an invalid ``value``."""
    out = run_both(schema, value)
    assert isinstance(out, list), f"accepted: {out}"
    return out


def field_accepts(field: Field, raw: Any) -> Any:
    """Return the normalised value of a single field named ``value``."""
    return accepted(schema_of({"value": field}), {"value": raw})["value"]


def field_rejects(field: Field, raw: Any) -> list[Issue]:
    """Return the issues of a single field named ``value``."""
    return rejected(schema_of({"value": field}), {"value": raw})
