"""Compile a mapping of fields once into a validator with a fast path and a diagnostic path.

The fast path decodes JSON (or converts a Python mapping) straight into a msgspec ``Struct`` built
from the fields' native types, then runs the few rules msgspec cannot express. When msgspec rejects
the value, the diagnostic path walks it field by field in Python and reports every failing field,
not only the first. The diagnostic path is also the reference: it accepts exactly what the fast path
accepts, plus ``null`` for an optional field (read as absent, as agents often send it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from ai_spine_tools.exceptions import InvalidJSONError, ValidationError, ValidationIssue
from ai_spine_tools.fields import MISSING, ArrayField, Field, ObjectField

__all__ = [
    "IssueList",
    "Schema",
    "check_object",
    "decode_any",
    "invalid_json",
    "object_schema",
    "struct_for",
]

_PASS_THROUGH = (dt.datetime, dt.date, dt.time, uuid.UUID)
MAX_ISSUES = 100


class IssueList(list[ValidationIssue]):
    """A list of issues that keeps the first ``MAX_ISSUES`` and counts the rest."""

    dropped = 0

    def append(self, issue: ValidationIssue) -> None:
        if len(self) < MAX_ISSUES:
            super().append(issue)
        else:
            self.dropped += 1


def struct_for(
    fields: Mapping[str, Field], *, name: str, forbid_unknown: bool
) -> type[msgspec.Struct]:
    """Build the msgspec ``Struct`` that decodes ``fields`` on the fast path."""
    spec: list[Any] = []
    renamed = not all(map(_plain_name, fields))
    for index, (key, field) in enumerate(fields.items()):
        attr = f"f{index}" if renamed else key  # msgspec renames on the wire
        native = field.native()
        if field.required:
            spec.append((attr, native, msgspec.field(name=key)))
        elif isinstance(field.default, list | dict):
            spec.append(
                (attr, native, msgspec.field(name=key, default_factory=field.default_value))
            )
        else:
            default = None if field.default is MISSING else field.default
            spec.append((attr, native, msgspec.field(name=key, default=default)))
    return msgspec.defstruct(name, spec, kw_only=True, forbid_unknown_fields=forbid_unknown)


def _plain_name(key: str) -> bool:
    """True when ``key`` can be a Struct attribute as it is (no clash with Struct internals)."""
    return key.isidentifier() and not key.startswith("_")


def _holds_struct(field: Field) -> bool:
    if isinstance(field, ObjectField):
        return field.properties is not None
    return isinstance(field, ArrayField) and field.items is not None and _holds_struct(field.items)


def check_object(
    fields: Mapping[str, Field],
    value: Any,
    path: str,
    issues: list[ValidationIssue],
    *,
    forbid_unknown: bool,
) -> Any:
    """Validate a mapping against ``fields``; return the normalised dict (the diagnostic path)."""
    if not isinstance(value, Mapping):
        where = f"'{path}'" if path else "input"
        kind = "an array" if isinstance(value, list) else type(value).__name__
        if value is None:
            kind = "null"
        issues.append(ValidationIssue(path, "type", f"{where} must be an object (got {kind})"))
        return value
    out: dict[str, Any] = {}
    for key, field in fields.items():
        where = f"{path}.{key}" if path else key
        item = value.get(key)
        if item is None:
            if field.required:
                issues.append(ValidationIssue(where, "required", f"'{where}' is required"))
            else:
                out[key] = field.default_value()
            continue
        out[key] = field.check(item, where, issues)
    if forbid_unknown and len(value) > sum(1 for key in fields if key in value):
        known = ", ".join(fields) or "none"
        for key in value:
            if key not in fields:
                where = f"{path}.{key}" if path else str(key)
                issues.append(
                    ValidationIssue(
                        where, "unknown_field", f"'{where}' is not a known field (known: {known})"
                    )
                )
    return out


def object_schema(fields: Mapping[str, Field], *, closed: bool = True) -> dict[str, Any]:
    """Return the JSON Schema of an object made of ``fields``."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {key: field.json_schema() for key, field in fields.items()},
    }
    required = [key for key, field in fields.items() if field.required]
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


class Schema:
    """A compiled set of fields: validates JSON bytes or Python mappings into plain dicts."""

    __slots__ = (
        "_decoder",
        "_flat",
        "_forbid_unknown",
        "_nested",
        "_post",
        "_struct",
        "fields",
        "subject",
    )

    def __init__(self, fields: Mapping[str, Field], *, subject: str, forbid_unknown: bool) -> None:
        self.fields = dict(fields)
        self.subject = subject
        self._forbid_unknown = forbid_unknown
        self._struct = struct_for(self.fields, name=subject.title(), forbid_unknown=forbid_unknown)
        self._decoder = msgspec.json.Decoder(self._struct)
        self._post = tuple((key, field) for key, field in self.fields.items() if field.needs_post)
        # Struct attributes named as the keys let asdict build the output: measured 2x faster
        # than to_builtins, which then only converts the nested Structs.
        self._flat = all(map(_plain_name, self.fields))
        self._nested = tuple(key for key, field in self.fields.items() if _holds_struct(field))

    def decode_json(self, data: bytes | memoryview) -> dict[str, Any]:
        """Validate a JSON document; raise ``InvalidJSONError`` or ``ValidationError``."""
        try:
            return self._finish(self._decoder.decode(data))
        except msgspec.ValidationError:
            pass
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise invalid_json(exc) from None
        return self.diagnose(decode_any(data))

    def validate(self, value: Any) -> dict[str, Any]:
        """Validate a Python mapping (as decoded from JSON); raise ``ValidationError``."""
        try:
            return self._finish(msgspec.convert(value, self._struct))
        except (msgspec.ValidationError, TypeError):  # TypeError: a value JSON cannot hold
            pass
        except RecursionError as exc:
            raise invalid_json(exc) from None
        return self.diagnose(value)

    def diagnose(self, value: Any) -> dict[str, Any]:
        """Walk ``value`` field by field; raise ``ValidationError`` naming every failing field."""
        issues = IssueList()
        try:
            out = check_object(self.fields, value, "", issues, forbid_unknown=self._forbid_unknown)
        except RecursionError as exc:
            raise invalid_json(exc) from None
        if issues:
            raise ValidationError(issues, subject=self.subject, dropped=issues.dropped)
        return out  # type: ignore[no-any-return]

    def _finish(self, struct: msgspec.Struct) -> dict[str, Any]:
        if self._flat:
            out = msgspec.structs.asdict(struct)
            for key in self._nested:
                if out[key] is not None:
                    out[key] = msgspec.to_builtins(out[key], builtin_types=_PASS_THROUGH)
        else:
            out = msgspec.to_builtins(struct, builtin_types=_PASS_THROUGH)
        if self._post:
            issues = IssueList()
            for key, field in self._post:
                value = out[key]
                if value is not None:
                    out[key] = field.post(value, key, issues)
            if issues:
                raise ValidationError(issues, subject=self.subject, dropped=issues.dropped)
        return out

    def json_schema(self) -> dict[str, Any]:
        """Return the JSON Schema (2020-12) of the whole object."""
        return object_schema(self.fields, closed=self._forbid_unknown)

    def example(self) -> dict[str, Any]:
        """Return an example made of each field's example; fields without one are left out."""
        out = {}
        for key, field in self.fields.items():
            value = field.example_value()
            if value is not None:
                out[key] = msgspec.to_builtins(value)
        return out


def decode_any(data: bytes | memoryview) -> Any:
    """Decode JSON without a schema; raise ``InvalidJSONError`` when it is not JSON."""
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise invalid_json(exc) from None


def invalid_json(exc: Exception) -> InvalidJSONError:
    """Describe why a body is not JSON, without echoing it."""
    if isinstance(exc, UnicodeDecodeError):
        # exc.start counts from the start of the string being decoded, not of the body
        return InvalidJSONError("Request body is not valid UTF-8")
    if isinstance(exc, RecursionError):
        return InvalidJSONError("Request body is nested too deeply")
    return InvalidJSONError(f"Request body is not valid JSON: {exc}")
