"""Linear-time regular expressions for field patterns.

No pattern may make validation backtrack for seconds on a hostile string (``^(a+)+$`` on
``"a" * 40 + "!"``). A pattern in a small subset whose search time is linear on Python's own
backtracking engine (see ``linear_equivalent``) runs on the stdlib ``re``, rewritten so that it
accepts exactly the strings RE2 accepts. Any other pattern is compiled by RE2 (``google-re2``, the
``[re2]`` extra), whose matching time grows linearly with the input; RE2 refuses the few constructs
that need backtracking (lookaround, backreferences). Without ``google-re2`` (a platform with no
wheel of it, such as Alpine) a pattern outside the subset is refused. Either way a refused pattern
fails when the field is declared, with a message saying why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ai_spine_tools.exceptions import ToolDefinitionError

__all__ = ["Pattern", "compile_pattern", "engine", "linear_equivalent"]


class Pattern(Protocol):
    """A compiled pattern as the validators use it: truthy ``search`` result on a match."""

    pattern: str
    engine: str

    def search(self, text: str) -> object | None: ...


def _re2() -> Any:
    """google-re2, imported on the first pattern outside the linear subset; ``None`` where it is
    not installed (no wheel for the platform, such as Alpine's musl)."""
    try:
        import re2
    except ImportError:
        return None
    return re2


def engine() -> str:
    """Say which engines run field patterns in this installation (``ai-spine doctor``)."""
    if _re2() is None:
        return (
            "field patterns: Python's re, linear subset only (google-re2 is not installed; "
            "pip install 'ai-spine-tools[re2]' accepts every RE2 pattern)"
        )
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = f" {version('google-re2')}"
    except PackageNotFoundError:  # pragma: no cover - re2 importable without its metadata
        release = ""
    return f"field patterns: RE2 (google-re2{release}), Python's re for the linear subset"


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

    A pattern of the linear subset runs on the stdlib engine, rewritten to match what RE2
    matches; any other runs on RE2 (imported then), or is refused when google-re2 is not
    installed.
    """
    if not isinstance(pattern, str):
        raise ToolDefinitionError(f"{where} must be a string (got {type(pattern).__name__})")
    equivalent = linear_equivalent(pattern)
    if equivalent is not None:
        return _Linear(pattern, equivalent)
    return _compile_re2(pattern, where=where)


def _compile_re2(pattern: str, *, where: str = "pattern") -> Pattern:
    """Compile ``pattern`` with RE2 alone (the reference the linear subset is tested against)."""
    re2 = _re2()
    if re2 is None:
        raise ToolDefinitionError(
            f"{where} {pattern!r} needs RE2 (google-re2), which is not installed. Without it a "
            "pattern must be anchored at the start (^ or \\A), without groups or alternation, "
            "with at most one variable repetition (*, +, ?, {m,n}) of one character or class, "
            "followed by at most 32 characters. pip install 'ai-spine-tools[re2]' to use any "
            "pattern RE2 runs in linear time."
        )
    options = re2.Options()
    options.log_errors = False  # a refused pattern raises below; RE2 must not also print to stderr
    options.never_capture = True  # validators only ask whether there is a match: no groups
    try:
        compiled = re2.compile(pattern, options)
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
# A pattern qualifies when, read with RE2's syntax by the small parser below, it is:
#   - anchored at the start: its first item is ``^`` or ``\A``;
#   - a flat sequence of items, each one single-character matcher (a literal, an escaped
#     character, ``.``, a class ``[...]``, ``\d``...) or a zero-width assertion (``^``, ``$``,
#     ``\A``, ``\z``, ``\b``): no group of any kind, no alternation, no flags, no backreference,
#     no lookaround;
#   - with quantifiers only on single-character matchers, and at most ONE of them variable
#     (``*``, ``+``, ``?``, ``{m,}``, ``{m,n}`` with m != n, greedy or lazy); ``{n}`` is fixed;
#   - with at most ``_MAX_TAIL`` characters matched after that variable quantifier.
# Anything else, including every spelling the parser does not know, is outside the subset.
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
# but rebuilt from the parsed items with RE2's meaning: ``$`` and ``\z`` become ``\Z`` (Python's
# ``$`` also matches before a final newline); ``\d``, ``\w``, ``\s`` and ``\b`` become RE2's ASCII
# classes (Python's are Unicode); ``.`` becomes ``[^\n]``; every character is spelled as a code
# point. The parser is written here, for RE2's syntax, rather than borrowed from the stdlib (whose
# parser is private and reads Python's syntax).

_MAX_TAIL = 32
_MAX_REPEAT = 1000  # RE2 refuses larger counts
_LAST = 0x10FFFF

_Ranges = list[tuple[int, int]]

_DIGIT: _Ranges = [(0x30, 0x39)]
_SPACE: _Ranges = [(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)]  # RE2's \s: no \v
_WORD: _Ranges = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_PERL = {"d": _DIGIT, "s": _SPACE, "w": _WORD}
_CONTROL = {"a": 0x07, "f": 0x0C, "t": 0x09, "n": 0x0A, "r": 0x0D, "v": 0x0B}
_ASSERTIONS = {"^": r"\A", "$": r"\Z", "A": r"\A", "z": r"\Z", "b": r"\b"}  # not \B: Python's
# never matches in an empty text, RE2's does
_QUANTIFIERS = {"*": (0, None), "+": (1, None), "?": (0, 1)}
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_HEX = re.compile(r"[0-9A-Fa-f]{2}|\{[0-9A-Fa-f]{1,6}\}")
_SURROGATES = range(0xD800, 0xE000)


class _OutsideError(Exception):
    """The pattern is outside the linear subset (or not one the parser knows)."""


def linear_equivalent(pattern: str) -> str | None:
    """Return a stdlib pattern that matches what RE2 matches for ``pattern`` and runs in linear
    time, or ``None`` when ``pattern`` is outside the linear subset."""
    try:
        return _Parser(pattern).equivalent()
    except _OutsideError:
        return None


class _Parser:
    """Reads a pattern of the linear subset in RE2's syntax, raising ``_OutsideError`` otherwise."""

    __slots__ = ("at", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def equivalent(self) -> str:
        if not self.text.startswith(("^", "\\A")):
            raise _OutsideError
        out = ["(?a)"]
        variable = False
        tail = 0  # characters matched after the variable quantifier
        while self.at < len(self.text):
            assertion = self._assertion()
            if assertion is not None:
                out.append(assertion)
                continue
            ranges = self._matcher()
            char = _char_class(ranges)
            if char is None:  # a class matching nothing
                raise _OutsideError
            low, high, lazy = self._quantifier()
            if low != high:
                if variable:
                    raise _OutsideError
                variable = True
                out.append(f"{char}{{{low},{'' if high is None else high}}}{'?' if lazy else ''}")
                continue
            if variable:
                tail += low
                if tail > _MAX_TAIL:
                    raise _OutsideError
            out.append(char if low == 1 else f"{char}{{{low}}}")
        return "".join(out)

    def _peek(self, ahead: int = 0) -> str:
        index = self.at + ahead
        return self.text[index] if index < len(self.text) else ""

    def _assertion(self) -> str | None:
        char = self._peek()
        if char in ("^", "$"):
            self.at += 1
        elif char == "\\" and self._peek(1) in ("A", "z", "b"):
            char = self._peek(1)
            self.at += 2
        else:
            return None
        if self._peek() in ("*", "+", "?", "{"):  # a repeated assertion
            raise _OutsideError
        return _ASSERTIONS[char]

    def _matcher(self) -> _Ranges:
        char = self._peek()
        if char == "[":
            return self._class()
        if char == ".":  # no (?s) here (flags are outside the subset): anything but \n
            self.at += 1
            return _complement([(0x0A, 0x0A)])
        if char == "\\":
            return self._escape()
        if not char or char in "()|*+?{}]":
            raise _OutsideError
        self.at += 1
        return [(self._code(char),) * 2]

    def _escape(self) -> _Ranges:
        letter = self._peek(1)
        self.at += 2
        if letter.lower() in _PERL:
            ranges = _PERL[letter.lower()]
            return _complement(ranges) if letter.isupper() else ranges
        if letter in _CONTROL:
            code = _CONTROL[letter]
        elif letter == "x":
            found = _HEX.match(self.text, self.at)
            if found is None:
                raise _OutsideError
            self.at = found.end()
            code = int(found.group().strip("{}"), 16)
            if code > _LAST or code in _SURROGATES:
                raise _OutsideError
        elif letter and letter.isascii() and not letter.isalnum():
            code = ord(letter)  # an escaped punctuation or space character means itself
        else:  # \p, \Q, \C, \1, \0, \B, \b in a class, and the rest
            raise _OutsideError
        return [(code, code)]

    def _class(self) -> _Ranges:
        self.at += 1
        negate = self._peek() == "^"
        if negate:
            self.at += 1
        ranges: _Ranges = []
        first = True
        while True:
            char = self._peek()
            if not char:
                raise _OutsideError
            if char == "]" and not first:
                self.at += 1
                break
            if char == "[":  # [:alpha:] is a POSIX class to RE2, a nested set to Python
                raise _OutsideError
            if char == "-" and not first and self._peek(1) != "]":
                raise _OutsideError  # a dash that is neither a range nor the last item
            start = self._class_item()
            first = False
            if self._peek() == "-" and self._peek(1) not in ("]", ""):
                self.at += 1
                end = self._class_item()
                if len(start) != 1 or len(end) != 1 or start[0][0] != start[0][1]:
                    raise _OutsideError
                if end[0][0] != end[0][1] or end[0][0] < start[0][0]:
                    raise _OutsideError
                ranges.append((start[0][0], end[0][0]))
            else:
                ranges.extend(start)
        return _complement(ranges) if negate else ranges

    def _class_item(self) -> _Ranges:
        char = self._peek()
        if char == "\\":
            return self._escape()
        self.at += 1
        code = self._code(char)
        return [(code, code)]

    def _quantifier(self) -> tuple[int, int | None, bool]:
        char = self._peek()
        if char in _QUANTIFIERS:
            self.at += 1
            low, high = _QUANTIFIERS[char]
        elif char == "{":
            found = _REPEAT.match(self.text, self.at)
            if found is None:  # a brace RE2 reads as text, which the subset leaves out
                raise _OutsideError
            self.at = found.end()
            low = int(found.group(1))
            high = (
                low if found.group(2) is None else (int(found.group(3)) if found.group(3) else None)
            )
            if low > _MAX_REPEAT or (high is not None and (high > _MAX_REPEAT or high < low)):
                raise _OutsideError
        else:
            return 1, 1, False
        lazy = self._peek() == "?"
        if lazy:
            self.at += 1
        if self._peek() in ("*", "+", "?", "{"):  # a repeated repetition: refused by RE2
            raise _OutsideError
        return low, high, lazy

    @staticmethod
    def _code(char: str) -> int:
        code = ord(char)
        if code in _SURROGATES:
            raise _OutsideError  # RE2 takes UTF-8, which has no lone surrogates
        return code


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
