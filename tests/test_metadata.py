"""``ToolMetadata``: what a tool says about itself, checked when it is declared."""

from __future__ import annotations

from typing import Any

import pytest

from ai_spine_tools import ToolDefinitionError, ToolMetadata

BASE = {"name": "weather-lookup", "version": "1.0.0", "description": "Get the weather"}

VALID: list[dict[str, Any]] = [
    {},
    {"name": "a"},
    {"name": "Weather_Lookup.v2"},
    {"name": "x" * 64},
    {"version": "0.0.0"},
    {"version": "10.20.30"},
    {"version": "1.0.0-alpha"},
    {"version": "1.0.0-alpha.1"},
    {"version": "1.0.0-0.3.7"},
    {"version": "1.0.0+build.5"},
    {"version": "1.0.0-rc.1+20240101"},
    {"description": "x" * 2000},
    {"capabilities": ["weather.current", "weather.forecast"]},
    {"capabilities": ("a",)},
    {"tags": ["weather"]},
    {"author": "me", "license": "MIT", "homepage": "https://x", "repository": "https://y"},
]


@pytest.mark.parametrize("changes", VALID)
def test_valid_metadata_is_accepted(changes: dict[str, Any]) -> None:
    metadata = ToolMetadata.from_mapping({**BASE, **changes})
    for key, value in changes.items():
        expected = tuple(value) if isinstance(value, list | tuple) else value
        assert getattr(metadata, key) == expected


INVALID: list[tuple[dict[str, Any], str]] = [
    ({"name": ""}, "name must be"),
    ({"name": "-lookup"}, "name must be"),
    ({"name": "has space"}, "name must be"),
    ({"name": "x" * 65}, "name must be"),
    ({"name": "naïve"}, "name must be"),
    ({"name": "weather\n"}, "name must be"),
    ({"name": 123}, "name must be"),
    ({"name": None}, "name must be"),
    ({"version": "1.0"}, "semantic version"),
    ({"version": "v1.0.0"}, "semantic version"),
    ({"version": "01.0.0"}, "semantic version"),
    ({"version": "1.0.0-"}, "semantic version"),
    ({"version": "1.0.0\n"}, "semantic version"),
    ({"version": 1}, "semantic version"),
    ({"description": ""}, "description must be a non-empty string"),
    ({"description": "   "}, "description must be a non-empty string"),
    ({"description": None}, "description must be a non-empty string"),
    ({"description": "x" * 2001}, "at most 2000 characters"),
    ({"capabilities": "weather.current"}, "capabilities must be a list"),
    ({"capabilities": [""]}, "capabilities must be a list"),
    ({"capabilities": [1]}, "capabilities must be a list"),
    ({"tags": [" "]}, "tags must be a list"),
    ({"author": 5}, "author must be a string"),
    ({"homepage": ["x"]}, "homepage must be a string"),
    ({"owner": "me"}, "unknown metadata key 'owner'"),
    (
        {"capabilites": ["x"]},
        r"unknown metadata key 'capabilites' \(did you mean 'capabilities'\?\)",
    ),
    ({"Version": "1.0.0"}, "did you mean 'version'"),
]


@pytest.mark.parametrize(("changes", "match"), INVALID)
def test_invalid_metadata_is_rejected_naming_the_problem(
    changes: dict[str, Any], match: str
) -> None:
    with pytest.raises(ToolDefinitionError, match=match):
        ToolMetadata.from_mapping({**BASE, **changes})


def test_every_metadata_problem_is_reported_at_once() -> None:
    with pytest.raises(ToolDefinitionError) as info:
        ToolMetadata.from_mapping({"name": "bad name", "version": "1", "extra": 1})
    message = str(info.value)
    assert message.startswith("Invalid tool metadata: ")
    for part in ("unknown metadata key 'extra'", "name must be", "semantic version", "description"):
        assert part in message


def test_metadata_must_be_a_mapping() -> None:
    with pytest.raises(ToolDefinitionError, match="metadata must be a mapping"):
        ToolMetadata.from_mapping(["weather"])  # type: ignore[arg-type]


def test_to_dict_leaves_out_unset_values_and_lists_tuples() -> None:
    metadata = ToolMetadata.from_mapping({**BASE, "capabilities": ("a", "b"), "author": "me"})
    assert metadata.to_dict() == {**BASE, "capabilities": ["a", "b"], "tags": [], "author": "me"}


def test_metadata_is_frozen() -> None:
    metadata = ToolMetadata.from_mapping(BASE)
    with pytest.raises(AttributeError):
        metadata.name = "other"  # type: ignore[misc]
