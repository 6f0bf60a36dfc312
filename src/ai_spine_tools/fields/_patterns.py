"""Linear-time regular expressions for field patterns.

Every pattern is compiled by RE2 (``google-re2``), whose matching time grows linearly with the
input, so a pattern such as ``^(a+)+$`` cannot stall a server on a hostile string. RE2 refuses the
few constructs that need backtracking (lookaround, backreferences); such a pattern is rejected when
the field is declared, with a message saying why.

A pattern in a small subset whose search time is linear on Python's own backtracking engine as well
(see ``linear_equivalent``) runs on the stdlib ``re`` instead, which answers in a fraction of the
time, rewritten so that it accepts exactly the strings RE2 accepts.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import re2

from ai_spine_tools.exceptions import ToolDefinitionError

if TYPE_CHECKING:  # typeshed describes re._parser under its old public name
    import sre_constants as _sre
    import sre_parse as _parser
else:
    from re import _constants as _sre
    from re import _parser

__all__ = ["Pattern", "compile_pattern", "linear_equivalent"]


class Pattern(Protocol):
    """A compiled pattern as the validators use it: truthy ``search`` result on a match."""

    pattern: str
    engine: str

    def search(self, text: str) -> object | None: ...


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern raises below; RE2 must not also print to stderr
_OPTIONS.never_capture = True  # validators only ask whether there is a match: no groups to track


class _Program:
    """A compiled RE2 program asked only whether ``text`` contains a match.

    google-re2's ``search`` builds a match object in Python (2.6 us a call measured, ten times a
    stdlib ``re`` search); calling the compiled program directly costs 0.45 us.
    """

    __slots__ = ("_match", "_unanchored", "pattern")

    engine = "re2"

    def __init__(self, pattern: str, program: Any, unanchored: Any) -> None:
        self.pattern = pattern
        self._match = program.Match
        self._unanchored = unanchored

    def search(self, text: str) -> bool | None:
        data = text.encode("utf-8", "surrogatepass")
        spans = self._match(self._unanchored, data, 0, len(data))
        return True if spans[0][0] >= 0 else None


class _Wrapped:
    """An RE2 pattern searched through google-re2's own ``search``."""

    __slots__ = ("pattern", "search")

    engine = "re2"

    def __init__(self, pattern: str, search: Callable[[str], object | None]) -> None:
        self.pattern = pattern
        self.search = search


class _Linear:
    """A pattern of the linear subset, run on the stdlib engine in the form ``linear_equivalent``
    gives it.

    Measured on the benchmark's patterns (``^\\d{5}$``, ``^[A-Z]{3}-\\d{4}$``): 0.10-0.11 us a
    call through the bound ``match``, against 0.55 us for the RE2 program above.
    """

    __slots__ = ("equivalent", "pattern", "search")

    engine = "re"

    def __init__(self, pattern: str, equivalent: str) -> None:
        self.pattern = pattern
        self.equivalent = equivalent
        # The equivalent starts with \A, so a match at position 0 is the only possible one.
        self.search: Callable[[str], object | None] = re.compile(equivalent).match


def compile_pattern(pattern: str, *, where: str = "pattern") -> Pattern:
    """Compile ``pattern`` for linear-time ``search``; raise ``ToolDefinitionError`` if refused.

    RE2 decides which patterns are accepted and what they match; a pattern of the linear subset
    then runs on the stdlib engine, rewritten to match the same strings.
    """
    if not isinstance(pattern, str):
        raise ToolDefinitionError(f"{where} must be a string (got {type(pattern).__name__})")
    compiled = _compile_re2(pattern, where=where)
    equivalent = linear_equivalent(pattern)
    return compiled if equivalent is None else _Linear(pattern, equivalent)


def _compile_re2(pattern: str, *, where: str = "pattern") -> Pattern:
    """Compile ``pattern`` with RE2 alone (the reference the linear subset is tested against)."""
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except (re2.error, UnicodeEncodeError) as exc:
        if isinstance(exc, UnicodeEncodeError):
            reason = "it contains a lone surrogate"
        elif exc.args and isinstance(exc.args[0], bytes):
            reason = exc.args[0].decode()
        else:
            reason = str(exc)
        raise ToolDefinitionError(
            f"{where} {pattern!r} is not supported: {reason}. Patterns run on RE2 so that no input "
            "can make validation backtrack for seconds; lookahead, lookbehind and backreferences "
            "are not available. Split the rule across fields, or check it in execute()."
        ) from None
    program = getattr(compiled, "_regexp", None)  # google-re2's compiled program, if exposed
    anchor = getattr(getattr(program, "Anchor", None), "UNANCHORED", None)
    if anchor is None:  # pragma: no cover - google-re2 without the internals used above
        return _Wrapped(pattern, compiled.search)
    return _Program(pattern, program, anchor)


# -- the linear subset ---------------------------------------------------------------------------
#
# A pattern qualifies when its parsed form (what the stdlib engine would run) is:
#   - anchored at the start: its first item is ``^`` (without MULTILINE) or ``\A``;
#   - a flat sequence of items, each one single-character matcher (a literal, ``.``, a class,
#     ``\d``...) or a zero-width assertion (``^``, ``$``, ``\A``, ``\b``): no group of any
#     kind, no alternation, no backreference, no lookaround;
#   - with quantifiers only on single-character matchers, and at most ONE of them variable
#     (``*``, ``+``, ``?``, ``{m,}``, ``{m,n}`` with m != n, greedy or lazy); ``{n}`` is fixed;
#   - with at most ``_MAX_TAIL`` characters matched after that variable quantifier.
#
# Why the search is linear in the length n of the text. Being anchored, the match can only start at
# position 0 (``_Linear`` calls ``match``; a ``search`` would fail in one step at every other
# position). Everything before the variable quantifier is deterministic: each item consumes exactly
# one character or none, with no choice, so it runs once. The variable quantifier is the only choice
# point of the whole program: it repeats a single-character matcher, so its choices are its repeat
# counts, at most n + 1 of them, each reached in one step from the previous one. For each count the
# rest of the pattern is again deterministic and at most ``_MAX_TAIL`` characters long, so it
# succeeds or fails within ``_MAX_TAIL`` + (number of items) steps, and it cannot backtrack into
# anything but the next count. The total is O(n * _MAX_TAIL): linear, with a small constant. Any
# second choice point (another variable quantifier, an alternation, a group that repeats) would
# multiply the choices (``^\d*\d*$`` has n^2 splits of n digits; ``^(a+)+$`` has 2^n), so the
# subset excludes it, and such patterns stay on RE2.
#
# The stdlib engine reads some syntax differently from RE2, so the subset is not run as written
# but rebuilt from the parse tree with RE2's meaning: ``$`` becomes ``\Z`` (Python's ``$`` also
# matches before a final newline); ``\d``, ``\w``, ``\s`` and ``\b`` become RE2's ASCII classes
# (Python's are Unicode); ``.`` becomes ``[^\n]``. Inline flags, ``\B`` (Python's never matches in
# an empty text) and the two spellings the parsers disagree on (``[:alpha:]`` inside a class,
# ``{,n}``) send a pattern to RE2.

_MAX_TAIL = 32
_LAST = 0x10FFFF

_Ranges = list[tuple[int, int]]

_CATEGORIES: dict[Any, _Ranges] = {  # RE2's Perl classes, which are ASCII-only
    _sre.CATEGORY_DIGIT: [(0x30, 0x39)],
    _sre.CATEGORY_SPACE: [(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)],
    _sre.CATEGORY_WORD: [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
}
_NEGATED = {
    _sre.CATEGORY_NOT_DIGIT: _sre.CATEGORY_DIGIT,
    _sre.CATEGORY_NOT_SPACE: _sre.CATEGORY_SPACE,
    _sre.CATEGORY_NOT_WORD: _sre.CATEGORY_WORD,
}
_ASSERTIONS = {
    _sre.AT_BEGINNING: r"\A",
    _sre.AT_BEGINNING_STRING: r"\A",
    _sre.AT_END: r"\Z",  # RE2's $ (without MULTILINE) is the end of the text only
    _sre.AT_END_STRING: r"\Z",
    _sre.AT_BOUNDARY: r"\b",  # ASCII word boundaries, as RE2's, by the (?a) flag below
}  # not \B: Python's never matches in an empty text, RE2's does
_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT)


def linear_equivalent(pattern: str) -> str | None:
    """Return a stdlib pattern that matches what RE2 matches for ``pattern`` and runs in linear
    time, or ``None`` when ``pattern`` is outside the linear subset (it then runs on RE2)."""
    if "[:" in pattern or "{," in pattern:  # a POSIX class for RE2, text or a repeat for Python
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "possible nested set" and the like: RE2 differs
            parsed = _parser.parse(pattern)
    except (re.error, Warning, RecursionError, OverflowError):
        return None
    if parsed.state.flags != _sre.SRE_FLAG_UNICODE:  # an inline flag such as (?i), (?m) or (?s)
        return None
    items: list[Any] = list(parsed.data)
    if not items or items[0] not in (
        (_sre.AT, _sre.AT_BEGINNING),
        (_sre.AT, _sre.AT_BEGINNING_STRING),
    ):
        return None
    out = ["(?a)"]
    variable = False
    tail = 0  # characters matched after the variable quantifier
    for op, arg in items:
        if op is _sre.AT:
            if arg not in _ASSERTIONS:
                return None
            out.append(_ASSERTIONS[arg])
            continue
        low, high, sub = arg if op in _REPEATS else (1, 1, [(op, arg)])
        if len(sub) != 1:
            return None
        char = _character(*sub[0])
        if char is None:
            return None
        if low != high:
            if variable:
                return None
            variable = True
            out.append(f"{char}{{{low},{'' if high is _sre.MAXREPEAT else high}}}")
            if op is _sre.MIN_REPEAT:
                out.append("?")
            continue
        if variable:
            tail += low
            if tail > _MAX_TAIL:
                return None
        out.append(char if low == 1 else f"{char}{{{low}}}")
    return "".join(out)


def _character(op: Any, arg: Any) -> str | None:
    """Return a stdlib class matching the characters RE2 matches for one parsed item, or
    ``None`` for anything that is not a single-character matcher."""
    if op is _sre.LITERAL:
        return _char_class([(arg, arg)])
    if op is _sre.NOT_LITERAL:
        return _char_class(_complement([(arg, arg)]))
    if op is _sre.ANY:  # no DOTALL here (inline flags were refused): anything but \n
        return _char_class(_complement([(0x0A, 0x0A)]))
    if op is not _sre.IN:
        return None
    ranges: _Ranges = []
    negate = False
    for index, (kind, value) in enumerate(arg):
        if kind is _sre.NEGATE and index == 0:
            negate = True
        elif kind is _sre.LITERAL:
            ranges.append((value, value))
        elif kind is _sre.RANGE:
            ranges.append(value)
        elif kind is _sre.CATEGORY and value in _CATEGORIES:
            ranges.extend(_CATEGORIES[value])
        elif kind is _sre.CATEGORY and value in _NEGATED:
            ranges.extend(_complement(_CATEGORIES[_NEGATED[value]]))
        else:
            return None
    return _char_class(_complement(ranges) if negate else ranges)


def _merge(ranges: Iterable[tuple[int, int]]) -> _Ranges:
    merged: _Ranges = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _complement(ranges: Iterable[tuple[int, int]]) -> _Ranges:
    out: _Ranges = []
    start = 0
    for low, high in _merge(ranges):
        if low > start:
            out.append((start, low - 1))
        start = high + 1
    if start <= _LAST:
        out.append((start, _LAST))
    return out


def _char_class(ranges: _Ranges) -> str | None:
    merged = _merge(ranges)
    if not merged:  # matches nothing: no stdlib spelling worth having
        return None
    if len(merged) == 1 and merged[0][0] == merged[0][1]:
        return _spell(merged[0][0])
    parts = [
        _spell(low) if low == high else f"{_spell(low)}-{_spell(high)}" for low, high in merged
    ]
    return f"[{''.join(parts)}]"


def _spell(code: int) -> str:
    """Spell one code point so that it means itself inside and outside a class."""
    char = chr(code)
    if char.isascii() and char.isalnum():
        return char
    return f"\\x{code:02x}" if code < 0x100 else f"\\U{code:08x}"
