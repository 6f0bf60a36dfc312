"""RE2 patterns: linear-time matching, and a clear refusal of what RE2 cannot run."""

from __future__ import annotations

import pytest

from ai_spine_tools import ToolDefinitionError
from ai_spine_tools._patterns import compile_pattern


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        (r"^[a-z]+$", "abc", True),
        (r"^[a-z]+$", "abc1", False),
        (r"\d{3}", "ab123cd", True),
        (r"^(a+)+$", "a" * 100_000 + "!", False),
        (r"^\p{L}+$", "héllo", True),
        (r"(?i)^abc$", "ABC", True),
    ],
)
def test_compiled_pattern_searches(pattern: str, text: str, matches: bool) -> None:
    assert (compile_pattern(pattern).search(text) is not None) is matches


@pytest.mark.parametrize(
    "pattern", ["(?=a)", "(?!a)", "(?<=a)b", "(?<!a)b", r"(a)\1", "(", "a{2,1}"]
)
def test_patterns_re2_refuses_raise_a_definition_error(pattern: str) -> None:
    with pytest.raises(ToolDefinitionError, match="is not supported"):
        compile_pattern(pattern)


def test_pattern_must_be_a_string() -> None:
    with pytest.raises(ToolDefinitionError, match="must be a string"):
        compile_pattern(5)  # type: ignore[arg-type]


def test_refused_pattern_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ToolDefinitionError):
        compile_pattern("(?=x)")
    assert capfd.readouterr().err == ""


def test_search_takes_strings_with_lone_surrogates() -> None:
    pattern = compile_pattern("^a")
    assert pattern.search("a\ud800") is not None
    assert pattern.search("\ud800a") is None
