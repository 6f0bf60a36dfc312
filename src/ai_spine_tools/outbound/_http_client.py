"""``HTTPClient``: the pooled outbound client behind ``context.http``, on aiohttp.

Measured on one 2-core machine (wrk, 32 connections, one uvicorn worker, a local JSON upstream):
a bare ASGI app making one GET per request served about 240 requests/s through
``httpx.AsyncClient`` and about 5,000 through ``aiohttp``; so the client keeps httpx's call
shape (``await client.get(url, params=..., json=..., timeout=...)``, ``response.json()``,
``raise_for_status()``) on aiohttp's connection pool.

What it adds to aiohttp: one place per pooled connection, taken before aiohttp's pool is reached
and given back when the body is read (or the stream closed), so the wait for a connection is
measured (``pools.http`` in the metrics, the pool-pressure warning) and bounded by the pool
timeout; no cookie jar (a process-wide client must not carry one caller's cookies to the next);
errors in the SDK's tree (``UpstreamError`` and its kinds); trace context injected into each
request while tracing is on. aiohttp is imported on the first request, in a thread, so that a
tool's first call does not stall the event loop for the ~100 ms the import takes.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

import msgspec

from ai_spine_tools.exceptions import UpstreamTimeoutError
from ai_spine_tools.outbound._http_errors import upstream_error
from ai_spine_tools.outbound._http_response import HTTPResponse, StreamedHTTPResponse
from ai_spine_tools.outbound._poolwatch import AcquireWaits, Places

if TYPE_CHECKING:
    import aiohttp

__all__ = ["HTTPClient", "HTTPSettings", "HTTPTimeout", "set_outbound_tracer"]

USER_AGENT = "ai-spine-tools"
QueryValue = str | int | float | bool | None
_PLAIN = frozenset({str, int, float})
Params = Mapping[str, QueryValue | Sequence[QueryValue]] | Sequence[tuple[str, QueryValue]] | str
# A span around each outbound request while tracing is on: (method, url, headers) -> context
# manager yielding a callback that records the status (set by the tracing module).
OutboundTracer = Callable[[str, str, dict[str, str]], AbstractAsyncContextManager[Any]]
_tracer: OutboundTracer | None = None


def set_outbound_tracer(tracer: OutboundTracer | None) -> None:
    """Wrap every outbound request in ``tracer`` from now on (``None``: stop)."""
    global _tracer
    _tracer = tracer


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPSettings:
    """How the shared client is built: pool size, keep-alive and timeouts (seconds)."""

    max_connections: int = 100
    keepalive_expiry: float = 30.0
    connect_timeout: float = 5.0
    timeout: float = 10.0
    max_redirects: int = 3


@dataclass(frozen=True, slots=True)
class HTTPTimeout:
    """Per-request timeouts in seconds (``None``: no limit).

    ``total`` bounds the whole call, ``connect`` opening a new connection (``None``: the
    client's connect timeout), ``read`` the wait for each piece of the answer, ``pool`` the wait
    for a free connection (``None``: the total).
    """

    total: float | None = 10.0
    connect: float | None = None
    read: float | None = None
    pool: float | None = None


_DEFAULT: Final = HTTPTimeout()
_encode_json = msgspec.json.encode  # a marker: "the client's configured timeouts"


class HTTPClient:
    """The process's shared, pooled outbound HTTP client (``context.http``).

    ``get``/``post``/``put``/``patch``/``delete``/``head``/``options``/``request`` read the whole
    answer and return an ``HTTPResponse``; ``stream(...)`` is a context manager for answers read
    as they arrive. ``session`` is the aiohttp ``ClientSession`` underneath, for what this
    client does not cover (multipart uploads, WebSockets); its calls share the connection pool
    but not the pool-wait figures.
    """

    def __init__(self, settings: HTTPSettings | None = None) -> None:
        self.settings = settings or HTTPSettings()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self.waits = AcquireWaits("http", self.stats)
        self._places = Places(self.settings.max_connections, self.waits)
        # aiohttp refuses the max_redirects-th redirect; httpx (and we) follow that many.
        self._max_redirects = self.settings.max_redirects + 1

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        """The underlying ``aiohttp.ClientSession`` (created, and aiohttp imported, if needed)."""
        if self._session is None:
            self._session = self._open(importlib.import_module("aiohttp"))
        return self._session

    async def _start(self) -> aiohttp.ClientSession:
        if "aiohttp" not in sys.modules:
            await asyncio.get_running_loop().run_in_executor(
                None, importlib.import_module, "aiohttp"
            )
        return self.session

    def _open(self, module: Any) -> aiohttp.ClientSession:
        """Create the session (``module`` is aiohttp, imported by the caller)."""
        if self._closed:
            raise RuntimeError("this HTTP client is closed; context.http gives a new one")
        settings = self.settings
        connector = module.TCPConnector(
            limit=settings.max_connections,
            limit_per_host=0,
            keepalive_timeout=settings.keepalive_expiry,
        )
        session: aiohttp.ClientSession = module.ClientSession(
            connector=connector,
            timeout=_client_timeout(settings.timeout, settings.connect_timeout, None),
            headers={"user-agent": USER_AGENT},
            cookie_jar=module.DummyCookieJar(),
            # Reading HTTP(S)_PROXY on every request costs a scan of the environment; only
            # when one is set at all does aiohttp need to look (it honours NO_PROXY too).
            trust_env=bool(module.helpers.proxies_from_env()),
        )
        return session

    @property
    def is_closed(self) -> bool:
        """True once ``aclose()`` ran."""
        return self._closed

    async def aclose(self) -> None:
        """Close every pooled connection; the client cannot be used afterwards."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> HTTPClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- requests --------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        data: Mapping[str, Any] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | HTTPTimeout | None = _DEFAULT,  # noqa: ASYNC109  (httpx's call shape)
        follow_redirects: bool = True,
    ) -> HTTPResponse:
        """Send a request and read the whole answer.

        ``json`` is sent as JSON, ``content`` as the raw body, ``data`` as a form; ``timeout``
        is seconds for the whole call or an ``HTTPTimeout``. Raises ``UpstreamTimeoutError``,
        ``UpstreamConnectionError`` or ``UpstreamError`` when no answer comes; an answer with
        an error status is returned (``raise_for_status()`` turns it into an error).
        """
        method = method.upper()
        session = self._session or await self._start()
        options = self._options(
            params, headers, json, content, data, auth, timeout, follow_redirects
        )
        if _tracer is None:
            return await self._fetch(session, method, url, options, timeout)
        async with _tracer(method, url, options.setdefault("headers", {})) as record:
            response = await self._fetch(session, method, url, options, timeout)
            record(response.status_code)
            return response

    async def _fetch(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        options: dict[str, Any],
        timeouts: float | HTTPTimeout | None,
    ) -> HTTPResponse:
        """Send the request on a pooled connection and read the whole answer."""
        places = self._places
        if not places.take():
            await self._wait_for_place(timeouts)
        try:
            async with session.request(method, url, **options) as raw:
                body = await raw.read()
        except _errors() as exc:
            raise upstream_error(exc, method, _url(url)) from exc
        finally:
            places.give_back()
        return HTTPResponse(method, raw.url, raw.status, raw.reason or "", raw.headers, body)

    # The verbs return request()'s coroutine rather than awaiting it in one of their own: one
    # coroutine frame less on every resumption of a call (measured: ~1 µs a request).

    def get(self, url: str, **options: Any) -> Coroutine[Any, Any, HTTPResponse]:
        """Send a GET (options as for ``request``)."""
        return self.request("GET", url, **options)

    def post(self, url: str, **options: Any) -> Coroutine[Any, Any, HTTPResponse]:
        """Send a POST (options as for ``request``)."""
        return self.request("POST", url, **options)

    def put(self, url: str, **options: Any) -> Coroutine[Any, Any, HTTPResponse]:
        """Send a PUT (options as for ``request``)."""
        return self.request("PUT", url, **options)

    def patch(self, url: str, **options: Any) -> Coroutine[Any, Any, HTTPResponse]:
        """Send a PATCH (options as for ``request``)."""
        return self.request("PATCH", url, **options)

    def delete(self, url: str, **options: Any) -> Coroutine[Any, Any, HTTPResponse]:
        """Send a DELETE (options as for ``request``)."""
        return self.request("DELETE", url, **options)

    def head(self, url: str, **options: Any) -> Coroutine[Any, Any, HTTPResponse]:
        """Send a HEAD (options as for ``request``)."""
        return self.request("HEAD", url, **options)

    def options(self, url: str, **options: Any) -> Coroutine[Any, Any, HTTPResponse]:
        """Send an OPTIONS (options as for ``request``)."""
        return self.request("OPTIONS", url, **options)

    @asynccontextmanager
    async def stream(
        self, method: str, url: str, **options: Any
    ) -> AsyncIterator[StreamedHTTPResponse]:
        """Send a request and give its answer to the block to read as it arrives
        (``async for chunk in response.aiter_bytes()``); the connection is held until the
        block ends. Options as for ``request``."""
        method = method.upper()
        session = self._session or await self._start()
        follow = options.pop("follow_redirects", True)
        timeout = options.pop("timeout", _DEFAULT)
        kwargs = self._options(timeout=timeout, follow_redirects=follow, **options)
        places = self._places
        if not places.take():
            await self._wait_for_place(timeout)
        try:
            try:
                raw = await session.request(method, url, **kwargs)
            except _errors() as exc:
                raise upstream_error(exc, method, _url(url)) from exc
            try:
                yield StreamedHTTPResponse(method, raw)
            finally:
                raw.release()  # back to the pool if the body was read whole, else closed
        finally:
            places.give_back()

    # -- the pool's places -----------------------------------------------------------------

    async def _wait_for_place(self, timeouts: float | HTTPTimeout | None) -> None:
        """Queue for a connection's place; ``UpstreamTimeoutError`` past the pool timeout."""
        limit = _pool_timeout(timeouts, self.settings.timeout)
        if not await self._places.wait(limit):
            raise UpstreamTimeoutError(
                f"no outbound connection was free within {limit} s "
                f"(AI_SPINE_MAX_CONNECTIONS={self.settings.max_connections})"
            )

    @property
    def in_use(self) -> int:
        """Connections lent to calls (or being opened for them)."""
        return self._places.taken

    def _options(
        self,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        data: Mapping[str, Any] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | HTTPTimeout | None = _DEFAULT,
        follow_redirects: bool = True,
    ) -> dict[str, Any]:
        """aiohttp's keywords for a call; the usual one (a URL and its query) the fastest."""
        options: dict[str, Any] = {
            "params": None if params is None else _query(params),
            "max_redirects": self._max_redirects,
            "allow_redirects": follow_redirects,
        }
        if (
            headers is None
            and json is None
            and content is None
            and data is None
            and auth is None
            and timeout is _DEFAULT
        ):
            return options
        if headers is not None:
            options["headers"] = dict(headers)
        bodies = (json is not None) + (content is not None) + (data is not None)
        if bodies > 1:
            raise TypeError("give at most one of json=, content= and data=")
        if json is not None:
            options["data"] = _encode_json(json)
            sent = options.setdefault("headers", {})
            if not any(name.lower() == "content-type" for name in sent):
                sent["content-type"] = "application/json"
        elif content is not None:
            options["data"] = content
        elif data is not None:
            options["data"] = dict(data)
        if auth is not None:
            user, password = auth
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            options.setdefault("headers", {})["authorization"] = f"Basic {token}"
        if timeout is not _DEFAULT:
            options["timeout"] = _timeout_for(timeout, self.settings.connect_timeout)
        return options

    # -- figures ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Pool figures: size, open/idle/in-use connections and the waits for one."""
        figures: dict[str, Any] = {
            "max_connections": self.settings.max_connections,
            "in_use": self.in_use,
        }
        idle = _idle_connections(self._session)
        if idle is not None:
            figures["idle"] = idle
            figures["open"] = idle + self.in_use
        figures.update(self.waits.figures())
        return figures


def _errors() -> tuple[type[BaseException], ...]:
    """What a call may raise that ``upstream_error`` maps (evaluated only when one is raised,
    by which time aiohttp is imported)."""
    return (sys.modules["aiohttp"].ClientError, TimeoutError)


def _url(url: str) -> Any:
    from yarl import URL

    try:
        return URL(url)
    except (TypeError, ValueError):
        return URL()


def _query(params: Params) -> Any:
    """``params`` as aiohttp takes them: booleans as ``true``/``false`` and ``None`` as an
    empty value (as httpx sends them), lists as repeated keys, a string as the query it
    encodes (aiohttp would quote its ``%`` escapes again)."""
    if isinstance(params, str):
        return parse_qsl(params, keep_blank_values=True)
    # A mapping of plain values goes through as it is: rebuilding it as pairs cost ~2 µs a
    # request (measured: building the list, and yarl extending a URL with pairs, not a dict).
    if isinstance(params, Mapping):
        for value in params.values():
            if type(value) not in _PLAIN:
                break
        else:
            return params
    items: Iterable[tuple[str, Any]] = params.items() if isinstance(params, Mapping) else params
    pairs: list[tuple[str, str | int | float]] = []
    for key, value in items:
        if isinstance(value, list | tuple):
            pairs.extend((key, _scalar(one)) for one in value)
        else:
            pairs.append((key, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str | int | float:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    if isinstance(value, str | int | float):
        return value
    raise TypeError(f"query parameter values must be str, int, float, bool or None (got {value!r})")


def _timeout_for(timeout: float | HTTPTimeout | None, connect: float) -> Any:
    if timeout is None:
        return _client_timeout(None, connect, None)
    if isinstance(timeout, HTTPTimeout):
        if timeout.connect is not None:
            connect = timeout.connect
        return _client_timeout(timeout.total, connect, timeout.read)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ValueError(f"timeout must be seconds > 0, an HTTPTimeout or None (got {timeout!r})")
    return _client_timeout(float(timeout), connect, None)


def _pool_timeout(timeout: float | HTTPTimeout | None, default: float) -> float | None:
    if timeout is _DEFAULT:
        return default
    if isinstance(timeout, HTTPTimeout):
        return timeout.pool if timeout.pool is not None else timeout.total
    return timeout


@lru_cache(maxsize=64)
def _client_timeout(total: float | None, connect: float | None, read: float | None) -> Any:
    """One aiohttp ``ClientTimeout`` per distinct value (they are immutable).

    ``connect`` is aiohttp's ``sock_connect``, timed only while a new connection opens: its
    ``connect`` would also time taking a pooled one, an ``asyncio`` timeout on every request
    that cost 12-20 µs (measured: a tool calling an upstream, in-process, 0.77-0.81 of a bare
    aiohttp app with it, 0.87 without). The wait for a pooled connection is ours to bound.
    """
    aiohttp = importlib.import_module("aiohttp")
    return aiohttp.ClientTimeout(total=total, sock_connect=connect, sock_read=read)


def _idle_connections(session: aiohttp.ClientSession | None) -> int | None:
    """Idle keep-alive connections in aiohttp's pool, read from its private ``_conns``
    (``None`` when that has moved: the figure is then left out, and a test against the newest
    aiohttp says so)."""
    if session is None:
        return 0
    conns = getattr(session.connector, "_conns", None)
    if not isinstance(conns, Mapping):
        return None
    return sum(len(idle) for idle in conns.values())
