"""Bounds on the shape of a JSON request body: nesting depth and the number of items.

msgspec decodes the open parts of a body (``config``, ``metadata``, JSON fields and other fields
without a fixed shape) into Python objects, and a 10 MB body of ``[{},{},...]`` becomes three
million dicts (about 200 MB). Deep nesting turns every recursive walk of such a value, in the SDK
or in tool code, into a risk. So a body is refused when it nests deeper than ``max_depth`` (400
``INVALID_JSON``) or holds more than ``max_items`` array items and object members (413).

Both checks stay off the common path:

- Items: a body of ``n`` bytes holds fewer than ``n`` items, so only bodies over ``max_items``
  bytes are counted. Counting is C loops of ``bytes`` methods, never a Python loop per byte: the
  strings are cut out (escapes first, then every other ``"``-separated piece) and the brackets and
  commas that remain are counted. That pass measures the depth exactly as well.
- Depth, for shorter bodies: the typed parts of the input cannot nest deeper than the schema
  (msgspec decodes them into fixed types), so only a body with an open part is looked at: one
  with ``config`` or ``metadata``, or any body when the input schema has an open field. Then a
  body with no more than ``max_depth`` brackets passes; only one with more is measured exactly.
  The usual request, without open parts, costs one test; counting the brackets of every body
  cost 0.5 µs on a 600-byte request (``bytes.count`` reads a byte at a time), and walking the
  decoded values in Python twice that.
"""

from __future__ import annotations

from collections.abc import Mapping

from ai_spine_tools.exceptions import InvalidJSONError, PayloadTooLargeError
from ai_spine_tools.fields import ArrayField, Field, JSONField, ObjectField

__all__ = ["DEFAULT_MAX_DEPTH", "DEFAULT_MAX_ITEMS", "JSONLimits", "has_open_fields", "json_shape"]

DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_ITEMS = 100_000

_WHITESPACE = b" \t\r\n"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")


class JSONLimits:
    """Refuses a JSON body nested deeper than ``max_depth`` or holding over ``max_items`` items.

    ``scan(body)`` measures a whole body (call it when ``len(body) > scan_above``);
    ``check_depth(body)`` only its depth (for a shorter body with open parts). They raise
    ``InvalidJSONError`` for depth and ``PayloadTooLargeError`` for items. The body's own object
    is the first level.
    """

    __slots__ = ("max_depth", "max_items", "scan_above")

    def __init__(
        self, *, max_depth: int = DEFAULT_MAX_DEPTH, max_items: int = DEFAULT_MAX_ITEMS
    ) -> None:
        if max_depth < 2 or max_items < 1:
            raise ValueError("max_depth must be at least 2 and max_items at least 1")
        self.max_depth = max_depth
        self.max_items = max_items
        self.scan_above = max_items  # n bytes hold fewer than n items

    def scan(self, body: bytes) -> None:
        """Count the depth and items of a whole body; raise when either is over its bound."""
        depth, items = json_shape(body, stop_at_depth=self.max_depth + 1)
        if depth > self.max_depth:
            raise self.too_deep()
        if items > self.max_items:
            raise PayloadTooLargeError(
                f"Request body holds more than {self.max_items} array items and object members",
                details={"max_json_items": self.max_items},
            )

    def check_depth(self, body: bytes) -> None:
        """Raise when ``body`` nests past ``max_depth``."""
        if len(body) <= 2 * self.max_depth:  # too short to nest that deep
            return
        if body.count(b"[") + body.count(b"{") <= self.max_depth:
            return  # strings may hold brackets too: this bound is safe, not exact
        if json_shape(body, stop_at_depth=self.max_depth + 1)[0] > self.max_depth:
            raise self.too_deep()

    def too_deep(self) -> InvalidJSONError:
        """The error for a body nested past ``max_depth``."""
        return InvalidJSONError(
            f"Request body is nested too deeply (more than {self.max_depth} levels)",
            details={"max_json_depth": self.max_depth},
        )


def has_open_fields(fields: Mapping[str, Field]) -> bool:
    """True when a value of some field may nest to any depth (its shape is not fixed)."""
    return any(_open(field) for field in fields.values())


def _open(field: Field) -> bool:
    if isinstance(field, JSONField):
        return True
    if isinstance(field, ObjectField):
        return field.properties is None or has_open_fields(field.properties)
    if isinstance(field, ArrayField):
        return field.items is None or _open(field.items)
    return False


def json_shape(body: bytes, *, stop_at_depth: int | None = None) -> tuple[int, int]:
    """Return the nesting depth and the number of items (array items plus object members).

    Exact for well-formed JSON; for malformed JSON the numbers are what the brackets and commas
    outside strings say. With ``stop_at_depth``, depth counting stops once it reaches that value.
    """
    # Escapes are always a backslash and one character: drop escaped backslashes first, then
    # escaped quotes, and every remaining quote opens or closes a string. Each string becomes
    # a 0, so that ["a"] still holds an item.
    text = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    if b'"' in text:
        text = b"0".join(text.split(b'"')[::2])
    compact = text.translate(None, _WHITESPACE)
    opened = compact.count(b"[") + compact.count(b"{")
    empty = compact.count(b"[]") + compact.count(b"{}")
    items = compact.count(b",") + opened - empty

    brackets = compact.translate(_SQUARE, _NOT_BRACKETS)
    depth = 0
    limit = len(brackets) if stop_at_depth is None else stop_at_depth
    # With one kind of bracket, each pass removes exactly the innermost level of every nest.
    while brackets and depth < limit:
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):  # unbalanced: what is left cannot pair up
            break
        brackets = shorter
        depth += 1
    if brackets and depth < limit:  # unbalanced leftovers: add the longest run of openers
        depth = min(limit, depth + max(len(run) for run in brackets.split(b"]")))
    return depth, items
