"""API-key authentication: keys kept as SHA-256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

__all__ = ["APIKeyAuth"]


class APIKeyAuth:
    """Accepts a request whose ``X-API-Key`` or ``Authorization: Bearer`` is one of the keys.

    Only digests of the keys are kept. Every stored digest is compared on every check, so the time
    taken does not depend on which key matched or on how much of a wrong key was right.
    """

    __slots__ = ("_digests",)

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(hashlib.sha256(key.encode()).digest() for key in keys if key)
        if not self._digests:
            raise ValueError("APIKeyAuth needs at least one non-empty key")

    def identify(self, api_key: bytes | None, authorization: bytes | None) -> str | None:
        """Return a key id (a digest prefix, safe to log) for a valid key, else ``None``."""
        presented = api_key
        if presented is None and authorization is not None:
            scheme, _, token = authorization.partition(b" ")
            if scheme.lower() == b"bearer":
                presented = token.strip()
        if not presented:
            return None
        digest = hashlib.sha256(presented).digest()
        matched = None
        for stored in self._digests:
            if hmac.compare_digest(stored, digest):
                matched = stored
        return None if matched is None else "key_" + matched[:6].hex()
