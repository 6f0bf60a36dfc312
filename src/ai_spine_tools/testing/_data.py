"""Test data from a tool's schema: one valid input, and invalid inputs breaking one rule each.

``valid_input`` builds on each field's ``example_value()`` (its declared example, its default, or
what the field generates to fit its own constraints). ``invalid_inputs`` starts from that valid
input and breaks exactly one rule at a time: a required field left out or null, a value of the
wrong type, each declared bound one step past its limit, a pattern or format not matched, an
unknown key, and the same inside arrays and nested objects. Each case names the path and the
validation code the server must answer with.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import msgspec

from ai_spine_tools.core._tool import Tool
from ai_spine_tools.exceptions import ValidationError, ValidationIssue
from ai_spine_tools.fields import (
    ArrayField,
    BooleanField,
    EnumField,
    Field,
    FileField,
    JSONField,
    NumberField,
    ObjectField,
    StringField,
    UUIDField,
)
from ai_spine_tools.fields import DateField as _DateField
from ai_spine_tools.fields import DateTimeField as _DateTimeField
from ai_spine_tools.fields import TimeField as _TimeField

__all__ = ["InvalidInput", "invalid_inputs", "valid_input"]

UNKNOWN_KEY = "__unknown_field__"
_MAX_GENERATED_FILE = 1 << 20  # a larger file would meet the body limit before validation
_TEMPORAL = (_DateField, _DateTimeField, _TimeField)
_STEP: dict[type, dt.timedelta] = {
    _DateField: dt.timedelta(days=1),
    _DateTimeField: dt.timedelta(seconds=1),
    _TimeField: dt.timedelta(seconds=1),
}


class InvalidInput(NamedTuple):
    """One invalid input: what is broken, the input, and the issue the server must report."""

    description: str
    input: dict[str, Any]
    expected_path: str
    expected_code: str


def valid_input(tool: Tool, *, optional: bool = True) -> dict[str, Any]:
    """Return an input that passes ``tool``'s input schema, as JSON-ready values.

    Required fields always appear; optional ones too unless ``optional=False``. A required field
    whose valid value cannot be invented (a ``pattern`` with no ``example=``) raises ``ValueError``
    naming it; declare an example on such fields.
    """
    out: dict[str, Any] = {}
    for key, field in tool.input_schema.fields.items():
        if not field.required and not optional:
            continue
        value = _example(field)
        if value is None:
            if field.required:
                raise ValueError(
                    f"cannot generate a valid value for required input field {key!r} of "
                    f"{tool.name}; declare example= on it"
                )
            continue
        out[key] = value
    try:
        tool.input_schema.validate(out)
    except ValidationError as exc:
        raise ValueError(
            f"the generated input for {tool.name} does not validate ({exc.message}); "
            "declare example= on the fields named"
        ) from None
    return out


def invalid_inputs(tool: Tool) -> Iterator[InvalidInput]:
    """Yield inputs that each break one rule of ``tool``'s input schema, with the expected issue.

    Use them as a parametrize table::

        @pytest.mark.parametrize("case", list(invalid_inputs(tool)), ids=lambda c: c.description)
        def test_rejects(case: InvalidInput) -> None:
            assert_validation_error(test_tool(tool, case.input), case.expected_path,
                                    case.expected_code)
    """
    base = valid_input(tool)
    fields = tool.input_schema.fields
    for key, field in fields.items():
        if field.required:
            yield InvalidInput(
                f"{key}: required field missing", _without(base, key), key, "required"
            )
            yield InvalidInput(f"{key}: required field null", {**base, key: None}, key, "required")
        for description, bad, path, code in _field_cases(field, key, base.get(key)):
            yield InvalidInput(f"{key}: {description}", {**base, key: bad}, path, code)
    if tool.input_schema.json_schema().get("additionalProperties") is False:
        yield InvalidInput("unknown field", {**base, UNKNOWN_KEY: 1}, UNKNOWN_KEY, "unknown_field")


Case = tuple[str, Any, str, str]


def _field_cases(field: Field, path: str, valid: Any) -> Iterator[Case]:
    """Yield ``(description, bad value, issue path, code)`` for each rule of ``field``."""
    if isinstance(field, StringField):
        yield from _string_cases(field, path)
    elif isinstance(field, NumberField):
        yield from _number_cases(field, path)
    elif isinstance(field, BooleanField):
        yield "a string instead of a boolean", "true", path, "type"
    elif isinstance(field, EnumField):
        yield "a value outside the enum", _not_in(field.values), path, "enum"
    elif isinstance(field, ArrayField):
        yield from _array_cases(field, path)
    elif isinstance(field, ObjectField):
        yield from _object_cases(field, path, valid)
    elif isinstance(field, _TEMPORAL):
        yield from _temporal_cases(field, path)
    elif isinstance(field, UUIDField):
        yield "a number instead of a UUID", 42, path, "type"
        yield "a malformed UUID", "not-a-uuid", path, "format"
    elif isinstance(field, FileField):
        yield from _file_cases(field, path)
    elif isinstance(field, JSONField):
        return  # any JSON value but null is valid


def _string_cases(field: StringField, path: str) -> Iterator[Case]:
    yield "a number instead of a string", 12345, path, "type"
    if field.min_length:
        yield (
            f"shorter than {_count(field.min_length, 'character')}",
            "x" * (field.min_length - 1),
            path,
            "too_short",
        )
    if field.max_length is not None:
        yield (
            f"longer than {_count(field.max_length, 'character')}",
            "x" * (field.max_length + 1),
            path,
            "too_long",
        )
    if field.pattern is not None or field.format is not None:
        code = "pattern" if field.pattern is not None else "format"
        what = (
            f"a value not matching {field.pattern!r}"
            if field.pattern
            else (f"not a valid {field.format}")
        )
        size = max(field.min_length or 0, min(field.max_length or 10, 10), 1)
        for fill in ("!", "x", "0", "X", " ", "@", ".", "-", "é"):
            if _only_issue(field, fill * size, path, code):
                yield what, fill * size, path, code
                break


def _number_cases(field: NumberField, path: str) -> Iterator[Case]:
    yield "a string instead of a number", "12", path, "type"
    if field.integer:
        yield "a fraction instead of an integer", 0.5, path, "type"
    step = field.multiple_of
    if field.min is not None:
        low = _step_below(field.min, step, field.integer)
        if low is not None and _only_issue(field, low, path, "minimum"):
            yield f"below the minimum {field.min}", low, path, "minimum"
    if field.max is not None:
        high = _step_above(field.max, step, field.integer)
        if high is not None and _only_issue(field, high, path, "maximum"):
            yield f"above the maximum {field.max}", high, path, "maximum"
    valid = field.example_value()
    if step is not None and valid is not None:
        nudge = 1 if field.integer else step / 2
        for candidate in (valid + nudge, valid - nudge):
            if _only_issue(field, candidate, path, "multiple_of"):
                yield f"not a multiple of {step}", candidate, path, "multiple_of"
                break
    if field.precision is not None and not field.integer and valid is not None:
        nudge = 10.0 ** -(field.precision + 1)
        for candidate in (valid + nudge, valid - nudge):
            if _only_issue(field, candidate, path, "precision"):
                yield f"more than {field.precision} decimal places", candidate, path, "precision"
                break


def _array_cases(field: ArrayField, path: str) -> Iterator[Case]:
    yield "a string instead of an array", "not-an-array", path, "type"
    item = None if field.items is None else _example(field.items)
    filler = 0 if field.items is None else item
    if filler is None:
        return
    if field.min_items:
        yield (
            f"fewer than {_count(field.min_items, 'item')}",
            [filler] * (field.min_items - 1),
            path,
            "too_short",
        )
    if field.max_items is not None:
        yield (
            f"more than {_count(field.max_items, 'item')}",
            [filler] * (field.max_items + 1),
            path,
            "too_long",
        )
    if (
        field.unique_items
        and (field.min_items or 0) <= 2
        and (field.max_items is None or field.max_items >= 2)
    ):
        yield "a repeated item", [filler, filler], f"{path}[1]", "unique"
    if field.items is None or (field.unique_items and (field.min_items or 0) > 1):
        return
    others = [item] * max((field.min_items or 1) - 1, 0)
    for description, bad, where, code in _field_cases(field.items, f"{path}[0]", item):
        yield f"item {description}", [bad, *others], where, code


def _object_cases(field: ObjectField, path: str, valid: Any) -> Iterator[Case]:
    yield "a string instead of an object", "not-an-object", path, "type"
    if field.properties is None:
        if field.max_properties is not None:
            many = {f"key{i}": i for i in range(field.max_properties + 1)}
            yield f"more than {_count(field.max_properties, 'key')}", many, path, "too_long"
        return
    base = valid if isinstance(valid, dict) else _example(field)
    if not isinstance(base, dict):
        return
    for key, prop in field.properties.items():
        where = f"{path}.{key}"
        if prop.required:
            yield f"{key} missing", _without(base, key), where, "required"
        value = base.get(key, _example(prop))
        for description, bad, issue_path, code in _field_cases(prop, where, value):
            yield f"{key}: {description}", {**base, key: bad}, issue_path, code
    if field.unknown == "reject":
        yield "an unknown key", {**base, UNKNOWN_KEY: 1}, f"{path}.{UNKNOWN_KEY}", "unknown_field"


def _temporal_cases(field: Any, path: str) -> Iterator[Case]:
    yield "a number instead of a string", 20240131, path, "type"
    yield "a malformed value", f"not-a-{field.format_name}", path, "format"
    step = _STEP[type(field)]
    if field.min is not None:
        low = _shift(field.min, -step)
        if low is not None and _only_issue(field, low, path, "minimum"):
            yield f"before the minimum {field.min.isoformat()}", low, path, "minimum"
    if field.max is not None:
        high = _shift(field.max, step)
        if high is not None and _only_issue(field, high, path, "maximum"):
            yield f"after the maximum {field.max.isoformat()}", high, path, "maximum"


def _file_cases(field: FileField, path: str) -> Iterator[Case]:
    valid = field.example_value()
    yield "a string instead of a file object", "not-a-file", path, "type"
    if not isinstance(valid, dict):
        return
    yield "content that is not base64", {**valid, "content": "!!!!", "size": None}, path, "format"
    yield (
        "a size that does not match the content",
        {**valid, "size": 999_999},
        path,
        ("size_mismatch"),
    )
    if field.max_size is not None and field.max_size < _MAX_GENERATED_FILE:
        data = b"x" * (field.max_size + 1)
        big = {**valid, "content": base64.b64encode(data).decode(), "size": len(data)}
        yield f"larger than {_count(field.max_size, 'byte')}", big, path, "too_long"
    odd_type = {**valid, "type": "application/x-not-allowed"}
    if field.allowed_types is not None and _only_issue(field, odd_type, path, "file_type"):
        yield "a media type not allowed", odd_type, path, "file_type"


# -- helpers -----------------------------------------------------------------------------------


def _example(field: Field) -> Any:
    value = field.example_value()
    return None if value is None else msgspec.to_builtins(value)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _without(mapping: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def _only_issue(field: Field, value: Any, path: str, code: str) -> bool:
    """True when ``field`` rejects ``value`` with exactly one issue, ``code`` at ``path``."""
    issues: list[ValidationIssue] = []
    field.check(value, path, issues)
    return [(i.path, i.code) for i in issues] == [(path, code)]


def _not_in(values: tuple[Any, ...] | Any) -> Any:
    for candidate in ("__not_an_option__", -987654321, 1.5e300, "__not_an_option_2__"):
        if candidate not in values:
            return candidate
    return "__none_of_these__"


def _step_below(bound: float, step: float | None, integer: bool) -> float | None:
    if step is not None:
        value: float = (math.ceil(bound / step) - 1) * step
    elif integer:
        value = math.ceil(bound) - 1
    else:
        value = bound - 1 if bound - 1 < bound else math.nextafter(bound, -math.inf)
    if integer:
        value = math.floor(value)
    return value if value < bound and math.isfinite(value) else None


def _step_above(bound: float, step: float | None, integer: bool) -> float | None:
    if step is not None:
        value: float = (math.floor(bound / step) + 1) * step
    elif integer:
        value = math.floor(bound) + 1
    else:
        value = bound + 1 if bound + 1 > bound else math.nextafter(bound, math.inf)
    if integer:
        value = math.ceil(value)
    return value if value > bound and math.isfinite(value) else None


def _shift(bound: Any, step: dt.timedelta) -> str | None:
    try:
        if isinstance(bound, dt.time):
            moved = dt.datetime.combine(dt.date(2000, 1, 2), bound) + step
            if moved.date() != dt.date(2000, 1, 2):
                return None
            return moved.timetz().isoformat()
        shifted: dt.date = bound + step
    except OverflowError:
        return None
    return shifted.isoformat()
