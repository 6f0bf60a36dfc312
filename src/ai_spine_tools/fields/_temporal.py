"""Date, datetime, time and UUID fields, given to tools as Python values."""

from __future__ import annotations

import datetime as dt
import operator
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from ai_spine_tools.exceptions import ToolDefinitionError, ValidationIssue
from ai_spine_tools.fields._base import Field, Issues, label

_Temporal = dt.date | dt.datetime | dt.time


@dataclass(frozen=True, kw_only=True, repr=False)
class _TemporalField(Field):
    min: Any = None
    max: Any = None

    python_type: ClassVar[type] = dt.date
    format_name: ClassVar[str] = "date"

    def __post_init__(self) -> None:
        for name in ("min", "max"):
            bound = getattr(self, name)
            if bound is not None:
                try:
                    object.__setattr__(
                        self, name, self._normalise(msgspec.convert(bound, self.python_type))
                    )
                except msgspec.ValidationError:
                    raise ToolDefinitionError(
                        f"{name} must be an ISO-8601 {self.format_name} (got {bound!r})"
                    ) from None
        if (
            self.min is not None
            and self.max is not None
            and self._comparable(self.min) > self._comparable(self.max)
        ):
            raise ToolDefinitionError(f"min ({self.min}) is after max ({self.max})")
        Field.__post_init__(self)

    def _normalise(self, value: Any) -> Any:
        return value

    def _comparable(self, value: Any) -> Any:
        return value

    def native(self) -> Any:
        return self.python_type

    @property
    def needs_post(self) -> bool:
        return self.min is not None or self.max is not None

    def check(self, value: Any, path: str, issues: Issues) -> Any:
        if type(value) is not self.python_type:
            if not isinstance(value, str):
                self._type_issue(value, path, issues, f"an ISO-8601 {self.format_name} string")
                return value
            try:
                value = msgspec.convert(value, self.python_type)
            except msgspec.ValidationError:
                issues.append(
                    ValidationIssue(
                        path,
                        "format",
                        f"{label(path)} must be an ISO-8601 "
                        f"{self.format_name}{self._value_text(value)}",
                    )
                )
                return value
        value = self._normalise(value)
        if self.min is not None and self._comparable(value) < self._comparable(self.min):
            issues.append(
                ValidationIssue(
                    path,
                    "minimum",
                    f"{label(path)} must not be before "
                    f"{self.min.isoformat()}{self._value_text(value.isoformat())}",
                )
            )
        elif self.max is not None and self._comparable(value) > self._comparable(self.max):
            issues.append(
                ValidationIssue(
                    path,
                    "maximum",
                    f"{label(path)} must not be after "
                    f"{self.max.isoformat()}{self._value_text(value.isoformat())}",
                )
            )
        return value

    def base_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "format": self.format_name}
        # JSON Schema has no bounds for formatted strings; formatMinimum and formatMaximum are
        # the keywords validators that know them (ajv-formats, the format-assertion proposal)
        # read, and the others ignore. Strict-mode exports say them in the description.
        if self.min is not None:
            schema["formatMinimum"] = self.min.isoformat()
        if self.max is not None:
            schema["formatMaximum"] = self.max.isoformat()
        return schema

    def generate(self) -> Any:
        return self.min if self.min is not None else (self.max or self._sample())

    def _sample(self) -> Any:
        return dt.date(2024, 1, 31)


@dataclass(frozen=True, kw_only=True, repr=False)
class DateField(_TemporalField):
    """A calendar date (``YYYY-MM-DD``), given to ``execute`` as ``datetime.date``."""

    kind: ClassVar[str] = "date"


@dataclass(frozen=True, kw_only=True, repr=False)
class DateTimeField(_TemporalField):
    """An ISO-8601 timestamp, given as an aware ``datetime``; no offset means UTC."""

    kind: ClassVar[str] = "datetime"
    python_type: ClassVar[type] = dt.datetime
    format_name: ClassVar[str] = "date-time"

    def _normalise(self, value: Any) -> Any:
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value

    @property
    def needs_post(self) -> bool:
        return True  # offset-less values become UTC

    def fast_check(self) -> Callable[[Any], object] | None:
        if self.min is not None or self.max is not None:
            return None
        # Truthy for an aware datetime (timezone objects are), None for a naive one, which post
        # makes UTC. A C-level attrgetter: measured 0.04 us a call, against 0.15 us for post.
        return operator.attrgetter("tzinfo")

    def _sample(self) -> Any:
        return dt.datetime(2024, 1, 31, 12, 0, tzinfo=dt.UTC)


@dataclass(frozen=True, kw_only=True, repr=False)
class TimeField(_TemporalField):
    """A time of day (``HH:MM:SS[.ffffff]``, optionally with an offset), as ``datetime.time``."""

    kind: ClassVar[str] = "time"
    python_type: ClassVar[type] = dt.time
    format_name: ClassVar[str] = "time"

    def _comparable(self, value: Any) -> Any:
        return value.replace(tzinfo=None)  # a bound and a value may differ in having an offset

    def _sample(self) -> Any:
        return dt.time(12, 0)


@dataclass(frozen=True, kw_only=True, repr=False)
class UUIDField(Field):
    """A UUID in canonical or hex form, given as ``uuid.UUID``."""

    kind: ClassVar[str] = "uuid"

    def native(self) -> Any:
        return uuid.UUID

    def check(self, value: Any, path: str, issues: Issues) -> Any:
        if isinstance(value, uuid.UUID):
            return value
        if not isinstance(value, str):
            self._type_issue(value, path, issues, "a UUID string")
            return value
        try:
            return msgspec.convert(value, uuid.UUID)
        except msgspec.ValidationError:
            issues.append(
                ValidationIssue(
                    path, "format", f"{label(path)} must be a valid UUID{self._value_text(value)}"
                )
            )
            return value

    def base_schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "uuid"}

    def generate(self) -> Any:
        return uuid.UUID("00000000-0000-4000-8000-000000000000")
