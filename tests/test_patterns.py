"""Patterns: linear-time matching on RE2 or, for the linear subset, on the stdlib engine with
RE2's meaning; a clear refusal of what RE2 cannot run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _validation import rejected, schema_of
from ai_spine_tools import ToolDefinitionError, ValidationError, string_field
from ai_spine_tools.fields._patterns import (
    _compile_re2,
    compile_pattern,
    engine,
    linear_equivalent,
)


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


REFUSED = ["(?=a)", "(?!a)", "(?<=a)b", "(?<!a)b", r"(a)\1", "(", "a{2,1}", "^a{2,1}"]
REFUSED += ["^a**", r"^\x{110000}", r"^\Z", "^a{1001}"]  # ^\Z: RE2 spells it \z


@pytest.mark.parametrize("pattern", REFUSED)
def test_patterns_re2_refuses_raise_a_definition_error(pattern: str) -> None:
    assert linear_equivalent(pattern) is None
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


def test_pattern_with_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="lone surrogate"):
        compile_pattern("^a\ud800")


# -- without google-re2 ---------------------------------------------------------------------------

WITHOUT_RE2 = """
import json, sys
sys.modules["re2"] = None  # import re2 raises ImportError, as where google-re2 has no wheel
from ai_spine_tools import ToolDefinitionError, ValidationError, string_field
from ai_spine_tools.fields._patterns import engine
from ai_spine_tools.fields._schema import Schema

out = {"engine": engine()}
fields = {"code": string_field(pattern=r"^[A-Z]{3}-\\d+$")}
schema = Schema(fields, subject="input", forbid_unknown=True)
out["valid"] = schema.validate({"code": "ABC-123"})
try:
    schema.validate({"code": "AB-123"})
except ValidationError as exc:
    out["invalid"] = [issue.code for issue in exc.issues]
try:
    string_field(pattern=r"^(a+)+$")
except ToolDefinitionError as exc:
    out["refused"] = exc.message
out["loaded"] = "re2" in sys.modules and sys.modules["re2"] is not None
print(json.dumps(out))
"""


def test_without_re2_the_subset_validates_and_other_patterns_are_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_RE2], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["valid"] == {"code": "ABC-123"}
    assert out["invalid"] == ["pattern"]
    assert "needs RE2 (google-re2), which is not installed" in out["refused"]
    assert "ai-spine-tools[re2]" in out["refused"]
    assert "linear subset only" in out["engine"]
    assert out["loaded"] is False


def test_engine_names_re2_where_it_is_installed() -> None:
    assert engine().startswith("field patterns: RE2 (google-re2 ")


# -- which engine runs a pattern ----------------------------------------------------------------

LINEAR = [
    r"^\d{5}$",
    r"^[A-Z]{3}-\d{4}$",
    r"^[a-z0-9_-]{3,16}$",
    r"^\d+$",
    r"^sk-",
    r"\A[^\s@]+",
    r"^https?://",
    r"^.*$",
    r"^a+?b",
    r"^\w*\b",
    r"^x*" + "y" * 32,
    r"\A\x{263a}+\z",
    r"^[\x41-\x5A_]\.[-a]?$",
]
NOT_LINEAR = [
    r"^(a+)+$",  # nested quantifiers: 2^n ways to split a run of a's
    r"^(a|a)+$",  # an alternation under a quantifier
    r"^(?:ab)+$",  # a repeated group
    r"^\d*\d*$",  # two variable quantifiers: n^2 splits of n digits
    r"^a+b?$",
    r"^x*" + "y" * 33,  # more than 32 characters to retry after the variable quantifier
    r"\d+x",  # unanchored: tried at every position
    r"[a-z]+$",
    r"^a|b",  # an alternation, one side unanchored
    r"(?m)^a+$",  # ^ at every line start
    r"(?i)^[a-z]+$",  # case folding differs between the engines
    r"(?s)^.*$",
    r"^[[:alpha:]]+$",  # a POSIX class for RE2, a set with '[' and ':' for Python
    r"^[a[:digit:]]$",
    r"^a{,3}$",  # a literal for RE2, a repeat for Python
    r"^a\B",  # Python's \B never matches in an empty text, RE2's does
    r"^(?:ab)c*",  # a group, even one that could be inlined
    r"^a|^b",  # an alternation, even one that could be factored
    r"^a{2",  # a brace RE2 reads as text
    r"^[a-c-e]",  # a dash that is neither a range nor the last item
    r"^\p{L}",
]


@pytest.mark.parametrize("pattern", LINEAR)
def test_linear_patterns_run_on_the_stdlib_engine(pattern: str) -> None:
    assert linear_equivalent(pattern) is not None
    compiled = compile_pattern(pattern)
    assert compiled.engine == "re"
    assert compiled.pattern == pattern


@pytest.mark.parametrize("pattern", NOT_LINEAR)
def test_other_patterns_run_on_re2(pattern: str) -> None:
    assert linear_equivalent(pattern) is None
    assert compile_pattern(pattern).engine == "re2"


def test_linear_equivalent_spells_re2_meaning() -> None:
    assert linear_equivalent(r"^\d{5}$") == r"(?a)\A[0-9]{5}\Z"
    assert linear_equivalent(r"^\s") == r"(?a)\A[\x09-\x0a\x0c-\x0d\x20]"


# -- the stdlib engine matches what RE2 matches -------------------------------------------------

SAME_MEANING = [
    (r"^a$", "a\n"),  # Python's $ also matches before a final newline
    (r"^\d$", "\u0663"),  # ARABIC-INDIC DIGIT THREE: a digit for Python, not for RE2
    (r"^\w$", "\xe9"),
    (r"^\s$", "\x0b"),  # vertical tab: \s for Python, not for RE2
    (r"^\s$", "\x1c"),
    (r"^\S$", "\x1c"),
    (r"^a\b", "a\xe9"),  # an ASCII word boundary for RE2
    (r"^.$", "\n"),
    (r"^[^a]$", "\n"),
    (r"^.$", "\ud800"),  # a lone surrogate is one character to both
    (r"^\D\W$", "\ud800\ud800"),
    (r"^..$", "\U0001f600"),
    ("^[\x01-\U0010ffff]+$", "a\U0010ffff\ud800"),
    (r"^[a-c-]+$", "a-c"),
    (r"^[]a]+$", "]a"),
    (r"^\x41\101\t$", "AA\t"),
]


@pytest.mark.parametrize(("pattern", "text"), SAME_MEANING)
def test_stdlib_engine_agrees_with_re2_where_the_syntaxes_differ(pattern: str, text: str) -> None:
    linear = compile_pattern(pattern)
    reference = _compile_re2(pattern)
    assert (linear.search(text) is not None) == (reference.search(text) is not None)


ATOMS = st.sampled_from(
    [
        *("a", "b", "0", "-", "\\.", ".", "\\d", "\\w", "\\s", "\\D", "\\W", "\\S", "\xe9", "\\n"),
        *("[a-c]", "[^a\\d]", "[\\s\\w]", "[^\\S]", "[a\\-z]", "[0-9A-F]", "[^\\n]", "\u263a"),
    ]
)
FIXED = st.sampled_from(["", "", "", "{2}", "{0}"])
VARIABLE = st.sampled_from(["*", "+", "?", "{2,}", "{1,3}", "*?", "+?", "??", "{0,2}?"])
ASSERTIONS = st.sampled_from(["", "", "", "\\b", "$", "^"])
TEXTS = st.text(
    alphabet="ab0-. \n\t\x0b\x0c\x1c_\xe9\u0663\u212aK\u263a\ud800\U0001f600AZ9", max_size=12
)


@st.composite
def linear_patterns(draw: st.DrawFn) -> str:
    """A pattern of the linear subset: anchored, flat, at most one variable quantifier."""
    items = [draw(ATOMS) + draw(FIXED) + draw(ASSERTIONS) for _ in range(draw(st.integers(0, 5)))]
    with_variable: bool = draw(st.booleans())
    if items and with_variable:
        index = draw(st.integers(0, len(items) - 1))
        items[index] = draw(ATOMS) + draw(VARIABLE)
    return draw(st.sampled_from(["^", "\\A"])) + "".join(items) + draw(st.sampled_from(["", "$"]))


@settings(max_examples=500, deadline=None)
@given(pattern=linear_patterns(), texts=st.lists(TEXTS, min_size=1, max_size=8))
def test_stdlib_engine_finds_what_re2_finds(pattern: str, texts: list[str]) -> None:
    linear = compile_pattern(pattern)
    assert linear.engine == "re", pattern
    reference = _compile_re2(pattern)
    for text in texts:
        assert (linear.search(text) is not None) == (reference.search(text) is not None), text


SYNTAX = st.text(alphabet="ab0-.^$\\[]{}()|*+?,:AzZbBdDwWsSx1234fFpQ\xe9 \n", max_size=10)


@settings(max_examples=1000, deadline=None)
@given(body=SYNTAX, texts=st.lists(TEXTS, min_size=1, max_size=4))
def test_every_pattern_of_the_subset_is_one_re2_accepts_alike(body: str, texts: list[str]) -> None:
    # The subset is what runs without RE2: it must hold no pattern RE2 would refuse or read apart.
    pattern = "^" + body
    if linear_equivalent(pattern) is None:
        return
    reference = _compile_re2(pattern)
    linear = compile_pattern(pattern)
    for text in texts:
        assert (linear.search(text) is not None) == (reference.search(text) is not None), text


# -- hostile input ------------------------------------------------------------------------------

HOSTILE = [
    "a" * 100_000 + "!",
    "0" * 100_000 + "x",
    "x" * 100_000,
    "ab" * 50_000 + "\n",
    " " * 100_000,
    "\n" * 100_000,
    "A" * 33 + "y" * 99_967,
    "\ud800" * 100_000,
]


@pytest.mark.parametrize("pattern", LINEAR + NOT_LINEAR)
def test_every_pattern_finishes_on_hostile_text(pattern: str) -> None:
    # No timing assert (timing goals live in bench/): a backtracking blow-up would hang here.
    compiled = compile_pattern(pattern)
    for text in HOSTILE:
        compiled.search(text)


@pytest.mark.parametrize("pattern", LINEAR + NOT_LINEAR)
def test_length_is_checked_before_any_pattern(pattern: str) -> None:
    schema = schema_of({"value": string_field(pattern=pattern, max_length=100)})
    for text in HOSTILE:
        if text.isascii():  # JSON cannot carry a lone surrogate; validate() takes it in-process
            assert rejected(schema, {"value": text}) == [("value", "too_long")]
        with pytest.raises(ValidationError) as info:
            schema.validate({"value": text})
        assert [(issue.path, issue.code) for issue in info.value.issues] == [("value", "too_long")]
