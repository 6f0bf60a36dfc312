"""Number, integer, boolean and enum fields."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from ai_spine_tools.exceptions import ToolDefinitionError, ValidationIssue
from ai_spine_tools.fields._base import FLOAT_MAX, Field, Issues, label


@dataclass(frozen=True, kw_only=True, repr=False)
class NumberField(Field):
    """A finite number with optional bounds, integer-ness, decimal precision and step."""

    min: float | None = None
    max: float | None = None
    integer: bool = False
    precision: int | None = None
    multiple_of: float | None = None

    kind: ClassVar[str] = "number"

    def __post_init__(self) -> None:
        for name in ("min", "max", "multiple_of"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ToolDefinitionError(f"{name} must be a finite number (got {value!r})")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ToolDefinitionError(f"min ({self.min}) is greater than max ({self.max})")
        if self.multiple_of is not None and self.multiple_of <= 0:
            raise ToolDefinitionError(f"multiple_of must be positive (got {self.multiple_of})")
        if self.precision is not None and (
            not isinstance(self.precision, int) or self.precision < 0
        ):
            raise ToolDefinitionError(
                f"precision must be a non-negative integer (got {self.precision!r})"
            )
        Field.__post_init__(self)

    @property
    def kind_name(self) -> str:
        return "an integer" if self.integer else "a number"

    def native(self) -> Any:
        if self.integer:
            step = self.multiple_of if self.multiple_of == int(self.multiple_of or 0) else None
            if self.min is None and self.max is None and step is None:
                return int
            # msgspec takes only integer bounds for int; n >= 0.5 is n >= 1 for a whole number
            return Annotated[
                int,
                msgspec.Meta(
                    ge=None if self.min is None else math.ceil(self.min),
                    le=None if self.max is None else math.floor(self.max),
                    multiple_of=None if step is None else int(step),
                ),
            ]
        low = -FLOAT_MAX if self.min is None else self.min
        high = FLOAT_MAX if self.max is None else self.max
        return Annotated[float, msgspec.Meta(ge=low, le=high)]  # bounds also reject NaN and inf

    @property
    def needs_post(self) -> bool:
        if self.integer:
            return self.multiple_of is not None and self.multiple_of != int(self.multiple_of)
        return self.precision is not None or self.multiple_of is not None

    def check(self, value: Any, path: str, issues: Issues) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._type_issue(value, path, issues, self.kind_name)
            return value
        if isinstance(value, float) and not math.isfinite(value):
            issues.append(ValidationIssue(path, "type", f"{label(path)} must be a finite number"))
            return value
        if self.integer and isinstance(value, float):
            if value != int(value):
                self._type_issue(value, path, issues, "an integer")
                return value
            value = int(value)
        elif not self.integer and isinstance(value, int):
            if abs(value) > FLOAT_MAX:
                issues.append(ValidationIssue(path, "maximum", f"{label(path)} is out of range"))
                return value
            value = float(value)
        if self.min is not None and value < self.min:
            issues.append(
                ValidationIssue(
                    path,
                    "minimum",
                    f"{label(path)} must be at least {self.min}{self._value_text(value)}",
                )
            )
        elif self.max is not None and value > self.max:
            issues.append(
                ValidationIssue(
                    path,
                    "maximum",
                    f"{label(path)} must be at most {self.max}{self._value_text(value)}",
                )
            )
        elif self.multiple_of is not None and not _is_multiple(value, self.multiple_of):
            issues.append(
                ValidationIssue(
                    path,
                    "multiple_of",
                    f"{label(path)} must be a multiple "
                    f"of {self.multiple_of}{self._value_text(value)}",
                )
            )
        elif self.precision is not None and not _has_precision(value, self.precision):
            issues.append(
                ValidationIssue(
                    path,
                    "precision",
                    f"{label(path)} must have at most "
                    f"{self.precision} decimal places{self._value_text(value)}",
                )
            )
        return value

    def base_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer" if self.integer else "number"}
        if self.min is not None:
            schema["minimum"] = self.min
        if self.max is not None:
            schema["maximum"] = self.max
        if self.multiple_of is not None:
            schema["multipleOf"] = self.multiple_of
        elif self.precision is not None and not self.integer:
            schema["multipleOf"] = 10.0**-self.precision
        return schema

    def generate(self) -> Any:
        low = (
            self.min
            if self.min is not None
            else (0 if self.max is None or self.max >= 0 else self.max)
        )
        value: float = low
        if self.multiple_of is not None:
            value = math.ceil(low / self.multiple_of) * self.multiple_of
        elif self.precision is not None:
            value = math.ceil(low * 10**self.precision) / 10**self.precision
        return math.ceil(value) if self.integer else float(value)


@dataclass(frozen=True, kw_only=True, repr=False)
class IntegerField(NumberField):
    """A whole number with optional bounds and step."""

    integer: bool = True
    kind: ClassVar[str] = "integer"


def _is_multiple(value: float, step: float) -> bool:
    quotient = value / step
    return abs(quotient - round(quotient)) <= 1e-9 * max(1.0, abs(quotient))


def _has_precision(value: float, places: int) -> bool:
    return abs(value - round(value, places)) <= 1e-9 * max(1.0, abs(value))


@dataclass(frozen=True, kw_only=True, repr=False)
class BooleanField(Field):
    """``true`` or ``false``; no other value is coerced."""

    kind: ClassVar[str] = "boolean"

    def native(self) -> Any:
        return bool

    def check(self, value: Any, path: str, issues: Issues) -> Any:
        if not isinstance(value, bool):
            self._type_issue(value, path, issues, "a boolean")
        return value

    def base_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def generate(self) -> Any:
        return True


_SCALAR: Any = str | int | float | bool  # not null: a null enum value means absent


@dataclass(frozen=True, repr=False)
class EnumField(Field):
    """One of a fixed list of JSON scalars."""

    values: Sequence[str | int | float | bool] = ()
    _: KW_ONLY

    kind: ClassVar[str] = "enum"
    _keys: frozenset[tuple[type, object]] = field(default=frozenset(), init=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.values, str) or not isinstance(self.values, Iterable):
            raise ToolDefinitionError(f"enum values must be a list (got {self.values!r})")
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise ToolDefinitionError("enum_field needs at least one value")
        for value in self.values:
            if not isinstance(value, str | int | float | bool):
                raise ToolDefinitionError(
                    f"enum values must be strings, numbers or booleans (got {value!r})"
                )
        keys = frozenset(map(_enum_key, self.values))  # built once: check runs per request
        if len(keys) != len(self.values):
            raise ToolDefinitionError(f"enum values must be unique (got {list(self.values)!r})")
        object.__setattr__(self, "_keys", keys)
        Field.__post_init__(self)

    def native(self) -> Any:
        if all(isinstance(v, str) for v in self.values) or all(
            isinstance(v, int) and not isinstance(v, bool) for v in self.values
        ):
            return Literal[self.values]
        return _SCALAR  # mixed kinds: the post check compares values

    @property
    def needs_post(self) -> bool:
        return self.native() is _SCALAR

    def check(self, value: Any, path: str, issues: Issues) -> Any:
        if not isinstance(value, str | int | float | bool) or _enum_key(value) not in self._keys:
            allowed = ", ".join(repr(v) for v in self.values[:20])
            issues.append(
                ValidationIssue(
                    path, "enum", f"{label(path)} must be one of {allowed}{self._value_text(value)}"
                )
            )
        return value

    def base_schema(self) -> dict[str, Any]:
        return {"enum": list(self.values)}

    def generate(self) -> Any:
        return self.values[0]


def _enum_key(value: object) -> tuple[type, object]:
    return (
        bool if isinstance(value, bool) else float if isinstance(value, int | float) else str,
        value,
    )
