"""The field base class: presence, defaults, documentation and config behaviour."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any, ClassVar, Self

import msgspec

from ai_spine_tools.exceptions import ToolDefinitionError, ValidationIssue


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
"""Marks a field with no default."""

Issues = list[ValidationIssue]
FLOAT_MAX = 1.7976931348623157e308


def label(path: str) -> str:
    return f"'{path}'" if path else "input"


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def show(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, kw_only=True)
class Field:
    """What every field shares: presence, default, documentation and config behaviour.

    Args:
        required: the key must be present and not null.
        default: the value used when the key is absent or null; a default makes a field optional.
        description: shown in the schema, the OpenAPI document and function-calling exports.
        example: a value shown in schemas; it must pass the field's own validation.
        sensitive: the value is a secret: never echoed in errors, logs or ``repr``.
        env: for config fields, the environment variable that supplies the server-side value.
        overridable: for config fields, a request's value wins over the server-side one.
    """

    required: bool = False
    default: Any = MISSING
    description: str | None = None
    example: Any = MISSING
    sensitive: bool = False
    env: str | None = None
    overridable: bool = False

    kind: ClassVar[str] = "any"
    builder: ClassVar[str] = ""
    """The builder's name in messages (``email_field``); ``<kind>_field`` when empty."""

    def __new__(cls, *args: Any, **options: Any) -> Self:
        # Checked before the dataclass __init__ runs: Python's own TypeError names neither the
        # builder nor the keyword that was meant.
        if options:
            accepted = _keywords(cls)
            for key in options:
                if key not in accepted:
                    raise ToolDefinitionError(unknown_keyword(builder_name(cls), key, accepted))
        if len(args) > _positional(cls):
            raise ToolDefinitionError(
                f"{builder_name(cls)}() takes its options as keywords "
                f"(got {len(args)} positional argument(s): {show(args)})"
            )
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if self.required and self.default is not MISSING:
            raise ToolDefinitionError(
                f"{builder_name(type(self))}(required=True, default={show(self.default)}): "
                "a field cannot be required and have a default (a default makes it optional); "
                "drop one of them"
            )
        for name, value in (("default", self.default), ("example", self.example)):
            if value is MISSING or value is None:
                continue
            issues: Issues = []
            checked = self.check(value, name, issues)
            if issues:
                raise ToolDefinitionError(
                    f"{builder_name(type(self))}: {name} does not pass the field's own rules: "
                    + "; ".join(i.message for i in issues)
                )
            if name == "default":  # execute sees a default as it sees a sent value: normalised
                object.__setattr__(self, "default", checked)

    # -- what subclasses provide -------------------------------------------------------------

    def native(self) -> Any:
        """Return the msgspec type that decodes this field on the fast path."""
        return Any

    @property
    def needs_post(self) -> bool:
        """True when ``check`` must run after msgspec decoding (a rule msgspec cannot express)."""
        return False

    def check(self, value: Any, path: str, issues: Issues) -> Any:
        """Validate ``value`` fully; return it normalised, appending an issue per problem."""
        return value

    def post(self, value: Any, path: str, issues: Issues) -> Any:
        """Run what ``native()`` leaves out on a value msgspec accepted (``check`` unless a
        container can skip the members msgspec already checked in full)."""
        return self.check(value, path, issues)

    def fast_check(self) -> Callable[[Any], object] | None:
        """Return a cheap test, truthy only when ``post`` would accept a value msgspec decoded and
        leave it unchanged, or ``None``; ``post`` runs whenever the test is falsy or absent."""
        return None

    def base_schema(self) -> dict[str, Any]:
        """Return the JSON Schema of the value, without the shared annotations."""
        return {}

    def generate(self) -> Any:
        """Return a value that passes this field's rules, for examples and test data."""
        return None

    # -- shared ------------------------------------------------------------------------------

    def example_value(self) -> Any:
        """Return the declared example, the default, or a generated valid value."""
        if self.example is not MISSING:
            return self.example
        if self.default is not MISSING and self.default is not None:
            return self.default
        return self.generate()

    def json_schema(self) -> dict[str, Any]:
        """Return the JSON Schema (2020-12) of this field, with description, default, examples."""
        schema = self.base_schema()
        if self.description:
            schema["description"] = self.description
        if self.default is not MISSING and not self.sensitive:
            schema["default"] = msgspec.to_builtins(self.default)
        if self.example is not MISSING and not self.sensitive:
            schema["examples"] = [msgspec.to_builtins(self.example)]
        if self.sensitive:
            schema["writeOnly"] = True
            schema["format"] = schema.get("format", "password")
        return schema

    @property
    def fills_default(self) -> bool:
        """True when an absent or null value becomes something other than ``None``."""
        return self.default is not MISSING and self.default is not None

    def default_value(self) -> Any:
        """Return a fresh copy of the default (``None`` when there is none)."""
        if self.default is MISSING:
            return None
        if isinstance(self.default, list | dict):
            return copy.deepcopy(self.default)
        return self.default

    def _type_issue(self, value: object, path: str, issues: Issues, expected: str) -> None:
        issues.append(
            ValidationIssue(
                path, "type", f"{label(path)} must be {expected} (got {json_type(value)})"
            )
        )

    def _value_text(self, value: object) -> str:
        return "" if self.sensitive else f" (got {show(value)})"

    def __repr__(self) -> str:
        shown = []
        for f in dataclass_fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("_") or value is MISSING or value == f.default:
                continue
            if f.name in ("default", "example") and self.sensitive:
                value = "***"
            shown.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


def builder_name(cls: type[Field]) -> str:
    """The name users call to build a ``cls`` field (``string_field``)."""
    return cls.builder or f"{cls.kind}_field"


def unknown_keyword(where: str, key: str, accepted: Iterable[str]) -> str:
    """The message for a keyword ``where`` does not take: the closest one it does, and all."""
    names = sorted(name for name in accepted if not name.startswith("_"))
    close = suggest(key, names)
    hint = f"did you mean {close!r}? " if close else ""
    return f"{where}() got an unknown keyword {key!r}; {hint}it takes: {', '.join(names)}"


def suggest(key: str, accepted: Iterable[str]) -> str | None:
    """The accepted name ``key`` most likely meant: the same once case and underscores are
    ignored (``maxLength``, ``maxlength``), else the closest spelling."""
    names = list(accepted)
    flat = {name.replace("_", "").lower(): name for name in names}
    same = flat.get(key.replace("_", "").lower())
    if same is not None:
        return same
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.7)
    return close[0] if close else None


_KEYWORDS: dict[type, tuple[frozenset[str], int]] = {}


def _keywords(cls: type[Field]) -> frozenset[str]:
    return _signature(cls)[0]


def _positional(cls: type[Field]) -> int:
    return _signature(cls)[1]


def _signature(cls: type[Field]) -> tuple[frozenset[str], int]:
    """The keywords ``cls`` takes and how many of its parameters may be positional."""
    found = _KEYWORDS.get(cls)
    if found is None:
        params = [f for f in dataclass_fields(cls) if f.init]
        found = _KEYWORDS[cls] = (
            frozenset(f.name for f in params),
            sum(1 for f in params if not f.kw_only),
        )
    return found
