"""Array, object and free-form JSON fields."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import msgspec

from ai_spine_tools.exceptions import ToolDefinitionError, ValidationIssue
from ai_spine_tools.fields._base import Field, Issues, label

if TYPE_CHECKING:
    from ai_spine_tools.fields._schema import PostCheck

JSON_VALUE: Any = str | int | float | bool | list[Any] | dict[str, Any]
"""Any JSON value but ``null``, so that a required JSON field rejects null on the fast path as it
does on the diagnostic one (``Any`` would let it through as ``None``); an optional one takes null
as absent on both, by the ``| None`` every optional field's type gets."""


@dataclass(frozen=True, repr=False)
class ArrayField(Field):
    """A list, optionally of typed ``items``, with size bounds and unique items."""

    items: Field | None = None
    _: KW_ONLY
    min_items: int | None = None
    max_items: int | None = None
    unique_items: bool = False

    kind: ClassVar[str] = "array"

    def __post_init__(self) -> None:
        for name in ("min_items", "max_items"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ToolDefinitionError(f"{name} must be a non-negative integer (got {value!r})")
        if (
            self.min_items is not None
            and self.max_items is not None
            and self.min_items > self.max_items
        ):
            raise ToolDefinitionError(
                f"min_items ({self.min_items}) is greater than max_items ({self.max_items})"
            )
        if self.items is not None and not isinstance(self.items, Field):
            raise ToolDefinitionError(f"items must be a field (got {self.items!r})")
        Field.__post_init__(self)

    def native(self) -> Any:
        item: Any = Any if self.items is None else self.items.native()
        listed: Any = list[item]
        if self.min_items is None and self.max_items is None:
            return listed
        return Annotated[listed, msgspec.Meta(min_length=self.min_items, max_length=self.max_items)]

    @property
    def needs_post(self) -> bool:
        return self.unique_items or (self.items is not None and self.items.needs_post)

    def fast_check(self) -> Callable[[Any], object] | None:
        if self.unique_items or self.items is None:
            return None
        item_check = self.items.fast_check()
        if item_check is None:
            return None
        return lambda value: all(map(item_check, value))

    def check(self, value: Any, path: str, issues: Issues) -> Any:
        if not isinstance(value, list | tuple):
            self._type_issue(value, path, issues, "an array")
            return value
        value = list(value)
        size = len(value)
        if self.min_items is not None and size < self.min_items:
            issues.append(
                ValidationIssue(
                    path,
                    "too_short",
                    f"{label(path)} must have at least {self.min_items} items (got {size})",
                )
            )
            return value
        if self.max_items is not None and size > self.max_items:
            issues.append(
                ValidationIssue(
                    path,
                    "too_long",
                    f"{label(path)} must have at most {self.max_items} items (got {size})",
                )
            )
            return value
        if self.items is not None:
            check = self.items.check
            value = [check(item, f"{path}[{index}]", issues) for index, item in enumerate(value)]
        if self.unique_items:
            self._check_unique(value, path, issues)
        return value

    def post(self, value: Any, path: str, issues: Issues) -> Any:
        if self.items is not None and self.items.needs_post:
            post = self.items.post
            value = [post(item, f"{path}[{index}]", issues) for index, item in enumerate(value)]
        if self.unique_items:
            self._check_unique(value, path, issues)
        return value

    def _check_unique(self, value: list[Any], path: str, issues: Issues) -> None:
        seen: set[bytes] = set()
        for index, item in enumerate(value):
            key = msgspec.json.encode(item, order="deterministic")
            if key in seen:
                issues.append(
                    ValidationIssue(
                        f"{path}[{index}]",
                        "unique",
                        f"{label(path)} "
                        f"must not repeat items (item {index} repeats an earlier one)",
                    )
                )
                return
            seen.add(key)

    def base_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array"}
        if self.items is not None:
            schema["items"] = self.items.json_schema()
        if self.min_items is not None:
            schema["minItems"] = self.min_items
        if self.max_items is not None:
            schema["maxItems"] = self.max_items
        if self.unique_items:
            schema["uniqueItems"] = True
        return schema

    def generate(self) -> Any:
        count = self.min_items or (1 if self.items is not None else 0)
        if self.items is None:
            return []
        if self.unique_items and count > 1:
            return None  # distinct values cannot be invented in general
        item = self.items.example_value()
        return None if item is None else [item] * count


@dataclass(frozen=True, repr=False)
class ObjectField(Field):
    """A nested object with declared ``properties``, or any JSON object when none are given."""

    properties: Mapping[str, Field] | None = None
    _: KW_ONLY
    max_properties: int | None = None
    unknown: Literal["reject", "ignore"] = "reject"

    kind: ClassVar[str] = "object"
    _post: tuple[PostCheck, ...] = field(default=(), init=False, compare=False)
    _defaults: tuple[tuple[str, Field], ...] = field(default=(), init=False, compare=False)

    def __post_init__(self) -> None:
        if self.unknown not in ("reject", "ignore"):
            raise ToolDefinitionError(
                f"unknown must be 'reject' or 'ignore' (got {self.unknown!r})"
            )
        if self.properties is not None:
            for key, prop in self.properties.items():
                if not isinstance(key, str) or not key:
                    raise ToolDefinitionError(
                        f"property names must be non-empty strings (got {key!r})"
                    )
                if not isinstance(prop, Field):
                    raise ToolDefinitionError(f"property {key!r} must be a field (got {prop!r})")
            object.__setattr__(self, "properties", dict(self.properties))
            from ai_spine_tools.fields._schema import defaults_to_fill, post_checks

            object.__setattr__(self, "_post", post_checks(self.properties))
            object.__setattr__(self, "_defaults", defaults_to_fill(self.properties))
        Field.__post_init__(self)

    def native(self) -> Any:
        if self.properties is None:
            if self.max_properties is None:
                return dict[str, Any]
            return Annotated[dict[str, Any], msgspec.Meta(max_length=self.max_properties)]
        from ai_spine_tools.fields._schema import struct_for

        return struct_for(self.properties, name="Object", forbid_unknown=self.unknown == "reject")

    @property
    def needs_post(self) -> bool:
        return bool(self._post or self._defaults)

    def post(self, value: Any, path: str, issues: Issues) -> Any:
        # msgspec decoded the whole object: only the properties with rules of their own remain,
        # and the defaults of the optional ones sent as null
        from ai_spine_tools.fields._schema import fill_defaults, run_posts

        run_posts(value, self._post, path, issues)
        fill_defaults(value, self._defaults)
        return value

    def fast_check(self) -> Callable[[Any], object] | None:
        if self._defaults or any(fast is None for _, fast, _ in self._post):
            return None
        checks = tuple((key, fast) for key, fast, _ in self._post if fast is not None)

        def passes(value: dict[str, Any]) -> bool:
            for key, fast in checks:
                item = value[key]
                if item is not None and not fast(item):
                    return False
            return True

        return passes

    def check(self, value: Any, path: str, issues: Issues) -> Any:
        if not isinstance(value, dict):
            self._type_issue(value, path, issues, "an object")
            return value
        if self.properties is None:
            if self.max_properties is not None and len(value) > self.max_properties:
                issues.append(
                    ValidationIssue(
                        path,
                        "too_long",
                        f"{label(path)} must have at most "
                        f"{self.max_properties} keys (got {len(value)})",
                    )
                )
            return value
        from ai_spine_tools.fields._schema import check_object

        return check_object(
            self.properties, value, path, issues, forbid_unknown=self.unknown == "reject"
        )

    def base_schema(self) -> dict[str, Any]:
        if self.properties is None:
            schema: dict[str, Any] = {"type": "object"}
            if self.max_properties is not None:
                schema["maxProperties"] = self.max_properties
            return schema
        from ai_spine_tools.fields._schema import object_schema

        return object_schema(self.properties, closed=self.unknown == "reject")

    def generate(self) -> Any:
        if self.properties is None:
            return {}
        out = {}
        for key, prop in self.properties.items():
            if prop.required:
                value = prop.example_value()
                if value is None:
                    return None
                out[key] = value
        return out


@dataclass(frozen=True, kw_only=True, repr=False)
class JSONField(Field):
    """Any JSON value, passed through as decoded."""

    kind: ClassVar[str] = "json"

    def native(self) -> Any:
        return JSON_VALUE

    def generate(self) -> Any:
        return {}
