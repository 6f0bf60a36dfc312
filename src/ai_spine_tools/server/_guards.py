"""The steps that admit a request before it is executed: overload, content type, auth, rate."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from ai_spine_tools.exceptions import (
    AuthenticationError,
    OverloadedError,
    RateLimitError,
    UnsupportedContentTypeError,
)
from ai_spine_tools.observability import _dashboard
from ai_spine_tools.security._auth import signature_headers
from ai_spine_tools.server._wire import _JSON, Request, Response, _clip

if TYPE_CHECKING:
    from ai_spine_tools.server._app import ToolApp

logger = logging.getLogger("ai_spine_tools.server")


async def wait_for_slot(app: ToolApp) -> bool:
    """Wait (``queue_timeout_ms`` at most, behind at most ``queue_size`` others) for a
    finishing execution to hand over its slot; False when the queue is full or time is up."""
    settings = app.settings
    if len(app._waiters) >= settings.queue_size or settings.queue_timeout_ms <= 0:
        return False
    slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    app._waiters.append(slot)
    try:
        async with asyncio.timeout(settings.queue_timeout_ms / 1000.0):
            await slot
    except TimeoutError:
        pass
    except BaseException:
        if slot.done() and not slot.cancelled():
            free_slot(app)  # it was handed over just as we were cancelled
        raise
    finally:
        with contextlib.suppress(ValueError):
            app._waiters.remove(slot)
    return slot.done() and not slot.cancelled()


def hand_over(app: ToolApp) -> None:
    """Give a freed slot to the longest waiter (``in_flight`` stays), else free it."""
    waiters = app._waiters
    while waiters:
        slot = waiters.popleft()
        if not slot.done():
            slot.set_result(None)
            return
    app.in_flight -= 1


def free_slot(app: ToolApp) -> None:
    if app._waiters:
        hand_over(app)
    else:
        app.in_flight -= 1


def overloaded(app: ToolApp, request: Request) -> Response:
    app.overloaded += 1
    limit = app.max_in_flight
    exc = OverloadedError(
        f"The server is already running its limit of {limit} executions; retry shortly",
        retry_after_ms=1000,
        details={"max_concurrent_executions": limit, "queue_size": app.settings.queue_size},
    )
    app.count_execution(request, exc.code)
    return app._error(request, exc, errors_as_200=True)


def concurrency(app: ToolApp) -> dict[str, Any]:
    """Executions running and waiting against the limit, how many were refused, the thread pool
    of sync functions (``executor``) and the executions that ran past their deadline
    (``deadline_overruns``: sync ones still holding a thread when it passed, async ones that
    blocked the event loop past it)."""
    threads = app.tool.threads
    return {
        "in_flight": app.in_flight,
        "limit": app.max_in_flight,
        "queued": len(app._waiters),
        "queue_size": app.settings.queue_size,
        "rejected": app.overloaded,
        "executor": threads.figures(),
        "deadline_overruns": {"sync": threads.overdue_total, "async": app.overruns},
    }


def check_content_type(app: ToolApp, request: Request) -> None:
    content_type = request.content_type
    if content_type is None or content_type == _JSON:
        return  # clients that omit it are read as sending JSON
    media = content_type.split(b";", 1)[0].strip().lower()
    if media != _JSON and not media.endswith(b"+json"):
        raise UnsupportedContentTypeError(
            f"Request body must be JSON (Content-Type: application/json), "
            f"got {_clip(media.decode('latin-1'))}"
        )


def authenticate(app: ToolApp, request: Request, path: str) -> None:
    """The authenticate step: a valid API key, or a request signature.

    A signed request has its timestamp checked here (a POST's before its body is read) and its
    signature in ``verify_signature``: a POST's once its body is in, any other right after this.
    """
    key_id = None if app.auth is None else app.auth.identify(request.api_key, request.authorization)
    if key_id is None and app.signatures is not None:
        timestamp, signature = signature_headers(request.scope["headers"])
        if signature is not None:
            try:
                app.signatures.check_timestamp(timestamp)
            except AuthenticationError as exc:
                raise refused(app, request, exc) from None
            request.scope["ai_spine.signed"] = (timestamp, signature, path)
            return
    if key_id is None:
        raise refused(app, request, AuthenticationError(auth_hint(app)))
    admit(app, request, key_id)


async def verify_signature(app: ToolApp, request: Request, body: bytes = b"") -> None:
    """Check a signed request's signature (a POST's once its ``body`` is in), and that no
    instance has accepted it before (``SharedReplays``, with Redis)."""
    signed = request.scope.get("ai_spine.signed")
    if signed is None or app.signatures is None:
        return
    timestamp, signature, path = signed
    try:
        key_id = app.signatures.verify(timestamp, signature, request.scope["method"], path, body)
        if app.replays is not None:
            await app.replays.claim(signature)
    except AuthenticationError as exc:
        raise refused(app, request, exc) from None
    admit(app, request, key_id)


def admit(app: ToolApp, request: Request, key_id: str) -> None:
    request.scope["ai_spine.key_id"] = key_id
    app.requests_by_key[key_id] = app.requests_by_key.get(key_id, 0) + 1


def refused(app: ToolApp, request: Request, exc: AuthenticationError) -> AuthenticationError:
    app.auth_rejected += 1
    if request.scope["path"].startswith(_dashboard.PAGE):  # a browser: let it ask for a key
        request.extra_headers.append(_dashboard.BASIC_CHALLENGE)
    else:
        request.extra_headers.append((b"www-authenticate", b'Bearer realm="ai-spine-tool"'))
    if app._log_requests:
        logger.debug(
            "refused %s %s from %s: %s",
            request.scope["method"],
            _clip(request.scope["path"]),
            request.client_ip,
            exc.message,
        )
    return exc


def auth_hint(app: ToolApp) -> str:
    keys = "an API key (X-API-Key or Authorization: Bearer)"
    signed = "a request signature (X-Signature-Timestamp and X-Signature)"
    if app.signatures is None:
        return f"A valid API key is required: send {keys}"
    if app.auth is None:
        return f"A signed request is required: send {signed}"
    return f"Authentication is required: send {keys} or {signed}"


async def rate_limit(app: ToolApp, request: Request) -> None:
    assert app.limiter is not None
    key_id = request.scope.get("ai_spine.key_id")
    key = key_id if (app._limit_by_key and key_id) else "ip:" + request.client_ip
    decision = await app.limiter.hit(key)
    request.extra_headers.extend(decision.headers())
    if not decision.allowed:
        raise RateLimitError(
            f"Rate limit of {app.settings.rate_limit} exceeded; retry in "
            f"{decision.retry_after_s} s",
            retry_after_ms=decision.retry_after_s * 1000,
        )
