"""``RawBodies``: the request bodies seen before, and the result keys they led to."""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["RawBodies"]


class RawBodies:
    """Remembers which cache key a small request body led to, so the same bytes can be answered
    from the cache without being decoded, validated and hashed again.

    Identical bytes always validate alike against a tool's schema, so skipping validation for
    them is safe. The entry is only a pointer: whether a result is still there, and fresh, is
    asked of the cache each time (of memory, or of Redis when results are not kept in memory).
    A memory hit this way costs about 2 µs against 8 µs through decoding, validation and key
    hashing.
    """

    max_entries = 4096
    max_body = 2048

    def __init__(self) -> None:
        self._keys: OrderedDict[bytes, tuple[str, str | None]] = OrderedDict()

    def remember(self, body: bytes, key: str, execution_id: str | None) -> None:
        """Note that ``body`` (sent with ``execution_id``, if it named one) maps to ``key``."""
        if len(body) > self.max_body:
            return
        self._keys[body] = (key, execution_id)
        self._keys.move_to_end(body)
        if len(self._keys) > self.max_entries:
            self._keys.popitem(last=False)

    def lookup(self, body: bytes) -> tuple[str, str | None] | None:
        """Return the key and execution id remembered for ``body``."""
        if len(body) > self.max_body:
            return None  # never remembered, and not worth hashing
        return self._keys.get(body)

    def clear(self) -> None:
        """Forget every body."""
        self._keys.clear()

    def forget(self, body: bytes) -> None:
        """Drop ``body`` (its result is gone)."""
        self._keys.pop(body, None)
