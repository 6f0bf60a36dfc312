"""Field builders: declare each input or config field of a tool and its constraints.

A field is a frozen description. ``_schema`` compiles a mapping of fields once, when the tool is
created, into a msgspec type (the fast path that accepts valid input) and into the checks below (the
path that names every failing field). Each field knows three things:

- ``native()``: the msgspec type that accepts exactly the field's values, or a wider one when
  msgspec cannot express a rule (then ``needs_post`` is true and ``check`` runs after decoding);
- ``check(value, path, issues)``: the full rule in Python, returning the normalised value and
  appending a ``ValidationIssue`` for each problem;
- ``json_schema()`` and ``example()``: what the schema endpoints and generators publish.

Values reach ``execute`` as Python values: strings, numbers, lists and dicts as decoded, and
``date``, ``datetime`` (always timezone-aware; an offset-less value is read as UTC), ``time`` and
``uuid.UUID`` for the temporal and uuid fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ai_spine_tools.exceptions import ToolDefinitionError
from ai_spine_tools.fields._base import MISSING, Field
from ai_spine_tools.fields._collections import ArrayField, JSONField, ObjectField
from ai_spine_tools.fields._file import FileField
from ai_spine_tools.fields._scalars import BooleanField, EnumField, IntegerField, NumberField
from ai_spine_tools.fields._temporal import DateField, DateTimeField, TimeField, UUIDField
from ai_spine_tools.fields._text import EmailField, SecretField, StringField, URLField

__all__ = [
    "MISSING",
    "ArrayField",
    "BooleanField",
    "DateField",
    "DateTimeField",
    "EmailField",
    "EnumField",
    "Field",
    "FileField",
    "IntegerField",
    "JSONField",
    "NumberField",
    "ObjectField",
    "SecretField",
    "StringField",
    "TimeField",
    "URLField",
    "UUIDField",
    "api_key_field",
    "array_field",
    "as_field",
    "boolean_field",
    "date_field",
    "datetime_field",
    "email_field",
    "enum_field",
    "file_field",
    "integer_field",
    "json_field",
    "number_field",
    "object_field",
    "secret_field",
    "string_field",
    "time_field",
    "url_field",
    "uuid_field",
]


string_field = StringField
number_field = NumberField
integer_field = IntegerField
boolean_field = BooleanField
enum_field = EnumField
array_field = ArrayField
object_field = ObjectField
date_field = DateField
datetime_field = DateTimeField
time_field = TimeField
email_field = EmailField
url_field = URLField
uuid_field = UUIDField
file_field = FileField
json_field = JSONField
api_key_field = SecretField
secret_field = SecretField

_BY_TYPE: dict[str, type[Field]] = {
    "string": StringField,
    "number": NumberField,
    "integer": IntegerField,
    "boolean": BooleanField,
    "enum": EnumField,
    "array": ArrayField,
    "object": ObjectField,
    "date": DateField,
    "datetime": DateTimeField,
    "date-time": DateTimeField,
    "time": TimeField,
    "email": EmailField,
    "url": URLField,
    "uri": URLField,
    "uuid": UUIDField,
    "file": FileField,
    "json": JSONField,
    "apikey": SecretField,
    "api_key": SecretField,
    "secret": SecretField,
}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def as_field(declaration: Field | Mapping[str, Any], *, where: str = "field") -> Field:
    """Return ``declaration`` as a field; a mapping such as ``{"type": "array", "maxItems": 20}``
    (the TypeScript SDK's plain-object form, camelCase or snake_case keys) is built into one."""
    if isinstance(declaration, Field):
        return declaration
    if not isinstance(declaration, Mapping):
        raise ToolDefinitionError(
            f"{where} must be a field builder or a mapping (got {type(declaration).__name__})"
        )
    options = {_snake(str(key)): value for key, value in declaration.items()}
    kind = str(options.pop("type", "")).lower()
    cls = _BY_TYPE.get(kind)
    if cls is None:
        raise ToolDefinitionError(
            f"{where} has unknown type {kind!r}; known types: {', '.join(sorted(_BY_TYPE))}"
        )
    if cls is EnumField:
        options["values"] = options.pop("values", options.pop("enum", ()))
    if "items" in options and isinstance(options["items"], Mapping):
        options["items"] = as_field(options["items"], where=f"{where}.items")
    if isinstance(options.get("properties"), Mapping):
        options["properties"] = {
            key: as_field(value, where=f"{where}.{key}")
            for key, value in options["properties"].items()
        }
    for alias, name in (("minimum", "min"), ("maximum", "max")):
        if alias in options:
            options[name] = options.pop(alias)
    try:
        return cls(**options)
    except TypeError as exc:  # ToolDefinitionError is one: name the field it is about
        message = exc.message if isinstance(exc, ToolDefinitionError) else str(exc)
        raise ToolDefinitionError(f"{where}: {message}") from None
