"""Who may call: API keys (from the environment or a file, several at once) and signed requests.

API keys are kept only as SHA-256 digests. A presented key is hashed and compared with every stored
digest in constant time, so the time taken depends neither on which key matched nor on how much of
a wrong key was right. A key file (``AI_SPINE_API_KEYS_FILE``) is read again when it changes, so
keys are added and revoked without a restart.

A signed request proves knowledge of a shared secret without sending it::

    X-Signature-Timestamp: 1767225600
    X-Signature: v1=<hex HMAC-SHA256(secret, "1767225600.POST./api/execute." + body)>

The timestamp must be within ``tolerance_s`` of the server's clock and a signature is accepted once:
a captured request cannot be replayed. With Redis, once across every instance and worker
(``SharedReplays``). ``sign_request`` computes the headers.

Callers are named by a key id (``key_`` or ``sig_`` and 12 hex digits) derived from the key with a
slow hash, so ids are safe in logs and metrics: one cannot be turned back into its key, nor used to
test guesses of a weak key quickly.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ai_spine_tools.cache._outage import Throttle
from ai_spine_tools.exceptions import AuthenticationError, ServerConfigurationError

if TYPE_CHECKING:
    from ai_spine_tools.cache import RedisCache

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "APIKeyAuth",
    "SharedReplays",
    "SignatureAuth",
    "key_id",
    "read_key_file",
    "sign_request",
]

logger = logging.getLogger("ai_spine_tools.auth")

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
_SIGNATURE = SIGNATURE_HEADER.lower().encode()
_TIMESTAMP = TIMESTAMP_HEADER.lower().encode()
_ID_SALT = b"ai-spine-tools key id"
_ID_ROUNDS = 20_000  # about 10 ms per key, once, when keys are loaded
_WEAK_KEY_LENGTH = 16
_MAX_REMEMBERED = 100_000


def key_id(secret: str | bytes, *, prefix: str = "key_") -> str:
    """Return the id under which a key or signing secret appears in logs and metrics."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return prefix + hashlib.pbkdf2_hmac("sha256", raw, _ID_SALT, _ID_ROUNDS)[:6].hex()


def read_key_file(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Return the keys in a key file: one per line; blank lines and ``#`` comments are skipped.

    A comment starts with ``#`` at the start of a line or after whitespace, so a key may contain
    ``#``. Raise ``OSError`` when the file cannot be read.
    """
    keys = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key = text.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if key:
            keys.append(key)
    return tuple(keys)


class _Reloader:
    """Re-reads a key file when its size, inode or modification time changes (checked at most
    once per ``interval`` seconds, on use)."""

    __slots__ = ("_clock", "_interval", "_next", "_stamp", "path", "variable")

    def __init__(
        self, path: str, variable: str, *, interval: float, clock: Callable[[], float]
    ) -> None:
        self.path = path
        self.variable = variable
        self._interval = interval
        self._clock = clock
        self._next = clock() + interval
        self._stamp: tuple[int, int, int] | None = None

    def first_read(self) -> tuple[str, ...]:
        """Read the file at start-up; raise ``ServerConfigurationError`` naming the variable."""
        try:
            self._stamp = self._stat()
            return read_key_file(self.path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ServerConfigurationError(
                f"{self.variable} names a file that cannot be read: {self.path} "
                f"({type(exc).__name__})",
                details={"variable": self.variable},
            ) from None

    def changed(self) -> tuple[str, ...] | None:
        """Return the file's keys when it changed since the last read, else ``None``.

        A file that is gone or unreadable holds no keys: the server fails closed.
        """
        now = self._clock()
        if now < self._next:
            return None
        self._next = now + self._interval
        try:
            stamp = self._stat()
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        if stamp is None:
            logger.error("%s %s is gone: its keys are revoked", self.variable, self.path)
            return ()
        try:
            return read_key_file(self.path)
        except (OSError, UnicodeDecodeError) as exc:
            logger.error(
                "%s %s cannot be read (%s): its keys are revoked",
                self.variable,
                self.path,
                type(exc).__name__,
            )
            return ()

    def _stat(self) -> tuple[int, int, int]:
        info = os.stat(self.path)
        return (info.st_mtime_ns, info.st_size, info.st_ino)


def _entries(keys: Iterable[str], prefix: str, known: Mapping[str, str]) -> dict[str, str]:
    """Map each key to its id, reusing ids already derived (the derivation is slow on purpose)."""
    out = {}
    for key in keys:
        out[key] = known.get(key) or key_id(key, prefix=prefix)
        if key not in known and len(key) < _WEAK_KEY_LENGTH:
            logger.warning(
                "%s is shorter than %d characters: use long random keys",
                out[key],
                _WEAK_KEY_LENGTH,
            )
    return out


class APIKeyAuth:
    """Accepts a request whose ``X-API-Key`` or ``Authorization: Bearer`` is one of the keys.

    Keys come from ``keys`` and from ``key_file`` (re-read when it changes, at most once per
    ``reload_interval`` seconds). Only digests of the keys are kept for comparison. Every stored
    digest is compared on every check, so the time taken does not depend on which key matched or
    on how much of a wrong key was right.
    """

    __slots__ = ("_digests", "_ids", "_reloader", "_static")

    def __init__(
        self,
        keys: Iterable[str] = (),
        *,
        key_file: str | None = None,
        reload_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._static = tuple(dict.fromkeys(key for key in keys if key))
        self._reloader = (
            None
            if key_file is None
            else _Reloader(
                key_file, "AI_SPINE_API_KEYS_FILE", interval=reload_interval, clock=clock
            )
        )
        self._ids: dict[str, str] = {}
        self._digests: tuple[tuple[bytes, str], ...] = ()
        self._load(self._reloader.first_read() if self._reloader is not None else ())
        if not self._digests:
            raise ServerConfigurationError(
                "API-key authentication needs at least one key "
                "(AI_SPINE_API_KEYS or a line in AI_SPINE_API_KEYS_FILE)",
                details={"variable": "AI_SPINE_API_KEYS"},
            )

    def _load(self, file_keys: Iterable[str]) -> None:
        every = tuple(dict.fromkeys((*self._static, *file_keys)))
        self._ids = _entries(every, "key_", self._ids)
        self._digests = tuple(
            (hashlib.sha256(key.encode()).digest(), self._ids[key]) for key in every
        )

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of the keys accepted now."""
        self._refresh()
        return tuple(entry for _, entry in self._digests)

    def _refresh(self) -> None:
        if self._reloader is not None:
            changed = self._reloader.changed()
            if changed is not None:
                before = {entry for _, entry in self._digests}
                self._load(changed)
                after = {entry for _, entry in self._digests}
                logger.info(
                    "API keys reloaded from %s: %d active, added %s, revoked %s",
                    self._reloader.path,
                    len(after),
                    sorted(after - before) or "none",
                    sorted(before - after) or "none",
                )

    def identify(self, api_key: bytes | None, authorization: bytes | None) -> str | None:
        """Return the key id of a valid key, else ``None``.

        The key comes from ``X-API-Key``, ``Authorization: Bearer KEY``, or ``Authorization:
        Basic`` with the key as the password (any user name): what a browser can send.
        """
        if self._reloader is not None:
            self._refresh()
        presented = api_key
        if presented is None and authorization is not None:
            scheme, _, token = authorization.partition(b" ")
            if scheme.lower() == b"bearer":
                presented = token.strip()
            elif scheme.lower() == b"basic":
                presented = _basic_password(token.strip())
        if not presented:
            return None
        digest = hashlib.sha256(presented).digest()
        matched = None
        for stored, entry in self._digests:
            if hmac.compare_digest(stored, digest):
                matched = entry
        return matched


def _basic_password(token: bytes) -> bytes | None:
    """The password of an HTTP Basic credential (``base64(user:password)``), if well formed."""
    try:
        decoded = binascii.a2b_base64(token, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    _, colon, password = decoded.partition(b":")
    return password if colon else None


def signature_base(timestamp: str | bytes, method: str, path: str, body: bytes) -> bytes:
    """Return the bytes a request signature covers: ``"{timestamp}.{METHOD}.{path}." + body``."""
    stamp = timestamp.decode("ascii") if isinstance(timestamp, bytes) else timestamp
    return f"{stamp}.{method.upper()}.{path}.".encode() + body


def sign_request(
    secret: str | bytes,
    body: bytes = b"",
    *,
    method: str = "POST",
    path: str = "/api/execute",
    timestamp: int | None = None,
) -> dict[str, str]:
    """Return the ``X-Signature-Timestamp`` and ``X-Signature`` headers for one request.

    ``path`` is the route without query or trailing slash (``/api/execute``, ``/metrics``), and
    ``body`` exactly the bytes sent. ``timestamp`` defaults to now (Unix seconds).
    """
    key = secret.encode() if isinstance(secret, str) else secret
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(key, signature_base(stamp, method, path, body), hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: f"v1={digest}"}


class SignatureAuth:
    """Verifies HMAC-SHA256 request signatures made with any of several shared secrets.

    Every secret is tried on every check (in constant time), so rotating is adding the new secret,
    moving callers to it, then removing the old one. A signature is accepted once within the
    ``tolerance_s`` window (remembered for that long, at most ``_MAX_REMEMBERED`` at a time in
    each process).
    """

    __slots__ = ("_clock", "_reloader", "_secrets", "_seen", "_static", "tolerance_s")

    def __init__(
        self,
        secrets: Iterable[str] = (),
        *,
        secrets_file: str | None = None,
        tolerance_s: int = 300,
        reload_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._static = tuple(dict.fromkeys(secret for secret in secrets if secret))
        self._clock = clock
        self.tolerance_s = tolerance_s
        self._reloader = (
            None
            if secrets_file is None
            else _Reloader(
                secrets_file,
                "AI_SPINE_SIGNING_SECRETS_FILE",
                interval=reload_interval,
                clock=time.monotonic,
            )
        )
        self._secrets: tuple[tuple[bytes, str], ...] = ()
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._load(self._reloader.first_read() if self._reloader is not None else ())
        if not self._secrets:
            raise ServerConfigurationError(
                "Request signing needs at least one secret "
                "(AI_SPINE_SIGNING_SECRETS or a line in AI_SPINE_SIGNING_SECRETS_FILE)",
                details={"variable": "AI_SPINE_SIGNING_SECRETS"},
            )

    def _load(self, file_secrets: Iterable[str]) -> None:
        every = tuple(dict.fromkeys((*self._static, *file_secrets)))
        known = {secret.decode(): entry for secret, entry in self._secrets}
        ids = _entries(every, "sig_", known)
        self._secrets = tuple((secret.encode(), ids[secret]) for secret in every)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of the signing secrets accepted now."""
        self._refresh()
        return tuple(entry for _, entry in self._secrets)

    def _refresh(self) -> None:
        if self._reloader is not None:
            changed = self._reloader.changed()
            if changed is not None:
                self._load(changed)
                logger.info(
                    "signing secrets reloaded from %s: %d active",
                    self._reloader.path,
                    len(self._secrets),
                )

    def check_timestamp(self, timestamp: bytes | None) -> None:
        """Refuse a missing, malformed or stale timestamp before the body is read."""
        if timestamp is None or not timestamp.isdigit() or len(timestamp) > 12:
            raise AuthenticationError(
                f"{TIMESTAMP_HEADER} must be the Unix time in seconds when the request was signed"
            )
        skew = abs(self._clock() - int(timestamp))
        if skew > self.tolerance_s:
            raise AuthenticationError(
                f"{TIMESTAMP_HEADER} is outside the accepted window of {self.tolerance_s} s: "
                "check the caller's clock and sign each request when it is sent",
                details={"tolerance_s": self.tolerance_s},
            )

    def verify(
        self, timestamp: bytes | None, signature: bytes | None, method: str, path: str, body: bytes
    ) -> str:
        """Return the id of the secret that signed the request; raise ``AuthenticationError``."""
        self._refresh()
        self.check_timestamp(timestamp)
        assert timestamp is not None  # checked just above
        presented = _parse_signature(signature)
        base = signature_base(timestamp, method, path, body)
        matched = None
        for secret, entry in self._secrets:
            expected = hmac.new(secret, base, hashlib.sha256).digest()
            if hmac.compare_digest(expected, presented):
                matched = entry
        if matched is None:
            raise AuthenticationError(
                f"{SIGNATURE_HEADER} does not match: sign "
                '"{timestamp}.{METHOD}.{path}." followed by the exact body, with HMAC-SHA256'
            )
        self._remember(presented)
        return matched

    def _remember(self, signature: bytes) -> None:
        now = self._clock()
        seen = self._seen
        expiry = seen.get(signature)
        if expiry is not None and expiry > now:
            raise _replayed()
        while seen:  # forget the expired (oldest first), and the oldest when full
            oldest = next(iter(seen))
            if seen[oldest] > now and len(seen) < _MAX_REMEMBERED:
                break
            seen.popitem(last=False)
        # Remembered while its timestamp can still pass: arrival + 2 * tolerance covers that.
        seen[signature] = now + 2 * self.tolerance_s


class SharedReplays:
    """The signatures accepted by any instance or worker, in Redis, so that a signed request is
    accepted once across all of them, not once by each.

    Each process still refuses the replays it saw itself (``SignatureAuth``) before asking Redis.
    While Redis fails the request is let through on that local check alone: the failure is
    logged (once a minute) and counted in ``errors``, and the next request asks Redis again.
    """

    __slots__ = ("_redis", "_ttl", "_warning", "errors")

    def __init__(self, redis: RedisCache, tolerance_s: int) -> None:
        self._redis = redis
        self._ttl = 2.0 * tolerance_s  # as long as SignatureAuth remembers a signature
        self._warning = Throttle(60.0)
        self.errors = 0

    async def claim(self, signature: bytes | None) -> None:
        """Record a verified signature; raise ``AuthenticationError`` if any instance has."""
        from ai_spine_tools.cache import CacheError

        digest = _parse_signature(signature).hex()
        try:
            fresh = await self._redis.add("signatures:" + digest, 1, self._ttl)
        except CacheError as exc:
            self.errors += 1
            if self._warning.due():
                logger.warning("signed requests are checked for replays locally only: %s", exc)
            return
        if not fresh:
            raise _replayed()


def _replayed() -> AuthenticationError:
    return AuthenticationError(
        "This signed request was already received: sign each request anew "
        "(identical bodies sent within one second need distinct execution_ids)"
    )


def _parse_signature(header: bytes | None) -> bytes:
    if header is not None:
        for part in header.split(b","):
            version, _, value = part.strip().partition(b"=")
            if version == b"v1" and len(value) == 64:
                try:
                    return bytes.fromhex(value.decode("ascii"))
                except ValueError:
                    break
    raise AuthenticationError(f"{SIGNATURE_HEADER} must be 'v1=' and 64 hex digits")


def signature_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes | None, bytes | None]:
    """Return the timestamp and signature header values of an ASGI header list."""
    timestamp = signature = None
    for name, value in headers:
        if name == _TIMESTAMP:
            timestamp = value
        elif name == _SIGNATURE:
            signature = value
    return timestamp, signature
