"""The steps that admit a request before it is executed, each an object that owns its state:
``Admission`` (the execution slots and the queue for one), ``AuthGate`` (API keys, request
signatures, who called), ``RateGate`` (the rate limits), and the content-type check."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from ai_spine_tools.exceptions import (
    AuthenticationError,
    OverloadedError,
    RateLimitError,
    ToolError,
    UnsupportedContentTypeError,
)
from ai_spine_tools.observability import _dashboard
from ai_spine_tools.security._auth import (
    APIKeyAuth,
    SharedReplays,
    SignatureAuth,
    signature_headers,
)
from ai_spine_tools.server._wire import _JSON, Request, _clip

if TYPE_CHECKING:
    from ai_spine_tools._settings import ServerSettings
    from ai_spine_tools.cache import RedisCache
    from ai_spine_tools.security._ratelimit import RateLimiter

__all__ = ["Admission", "AuthGate", "RateGate", "check_content_type", "check_origin"]

logger = logging.getLogger("ai_spine_tools.server")


class Admission:
    """How many executions run at once: up to ``limit``, then a bounded queue of waiters, each
    handed the slot of a finishing execution; past the queue (or its wait), a refusal.

    Taking a slot is one comparison under the limit (``in_flight < limit``, then ``+= 1``, done
    by the caller inline on the hot path); giving it back is ``in_flight -= 1`` when ``queue``
    (the waiters, read-only to others) is empty, else ``leave``.
    """

    __slots__ = ("in_flight", "limit", "queue", "queue_size", "queue_timeout_s", "rejected")

    def __init__(self, *, limit: int, queue_size: int, queue_timeout_ms: int) -> None:
        self.in_flight = 0
        self.limit = limit
        self.queue_size = queue_size
        self.queue_timeout_s = queue_timeout_ms / 1000.0
        self.rejected = 0  # executions refused with 503 OVERLOADED
        self.queue: deque[asyncio.Future[None]] = deque()

    async def wait(self) -> bool:
        """Wait (``queue_timeout`` at most, behind at most ``queue_size`` others) for a
        finishing execution to hand over its slot; False when the queue is full or time is up."""
        if len(self.queue) >= self.queue_size or self.queue_timeout_s <= 0:
            return False
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.append(slot)
        try:
            async with asyncio.timeout(self.queue_timeout_s):
                await slot
        except TimeoutError:
            pass
        except BaseException:
            if slot.done() and not slot.cancelled():
                self.leave()  # it was handed over just as we were cancelled
            raise
        finally:
            with contextlib.suppress(ValueError):
                self.queue.remove(slot)
        return slot.done() and not slot.cancelled()

    def leave(self) -> None:
        """Give a slot back: to the longest waiter (``in_flight`` stays), else free it."""
        waiters = self.queue
        while waiters:
            slot = waiters.popleft()
            if not slot.done():
                slot.set_result(None)
                return
        self.in_flight -= 1

    def refuse(self) -> OverloadedError:
        """Count a refused execution and return the error it gets."""
        self.rejected += 1
        return OverloadedError(
            f"The server is already running its limit of {self.limit} executions; retry shortly",
            retry_after_ms=1000,
            details={"max_concurrent_executions": self.limit, "queue_size": self.queue_size},
        )

    def figures(self) -> dict[str, Any]:
        """Executions running and waiting against the limit, and how many were refused."""
        return {
            "in_flight": self.in_flight,
            "limit": self.limit,
            "queued": len(self.queue),
            "queue_size": self.queue_size,
            "rejected": self.rejected,
        }


class AuthGate:
    """Who may call: a valid API key, or a signed request; and who did (by key id, never by key).

    A signed request has its timestamp checked in ``authenticate`` (a POST's before its body is
    read) and its signature in ``verify_signature``: a POST's once its body is in, any other's
    right after ``authenticate``.
    """

    def __init__(self, settings: ServerSettings, redis: RedisCache | None) -> None:
        self.keys = (
            APIKeyAuth(settings.api_keys, key_file=settings.api_keys_file)
            if settings.api_keys or settings.api_keys_file
            else None
        )
        self.signatures = (
            SignatureAuth(
                settings.signing_secrets,
                secrets_file=settings.signing_secrets_file,
                tolerance_s=settings.signature_tolerance_s,
            )
            if settings.signing_secrets or settings.signing_secrets_file
            else None
        )
        self.on = self.keys is not None or self.signatures is not None
        self.replays = (
            SharedReplays(redis, settings.signature_tolerance_s)
            if self.signatures is not None and redis is not None
            else None
        )
        self.rejected = 0  # requests refused with 401
        self.requests_by_key: dict[str, int] = {}

    def identify(self, request: Request) -> str | None:
        """The id of the API key ``request`` carries, if it is a valid one (nothing counted)."""
        return (
            None
            if self.keys is None
            else self.keys.identify(request.api_key, request.authorization)
        )

    def authenticate(self, request: Request, path: str) -> None:
        """Admit ``request`` on a valid API key, or take note of its signature; else refuse it."""
        key_id = self.identify(request)
        if key_id is None and self.signatures is not None:
            timestamp, signature = signature_headers(request.scope["headers"])
            if signature is not None:
                try:
                    self.signatures.check_timestamp(timestamp)
                except AuthenticationError as exc:
                    raise self.refused(request, exc) from None
                request.scope["ai_spine.signed"] = (timestamp, signature, path)
                return
        if key_id is None:
            raise self.refused(request, AuthenticationError(self.hint()))
        self.admit(request, key_id)

    async def verify_signature(self, request: Request, body: bytes = b"") -> None:
        """Check a signed request's signature (a POST's once its ``body`` is in), and that no
        instance has accepted it before (``SharedReplays``, with Redis)."""
        signed = request.scope.get("ai_spine.signed")
        if signed is None or self.signatures is None:
            return
        timestamp, signature, path = signed
        try:
            key_id = self.signatures.verify(
                timestamp, signature, request.scope["method"], path, body
            )
            if self.replays is not None:
                await self.replays.claim(signature)
        except AuthenticationError as exc:
            raise self.refused(request, exc) from None
        self.admit(request, key_id)

    def admit(self, request: Request, key_id: str) -> None:
        """Let ``request`` in as ``key_id`` (the execution's ``api_key_id``), and count it."""
        request.scope["ai_spine.key_id"] = key_id
        self.requests_by_key[key_id] = self.requests_by_key.get(key_id, 0) + 1

    def refused(self, request: Request, exc: AuthenticationError) -> AuthenticationError:
        """Count a refusal and add the challenge header; return ``exc`` to raise."""
        self.rejected += 1
        if request.scope["path"].startswith(_dashboard.PAGE):  # a browser: let it ask for a key
            request.extra_headers.append(_dashboard.BASIC_CHALLENGE)
        else:
            request.extra_headers.append((b"www-authenticate", b'Bearer realm="ai-spine-tool"'))
        logger.debug(
            "refused %s %s from %s: %s",
            request.scope["method"],
            _clip(request.scope["path"]),
            request.client_ip,
            exc.message,
        )
        return exc

    def hint(self) -> str:
        """What a refused caller must send."""
        keys = "an API key (X-API-Key or Authorization: Bearer)"
        signed = "a request signature (X-Signature-Timestamp and X-Signature)"
        if self.signatures is None:
            return f"A valid API key is required: send {keys}"
        if self.keys is None:
            return f"A signed request is required: send {signed}"
        return f"Authentication is required: send {keys} or {signed}"

    def figures(self) -> dict[str, Any] | None:
        """Keys and secrets in use, refusals and requests by key id (``None`` when auth is off)."""
        if not self.on:
            return None
        return {
            "api_keys_active": 0 if self.keys is None else len(self.keys.key_ids),
            "signing_secrets_active": (
                0 if self.signatures is None else len(self.signatures.key_ids)
            ),
            "rejected": self.rejected,
            "requests_by_key": dict(self.requests_by_key),
        }


class RateGate:
    """The rate limit of ``AI_SPINE_RATE_LIMIT``: per API key id when the request has one and
    limits go by key, else per client IP."""

    __slots__ = ("by_key", "limiter", "rate")

    def __init__(self, limiter: RateLimiter, *, rate: str, by_key: bool) -> None:
        self.limiter = limiter
        self.rate = rate
        self.by_key = by_key

    async def check(self, request: Request) -> None:
        """Count ``request`` against its limit: its headers say where it stands; past the limit,
        ``RateLimitError``."""
        key_id = request.scope.get("ai_spine.key_id")
        key = key_id if (self.by_key and key_id) else "ip:" + request.client_ip
        decision = await self.limiter.hit(key)
        request.extra_headers.extend(decision.headers())
        if not decision.allowed:
            raise RateLimitError(
                f"Rate limit of {self.rate} exceeded; retry in {decision.retry_after_s} s",
                retry_after_ms=decision.retry_after_s * 1000,
            )


def check_content_type(request: Request) -> None:
    """Refuse a body that is not JSON (415); a request without ``Content-Type`` is read as JSON."""
    content_type = request.content_type
    if content_type is None or content_type == _JSON:
        return  # clients that omit it are read as sending JSON
    media = content_type.split(b";", 1)[0].strip().lower()
    if media != _JSON and not media.endswith(b"+json"):
        raise UnsupportedContentTypeError(
            f"Request body must be JSON (Content-Type: application/json), "
            f"got {_clip(media.decode('latin-1'))}"
        )


def check_origin(request: Request, allowed: tuple[str, ...]) -> None:
    """Refuse (403 ``FORBIDDEN_ORIGIN``) a browser's request from an origin not ``allowed``, as
    MCP asks of ``/mcp`` against DNS rebinding; a request without ``Origin`` passes."""
    origin = next((v for k, v in request.scope["headers"] if k == b"origin"), None)
    if origin is not None and origin.decode("latin-1") not in allowed:
        raise ToolError(
            "Origin not allowed: list it in AI_SPINE_CORS_ORIGINS",
            code="FORBIDDEN_ORIGIN",
            status=403,
            type="authentication_error",
        )
