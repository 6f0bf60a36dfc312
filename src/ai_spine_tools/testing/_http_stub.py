"""``HTTPStub``: what ``context.http`` answers in tests, with no live upstream.

Canned responses (``stub.get(url, json=...)``), a handler function, or forwarding to a real
server on this machine (``stub.forward(prefix, to=local_url)``); every request is recorded in
``stub.requests``. It plugs in at the SDK's own client: ``ToolTestClient(tool, http=stub)``
makes a ``StubHTTPClient`` (an ``HTTPClient`` whose ``request`` asks the stub) the shared client
of the event loop the tool runs on, for as long as the client is open. Nothing of aiohttp is
patched, and a request nothing answers fails as an unreachable upstream would, naming itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import msgspec

from ai_spine_tools.exceptions import (
    ToolError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
from ai_spine_tools.outbound._http_client import HTTPClient, Params, _query
from ai_spine_tools.outbound._http_response import HTTPResponse

__all__ = ["HTTPStub", "StubHTTPClient", "StubRequest", "StubResponse"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StubRequest:
    """One request ``context.http`` was asked to send: names of headers are lower-case."""

    method: str
    url: str
    """The whole URL, query included."""
    headers: dict[str, str]
    content: bytes

    @property
    def path(self) -> str:
        """The URL's path."""
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, str]:
        """The query parameters (the last value of a repeated one)."""
        return dict(parse_qsl(urlsplit(self.url).query, keep_blank_values=True))

    def json(self) -> Any:
        """The body parsed as JSON."""
        return msgspec.json.decode(self.content)


@dataclass(frozen=True, slots=True, kw_only=True)
class StubResponse:
    """A canned answer: ``json`` (sent as JSON) or ``content``, a status and headers."""

    status: int = 200
    json: Any = None
    content: bytes | str = b""
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[StubRequest], "StubResponse | Awaitable[StubResponse]"]


@dataclass(slots=True)
class _Route:
    method: str
    url: str
    answer: StubResponse | BaseException
    times: int | None

    def matches(self, method: str, url: str) -> bool:
        if self.times == 0 or self.method not in (method, "*"):
            return False
        want, got = urlsplit(self.url), urlsplit(url)
        if (want.scheme, want.netloc, want.path.rstrip("/")) != (
            got.scheme,
            got.netloc,
            got.path.rstrip("/"),
        ):
            return False
        asked = dict(parse_qsl(got.query, keep_blank_values=True))
        return all(asked.get(k) == v for k, v in parse_qsl(want.query, keep_blank_values=True))


class HTTPStub:
    """Answers ``context.http`` in tests: routes first (in the order added), then forwards,
    then the ``handler``; a request none of them takes raises ``UpstreamConnectionError``.

    ``stub.get(url, json={...})`` (and ``post``, ``put``, ``patch``, ``delete``, or
    ``add(method, url, ...)``) answers requests to ``url``, whatever their query unless ``url``
    names one; ``times=n`` answers n requests only, so several routes to one URL answer in
    turn; ``error=TimeoutError()`` raises instead (a ``TimeoutError`` as
    ``UpstreamTimeoutError``, a ``ConnectionError`` as ``UpstreamConnectionError``, a
    ``ToolError`` as it is).
    """

    def __init__(self, handler: Handler | None = None) -> None:
        self.handler = handler
        """Called with each ``StubRequest`` no route or forward takes; returns (or awaits to)
        a ``StubResponse``."""
        self.requests: list[StubRequest] = []
        """Every request sent, in order (forwarded ones included)."""
        self._routes: list[_Route] = []
        self._forwards: list[tuple[str, str]] = []

    def add(
        self,
        method: str,
        url: str,
        *,
        status: int = 200,
        json: Any = None,
        content: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
        error: BaseException | None = None,
        times: int | None = None,
    ) -> HTTPStub:
        """Answer ``method`` (``"*"``: any) requests to ``url``; return the stub."""
        if not urlsplit(url).scheme:
            raise ValueError(f"give the whole URL, with its scheme (got {url!r})")
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1 (got {times!r})")
        answer = error or StubResponse(
            status=status, json=json, content=content, headers=dict(headers or {})
        )
        self._routes.append(_Route(method.upper(), url, answer, times))
        return self

    def get(self, url: str, **answer: Any) -> HTTPStub:
        """Answer GET requests to ``url`` (keywords as for ``add``)."""
        return self.add("GET", url, **answer)

    def post(self, url: str, **answer: Any) -> HTTPStub:
        """Answer POST requests to ``url`` (keywords as for ``add``)."""
        return self.add("POST", url, **answer)

    def put(self, url: str, **answer: Any) -> HTTPStub:
        """Answer PUT requests to ``url`` (keywords as for ``add``)."""
        return self.add("PUT", url, **answer)

    def patch(self, url: str, **answer: Any) -> HTTPStub:
        """Answer PATCH requests to ``url`` (keywords as for ``add``)."""
        return self.add("PATCH", url, **answer)

    def delete(self, url: str, **answer: Any) -> HTTPStub:
        """Answer DELETE requests to ``url`` (keywords as for ``add``)."""
        return self.add("DELETE", url, **answer)

    def forward(self, prefix: str, to: str) -> HTTPStub:
        """Send requests whose URL starts with ``prefix`` to the server at ``to`` instead (a
        real request: ``forward("https://api.example.com", to="http://127.0.0.1:8080")``)."""
        for value in (prefix, to):
            if not urlsplit(value).scheme:
                raise ValueError(f"give whole URLs, with their scheme (got {value!r})")
        self._forwards.append((prefix.rstrip("/"), to.rstrip("/")))
        return self

    def client(self) -> StubHTTPClient:
        """A new ``HTTPClient`` that asks this stub (``ToolTestClient`` makes one)."""
        return StubHTTPClient(self)

    def forwarded(self, url: str) -> str | None:
        """Where ``url`` goes when a forward takes it, else ``None``."""
        for prefix, to in self._forwards:
            if url == prefix or url.startswith((f"{prefix}/", f"{prefix}?")):
                return to + url[len(prefix) :]
        return None

    async def answer(self, request: StubRequest) -> StubResponse:
        """The route's or the handler's answer to ``request`` (raising a route's error)."""
        for route in self._routes:
            if route.matches(request.method, request.url):
                if route.times is not None:
                    route.times -= 1
                if isinstance(route.answer, BaseException):
                    raise _as_upstream_error(route.answer, request)
                return route.answer
        if self.handler is None:
            raise UpstreamConnectionError(
                f"{request.method} {request.url} failed: the HTTPStub has no answer for it "
                "(add one with stub.get(url, json=...), a handler, or stub.forward(...))"
            )
        answer = self.handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if not isinstance(answer, StubResponse):
            raise TypeError(f"the HTTPStub handler must return a StubResponse (got {answer!r})")
        return answer

    def __repr__(self) -> str:
        return (
            f"<HTTPStub {len(self._routes)} route(s), {len(self._forwards)} forward(s), "
            f"{len(self.requests)} request(s)>"
        )


class StubHTTPClient(HTTPClient):
    """An ``HTTPClient`` whose requests the ``HTTPStub`` answers (or forwards for real)."""

    def __init__(self, stub: HTTPStub) -> None:
        super().__init__()
        self.stub = stub

    def request(self, method: str, url: str, **options: Any) -> Coroutine[Any, Any, HTTPResponse]:
        """Record the request, then answer it from the stub (or forward it)."""
        return self._answer(method.upper(), url, options)

    async def _answer(self, method: str, url: str, options: dict[str, Any]) -> HTTPResponse:
        request = _stub_request(method, url, options)
        self.stub.requests.append(request)
        target = self.stub.forwarded(url)
        if target is not None:
            return await HTTPClient.request(self, method, target, **options)
        answer = await self.stub.answer(request)
        from multidict import CIMultiDict, CIMultiDictProxy
        from yarl import URL

        headers = CIMultiDict(answer.headers)
        body = answer.content.encode() if isinstance(answer.content, str) else answer.content
        if answer.json is not None:
            body = msgspec.json.encode(answer.json)
            headers.setdefault("content-type", "application/json")
        try:
            reason = HTTPStatus(answer.status).phrase
        except ValueError:
            reason = ""
        return HTTPResponse(
            method, URL(request.url), answer.status, reason, CIMultiDictProxy(headers), body
        )

    def stream(self, method: str, url: str, **options: Any) -> Any:
        """Forwarded requests stream for real; the stub's own answers are read whole only."""
        target = self.stub.forwarded(url)
        if target is None:
            raise TypeError(
                "HTTPStub answers request() and its verbs; stream() works only for URLs it "
                "forwards to a real server (stub.forward(prefix, to=...))"
            )
        self.stub.requests.append(_stub_request(method.upper(), url, dict(options)))
        return HTTPClient.stream(self, method, target, **options)


def _stub_request(method: str, url: str, options: dict[str, Any]) -> StubRequest:
    params: Params | None = options.get("params")
    if params is not None:
        pairs = _query(params)
        query = urlencode(list(pairs.items()) if isinstance(pairs, Mapping) else pairs)
        url = f"{url}{'&' if '?' in url else '?'}{query}" if query else url
    headers = {k.lower(): v for k, v in (options.get("headers") or {}).items()}
    content: bytes = b""
    if options.get("json") is not None:
        content = msgspec.json.encode(options["json"])
        headers.setdefault("content-type", "application/json")
    elif options.get("content") is not None:
        raw = options["content"]
        content = raw.encode() if isinstance(raw, str) else raw
    elif options.get("data") is not None:
        content = urlencode(dict(options["data"])).encode()
        headers.setdefault("content-type", "application/x-www-form-urlencoded")
    return StubRequest(method=method, url=url, headers=headers, content=content)


def _as_upstream_error(error: BaseException, request: StubRequest) -> BaseException:
    target = f"{request.method} {urlsplit(request.url)._replace(query='').geturl()}"
    if isinstance(error, ToolError):
        return error
    if isinstance(error, TimeoutError):
        return UpstreamTimeoutError(f"{target} did not answer in time")
    if isinstance(error, ConnectionError):
        return UpstreamConnectionError(f"{target} failed: {type(error).__name__}")
    return error
