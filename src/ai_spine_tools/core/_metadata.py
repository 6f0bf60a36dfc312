"""``ToolMetadata``: a tool's name, version, description and capabilities, checked when declared."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ai_spine_tools.exceptions import ToolDefinitionError
from ai_spine_tools.fields._base import suggest

__all__ = ["ToolMetadata"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolMetadata:
    """What a tool says about itself in ``/``, ``/schema`` and its registrations."""

    name: str
    version: str
    description: str
    capabilities: tuple[str, ...] = ()
    author: str | None = None
    license: str | None = None
    homepage: str | None = None
    repository: str | None = None
    tags: tuple[str, ...] = field(default=())

    @classmethod
    def from_mapping(cls, metadata: Mapping[str, Any]) -> ToolMetadata:
        """Validate ``metadata`` and build it; raise ``ToolDefinitionError`` naming each problem."""
        if not isinstance(metadata, Mapping):
            raise ToolDefinitionError(f"metadata must be a mapping (got {type(metadata).__name__})")
        known = {f.name for f in fields(cls)}
        problems = [_unknown(str(key), known) for key in metadata if key not in known]
        name = metadata.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            problems.append(
                f"name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or "
                f"digit (got {name!r})"
            )
        version = metadata.get("version")
        if not isinstance(version, str) or not _SEMVER.fullmatch(version):
            problems.append(f"version must be a semantic version like '1.0.0' (got {version!r})")
        description = metadata.get("description")
        if not isinstance(description, str) or not description.strip():
            problems.append("description must be a non-empty string")
        elif len(description) > 2000:
            problems.append(f"description must be at most 2000 characters (got {len(description)})")
        lists: dict[str, tuple[str, ...]] = {}
        for key in ("capabilities", "tags"):
            value = metadata.get(key, ())
            if (
                isinstance(value, str)
                or not isinstance(value, Sequence)
                or not all(isinstance(item, str) and item.strip() for item in value)
            ):
                problems.append(f"{key} must be a list of non-empty strings (got {value!r})")
            else:
                lists[key] = tuple(value)
        for key in ("author", "license", "homepage", "repository"):
            value = metadata.get(key)
            if value is not None and not isinstance(value, str):
                problems.append(f"{key} must be a string (got {value!r})")
        if problems:
            raise ToolDefinitionError("Invalid tool metadata: " + "; ".join(problems))
        return cls(**{**metadata, **lists})

    def to_dict(self) -> dict[str, Any]:
        """Return the metadata as JSON-ready data, leaving out what is unset."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def _unknown(key: str, known: set[str]) -> str:
    close = suggest(key, known)
    return f"unknown metadata key {key!r}" + (f" (did you mean {close!r}?)" if close else "")
