"""String fields: length, linear-time patterns, formats (email, uri, ...) and transforms."""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import msgspec

from ai_spine_tools.exceptions import ToolDefinitionError, ValidationIssue
from ai_spine_tools.fields._base import Field, Issues, label
from ai_spine_tools.fields._patterns import Pattern, compile_pattern

_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "trim": str.strip,
    "lower": str.lower,
    "upper": str.upper,
    "normalize": lambda text: unicodedata.normalize("NFC", text),
}

# The built-in formats run on the stdlib engine, hand-checked to be linear: the text is at most 254
# (email) or 253 (hostname) characters before the pattern runs, and the only choice points (a
# label's optional tail, the repeat of labels) are delimited by '.' and '@', which no repeated class
# contains, so every alternative but one fails within one 63-character label. ``fullmatch`` ends at
# the end of the text, as RE2's ``$`` does. Measured 0.2 us a call where RE2 took 0.6 us.
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_HOSTNAME = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
# One character class cannot backtrack, so the stdlib engine is safe here; it finds whitespace in
# 0.13 us where a generator over str.isspace took 0.64 us (both use the same Unicode table).
_SPACE = re.compile(r"\s")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")  # as urlsplit reads one, lowercased
# The common absolute URL, after one of the field's schemes and "://": an ASCII host without
# userinfo or brackets, an optional port from 0 to 65535, then anything without whitespace. The host
# class stops at the delimiters that may follow it (':', '/', '?', '#'), so when the match fails the
# host gives characters back one step each, and at most six port spellings end at one place: linear.
_URL_TAIL = (
    r"://[^\x00-\x20\x7f-\U0010ffff/?#@:\[\]]+"
    r"(?::(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
    r"(?:[/?#]\S*)?"
)


def _is_email(text: str) -> bool:
    return len(text) <= 254 and _EMAIL.fullmatch(text) is not None


@functools.lru_cache(maxsize=64)
def _common_url(schemes: tuple[str, ...]) -> Callable[[str], object] | None:
    """Return a test that is truthy only for URLs that ``_is_uri_reference`` accepts, written so
    that most valid URLs pass it; ``None`` when no scheme can be spelled in it.

    Measured on https://example.com/ada: 0.2 us a call, where urlsplit with its port and hostname
    takes 0.8 us when urlsplit's cache holds the URL and 2.9 us when it does not.
    """
    names = sorted((name for name in schemes if _SCHEME.fullmatch(name)), key=len, reverse=True)
    if not names:
        return None
    spelled = (
        "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in name)
        for name in names
    )  # letter by letter: (?i) would also let U+017F (long s) stand for "s"; urlsplit would not
    return re.compile(f"(?:{'|'.join(spelled)}){_URL_TAIL}").fullmatch


def _scheme_pattern(schemes: Sequence[str]) -> str:
    """A JSON Schema (ECMA-262) pattern for URLs starting with one of ``schemes``, any case."""
    spelled = (
        "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in scheme)
        for scheme in schemes
    )
    return "^(?:" + "|".join(spelled) + "):"


def _is_uri(text: str, schemes: Sequence[str] = ("http", "https")) -> bool:
    fast = _common_url(tuple(schemes))
    return (fast is not None and fast(text) is not None) or _is_uri_reference(text, schemes)


def _is_uri_reference(text: str, schemes: Sequence[str] = ("http", "https")) -> bool:
    """The definition of a valid URL: no whitespace, and urlsplit finds an allowed scheme, a host
    and a port in range."""
    if _SPACE.search(text) is not None:
        return False
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return False
    return parts.scheme.lower() in schemes and bool(parts.hostname)


def _parses(kind: type) -> Callable[[str], bool]:
    def valid(text: str) -> bool:
        try:
            msgspec.convert(text, kind)
        except msgspec.ValidationError:
            return False
        return True

    return valid


def _is_ip(version: int) -> Callable[[str], bool]:
    import ipaddress

    def valid(text: str) -> bool:
        try:
            return ipaddress.ip_address(text).version == version
        except ValueError:
            return False

    return valid


_FORMATS: dict[str, Callable[[str], bool]] = {
    "email": _is_email,
    "uri": _is_uri,
    "url": _is_uri,
    "uuid": _parses(uuid.UUID),
    "date": _parses(dt.date),
    "date-time": _parses(dt.datetime),
    "time": _parses(dt.time),
    "hostname": lambda text: len(text) <= 253 and _HOSTNAME.fullmatch(text) is not None,
    "ipv4": _is_ip(4),
    "ipv6": _is_ip(6),
}

Transform = Literal["trim", "lower", "upper", "normalize"]


@dataclass(frozen=True, kw_only=True, repr=False)
class StringField(Field):
    """A string with optional length bounds, an RE2 pattern, a format and transforms.

    Transforms (``trim``, ``lower``, ``upper``, ``normalize`` to Unicode NFC) apply in the order
    given, before the length, pattern and format checks. Length is always checked before the
    pattern, so a pattern never runs on an over-long string.
    """

    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    format: str | None = None
    transform: Transform | Sequence[Transform] | None = None
    schemes: Sequence[str] = ("http", "https")

    kind: ClassVar[str] = "string"
    _regex: Pattern | None = field(default=None, init=False, compare=False)
    _transforms: tuple[Callable[[str], str], ...] = field(default=(), init=False, compare=False)
    _format_ok: Callable[[str], bool] = field(default=bool, init=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("min_length", "max_length"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise ToolDefinitionError(f"{name} must be a non-negative integer (got {value!r})")
        if (
            self.min_length is not None
            and self.max_length is not None
            and self.min_length > self.max_length
        ):
            raise ToolDefinitionError(
                f"min_length ({self.min_length}) is greater than max_length ({self.max_length})"
            )
        if self.pattern is not None:
            object.__setattr__(self, "_regex", compile_pattern(self.pattern))
        if self.format is not None and self.format not in _FORMATS:
            raise ToolDefinitionError(
                f"unknown format {self.format!r}; known formats: {', '.join(sorted(_FORMATS))}"
            )
        names = [self.transform] if isinstance(self.transform, str) else list(self.transform or ())
        for name in names:
            if name not in _TRANSFORMS:
                raise ToolDefinitionError(
                    f"unknown transform {name!r}; known transforms: {', '.join(_TRANSFORMS)}"
                )
        if isinstance(self.schemes, str) or not all(
            isinstance(scheme, str) and _SCHEME.fullmatch(scheme.lower()) for scheme in self.schemes
        ):
            raise ToolDefinitionError(
                f"schemes must be a list of URL schemes such as ['https'] (got {self.schemes!r})"
            )
        if not self.schemes:
            raise ToolDefinitionError("schemes must name at least one URL scheme")
        schemes = tuple(scheme.lower() for scheme in self.schemes)
        object.__setattr__(self, "schemes", schemes)
        object.__setattr__(self, "_transforms", tuple(_TRANSFORMS[name] for name in names))
        if self.format in ("uri", "url"):
            object.__setattr__(self, "_format_ok", functools.partial(_is_uri, schemes=schemes))
        elif self.format is not None:
            object.__setattr__(self, "_format_ok", _FORMATS[self.format])
        Field.__post_init__(self)

    def native(self) -> Any:
        if self._transforms or (self.min_length is None and self.max_length is None):
            return str
        return Annotated[str, msgspec.Meta(min_length=self.min_length, max_length=self.max_length)]

    @property
    def needs_post(self) -> bool:
        return bool(self._transforms) or self._regex is not None or self.format is not None

    def fast_check(self) -> Callable[[Any], object] | None:
        if self._transforms:  # post transforms the value: it always runs
            return None
        checks: list[Callable[[str], object] | None] = []
        if self._regex is not None:
            checks.append(self._regex.search)
        if self.format in ("uri", "url"):
            # a URL of the uncommon shapes fails the fast test and goes to the full one in post
            checks.append(_common_url(self.schemes))
        elif self.format == "email" and self.max_length is not None and self.max_length <= 254:
            checks.append(_EMAIL.fullmatch)  # msgspec checked the length already
        elif self.format is not None:
            checks.append(self._format_ok)
        if len(checks) != 2:
            return checks[0] if checks else None
        first, second = checks
        if first is None or second is None:
            return None
        return lambda value: first(value) and second(value)

    def check(self, value: Any, path: str, issues: Issues) -> Any:
        if not isinstance(value, str):
            self._type_issue(value, path, issues, "a string")
            return value
        for transform in self._transforms:
            value = transform(value)
        size = len(value)
        if self.min_length is not None and size < self.min_length:
            issues.append(
                ValidationIssue(
                    path,
                    "too_short",
                    f"{label(path)} must be at least {self.min_length} characters (got {size})",
                )
            )
            return value
        if self.max_length is not None and size > self.max_length:
            issues.append(
                ValidationIssue(
                    path,
                    "too_long",
                    f"{label(path)} must be at most {self.max_length} characters (got {size})",
                )
            )
            return value
        self._check_text(value, path, issues)
        return value

    def post(self, value: Any, path: str, issues: Issues) -> Any:
        if self._transforms:  # lengths count after transforms, so msgspec could not check them
            return self.check(value, path, issues)
        self._check_text(value, path, issues)
        return value

    def _check_text(self, value: str, path: str, issues: Issues) -> None:
        if self._regex is not None and self._regex.search(value) is None:
            issues.append(
                ValidationIssue(
                    path,
                    "pattern",
                    f"{label(path)} must match pattern "
                    f"{self._regex.pattern!r}{self._value_text(value)}",
                )
            )
        elif self.format is not None and not self._format_ok(value):
            issues.append(
                ValidationIssue(
                    path,
                    "format",
                    f"{label(path)} must be a valid {self.format}{self._value_text(value)}",
                )
            )

    def base_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.min_length is not None:
            schema["minLength"] = self.min_length
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.pattern is not None:
            schema["pattern"] = self.pattern
        if self.format is not None:
            schema["format"] = "uri" if self.format == "url" else self.format
            if schema["format"] == "uri" and self.pattern is None:
                schema["pattern"] = _scheme_pattern(self.schemes)  # "uri" allows any scheme
        return schema

    def generate(self) -> Any:
        samples = {
            "email": "user@example.com",
            "uuid": "00000000-0000-4000-8000-000000000000",
            "date": "2024-01-31",
            "date-time": "2024-01-31T12:00:00Z",
            "time": "12:00:00",
            "hostname": "example.com",
            "ipv4": "192.0.2.1",
            "ipv6": "2001:db8::1",
        }
        if self.format in ("uri", "url"):
            return f"{self.schemes[0]}://example.com/"
        if self.format is not None:
            return samples[self.format]
        if self.pattern is not None:
            return None  # no general way to invent a match; declare example= for such fields
        size = max(self.min_length or 0, min(self.max_length or 7, 7))
        return ("example" * (size // 7 + 1))[:size]


@dataclass(frozen=True, kw_only=True, repr=False)
class EmailField(StringField):
    """An email address (``local@domain.tld``, at most 254 characters)."""

    builder: ClassVar[str] = "email_field"

    max_length: int | None = 254
    format: str | None = "email"


@dataclass(frozen=True, kw_only=True, repr=False)
class URLField(StringField):
    """An absolute URL whose scheme is one of ``schemes`` (http and https by default)."""

    builder: ClassVar[str] = "url_field"

    max_length: int | None = 2048
    format: str | None = "uri"


@dataclass(frozen=True, kw_only=True, repr=False)
class SecretField(StringField):
    """A secret string (API key, password, token): never echoed in errors, logs or ``repr``."""

    builder: ClassVar[str] = "secret_field"

    sensitive: bool = True
