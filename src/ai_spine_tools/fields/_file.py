"""Inline file fields: base64 content with size and media-type rules."""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from ai_spine_tools.exceptions import ToolDefinitionError, ValidationIssue
from ai_spine_tools.fields._base import Field, Issues, label, show

# Strict base64, as the content is checked (binascii strict mode): whole quanta, padded.
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


_DEFAULT_TYPE = "application/octet-stream"


class _FileValue(msgspec.Struct, forbid_unknown_fields=False):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    content: str
    type: str = _DEFAULT_TYPE
    size: Annotated[int, msgspec.Meta(ge=0)] | None = None
    encoding: Literal["base64"] = "base64"


@dataclass(frozen=True, kw_only=True, repr=False)
class FileField(Field):
    """A file sent inline as ``{name, content (base64), type, size, encoding}``.

    ``max_size`` bounds the decoded content in bytes; ``allowed_types`` lists media types, with
    ``image/*`` style wildcards. ``execute`` receives the object with ``size`` filled in.
    """

    max_size: int | None = None
    allowed_types: Sequence[str] | None = None

    kind: ClassVar[str] = "file"

    def __post_init__(self) -> None:
        if self.max_size is not None and (not isinstance(self.max_size, int) or self.max_size < 0):
            raise ToolDefinitionError(
                f"max_size must be a non-negative integer (got {self.max_size!r})"
            )
        if self.allowed_types is not None:
            if isinstance(self.allowed_types, str):
                raise ToolDefinitionError("allowed_types must be a list of media types")
            object.__setattr__(self, "allowed_types", tuple(self.allowed_types))
        Field.__post_init__(self)

    def native(self) -> Any:
        return dict[str, Any]

    @property
    def needs_post(self) -> bool:
        return True

    def check(self, value: Any, path: str, issues: Issues) -> Any:
        if isinstance(value, dict) and None in value.values():
            # null reads as absent, as for any optional field (strict-mode models send it)
            value = {key: item for key, item in value.items() if item is not None}
        size = value.get("size") if isinstance(value, dict) else None
        if isinstance(size, float) and size.is_integer():  # 5.0 is 5, as for integer_field
            value = {**value, "size": int(size)}
        try:
            file = msgspec.convert(value, _FileValue)
        except msgspec.ValidationError as exc:
            issues.append(
                ValidationIssue(
                    path,
                    "type",
                    f"{label(path)} must be a file object "
                    f"{{name, content, type, size, encoding}}: {exc}",
                )
            )
            return value
        if self.max_size is not None and len(file.content) > (self.max_size + 2) // 3 * 4 + 4:
            issues.append(
                ValidationIssue(
                    path, "too_long", f"{label(path)} must be at most {self.max_size} bytes"
                )
            )
            return value
        try:
            data = binascii.a2b_base64(file.content, strict_mode=True)
        except (binascii.Error, ValueError):
            issues.append(
                ValidationIssue(path, "format", f"{label(path)} content must be valid base64")
            )
            return value
        size = len(data)
        if file.size is not None and file.size != size:
            issues.append(
                ValidationIssue(
                    path,
                    "size_mismatch",
                    f"{label(path)} declares size {file.size} but its content has {size} bytes",
                )
            )
        elif self.max_size is not None and size > self.max_size:
            issues.append(
                ValidationIssue(
                    path,
                    "too_long",
                    f"{label(path)} must be at most {self.max_size} bytes (got {size})",
                )
            )
        elif self.allowed_types is not None and not _type_allowed(file.type, self.allowed_types):
            issues.append(
                ValidationIssue(
                    path,
                    "file_type",
                    f"{label(path)} must be of type "
                    f"{', '.join(self.allowed_types)} (got {show(file.type)})",
                )
            )
        return {
            "name": file.name,
            "type": file.type,
            "size": size,
            "content": file.content,
            "encoding": file.encoding,
        }

    def base_schema(self) -> dict[str, Any]:
        content: dict[str, Any] = {
            "type": "string",
            "contentEncoding": "base64",
            "pattern": _BASE64,
        }
        if self.max_size is not None:
            content["maxLength"] = (self.max_size + 2) // 3 * 4
        media: dict[str, Any] = {"type": "string"}
        required = ["name", "content"]
        if self.allowed_types is not None:
            if any(rule.endswith("/*") for rule in self.allowed_types):
                media["pattern"] = _media_pattern(self.allowed_types)
            else:
                media["enum"] = list(self.allowed_types)
            if not _type_allowed(_DEFAULT_TYPE, self.allowed_types):
                required.append("type")  # an absent type reads as the default, not allowed
        return {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 255},
                "content": content,
                "type": media,
                "size": {"type": "integer", "minimum": 0},
                "encoding": {"enum": ["base64"]},
            },
            "required": required,
        }

    def generate(self) -> Any:
        kind = (self.allowed_types or ("text/plain",))[0].replace("*", "plain")
        return {
            "name": "example.txt",
            "type": kind,
            "content": "aGVsbG8=",
            "size": 5,
            "encoding": "base64",
        }


def _media_pattern(allowed: Iterable[str]) -> str:
    """A JSON Schema pattern matching the media types ``allowed`` (``image/*`` wildcards)."""
    if "*/*" in allowed:
        return "^[^/]+/[^/]+$"
    rules = [
        re.escape(rule[:-1]) + "[^/]+" if rule.endswith("/*") else re.escape(rule)
        for rule in allowed
    ]
    return "^(?:" + "|".join(rules) + ")$"


def _type_allowed(media_type: str, allowed: Iterable[str]) -> bool:
    major = media_type.split("/", 1)[0]
    return any(rule == media_type or rule == "*/*" or rule == f"{major}/*" for rule in allowed)
