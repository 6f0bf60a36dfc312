"""``ToolTestClient``: the real ASGI app of a tool, driven in-process, sync or async.

Requests go through the same app ``ai-spine serve`` runs (routing, auth, limits, validation,
envelopes), with no socket in between, and the app's lifespan runs around the client's use, so the
tool's ``setup`` and ``cleanup`` run as they do on a server. The synchronous client keeps the app on
a background event loop (see ``_portal``); the asynchronous one runs it on the caller's loop.
Entering a client resets the tool's state (``tool.reset()``) and, given ``http=``, makes an
``HTTPStub`` the ``context.http`` of that loop until the client closes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.core._tool import Tool
from ai_spine_tools.server._app import create_app
from ai_spine_tools.server._inprocess import InProcessApp
from ai_spine_tools.server._wire import ASGIApp, Message, Receive, Scope, Send
from ai_spine_tools.testing._assertions import assert_success
from ai_spine_tools.testing._http_stub import HTTPStub, StubRequest
from ai_spine_tools.testing._portal import Portal

__all__ = ["AsyncToolTestClient", "Headers", "ToolResponse", "ToolTestClient", "test_tool"]


class Headers(Mapping[str, str]):
    """Response headers: names stored lower-case, looked up in any case."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items = {name.lower(): value for name, value in (items or {}).items()}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResponse:
    """One response from the tool's server: status, headers, raw body and the parsed JSON.

    The envelope properties (``output_data``, ``error_code``, ...) read the execute envelope and are
    ``None`` when the body is not one.
    """

    status_code: int
    headers: Headers
    """Response headers; ``headers["X-Request-ID"]`` and ``headers["x-request-id"]`` agree."""
    content: bytes
    json: Any
    """The body decoded as JSON, or ``None`` when it is not JSON."""

    @property
    def text(self) -> str:
        """The body as text."""
        return self.content.decode("utf-8", errors="replace")

    @property
    def status(self) -> str | None:
        """The envelope's ``status``: ``"success"`` or ``"error"``."""
        return self._text("status")

    @property
    def ok(self) -> bool:
        """True for a 2xx response whose body is not an error envelope."""
        return 200 <= self.status_code < 300 and self.status != "error"

    @property
    def output_data(self) -> dict[str, Any] | None:
        """The tool's output on success."""
        value = self._field("output_data")
        return value if isinstance(value, dict) else None

    @property
    def execution_id(self) -> str | None:
        """The execution id the server answered with."""
        return self._text("execution_id")

    @property
    def error_code(self) -> str | None:
        """The wire error code, such as ``VALIDATION_ERROR``."""
        return self._text("error_code")

    @property
    def error_message(self) -> str | None:
        """The error message meant for people."""
        return self._text("error_message")

    @property
    def error_details(self) -> dict[str, Any]:
        """The error's details (empty when there are none)."""
        value = self._field("error_details")
        return value if isinstance(value, dict) else {}

    @property
    def validation_errors(self) -> list[dict[str, Any]]:
        """Each failing field of a validation error, as ``{path, code, message}``."""
        errors = self.error_details.get("errors")
        return list(errors) if isinstance(errors, list) else []

    def _text(self, name: str) -> str | None:
        value = self._field(name)
        return value if isinstance(value, str) else None

    def _field(self, name: str) -> Any:
        return self.json.get(name) if isinstance(self.json, dict) else None

    def __repr__(self) -> str:
        code = f" {self.error_code}" if self.error_code else ""
        return f"<ToolResponse [{self.status_code}]{code}>"


HTTPOption = HTTPStub | Callable[[StubRequest], Any] | None
"""``http=``: an ``HTTPStub``, or a handler (``StubRequest -> StubResponse``) to make one."""


class _Driver:
    """The in-process app and the request building both clients share."""

    def __init__(
        self,
        target: Tool | ASGIApp,
        settings: ServerSettings | None,
        overrides: dict[str, Any],
        headers: Mapping[str, str] | None,
        http: HTTPOption = None,
        reset: bool = True,
    ) -> None:
        if isinstance(target, Tool):
            self.tool: Tool | None = target
            app = create_app(target, settings, **overrides)
        elif callable(target):
            if settings is not None or overrides:
                raise TypeError("server settings apply only when the client is given a Tool")
            self.tool = None
            app = _lifespan_optional(target)
        else:
            raise TypeError(f"expected a Tool or an ASGI app (got {type(target).__name__})")
        self.app = InProcessApp(app)
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        if http is not None and not isinstance(http, HTTPStub):
            if not callable(http):
                raise TypeError(f"http= takes an HTTPStub or a handler function (got {http!r})")
            http = HTTPStub(http)
        self.http: HTTPStub | None = http
        self.reset = reset
        self._owns_lifespan = False
        self._stubbed = False

    async def start(self) -> None:
        if self.tool is not None and self.reset:
            self.tool.reset()
        if self.http is not None:  # before setup, which may call out too
            from ai_spine_tools.outbound._http import use_client

            use_client(self.http.client())
            self._stubbed = True
        if self.tool is not None and self.tool.started:
            return  # whoever started the tool owns its setup and cleanup
        try:
            await self.app.start()
        except BaseException:
            await self._unstub()
            raise
        self._owns_lifespan = True

    async def stop(self) -> None:
        try:
            if self._owns_lifespan:
                self._owns_lifespan = False
                await self.app.stop()
        finally:
            await self._unstub()

    async def _unstub(self) -> None:
        if self._stubbed:
            self._stubbed = False
            from ai_spine_tools.outbound._http import close_shared_client

            await close_shared_client()  # the stub's client (the tool's stop may have closed it)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ToolResponse:
        merged = {**self.headers, **{k.lower(): v for k, v in (headers or {}).items()}}
        body = b""
        if json is not None:
            if content is not None:
                raise TypeError("give json= or content=, not both")
            body = msgspec.json.encode(json)
            merged.setdefault("content-type", "application/json")
        elif content is not None:
            body = content.encode() if isinstance(content, str) else content
        raw = await self.app.request(method, path, body=body, headers=merged.items())
        return ToolResponse(
            status_code=raw.status,
            headers=Headers(raw.headers),
            content=raw.body,
            json=_decode(raw.body),
        )


def _execute_body(
    input: Mapping[str, Any] | None,
    config: Mapping[str, Any] | None,
    execution_id: str | None,
    metadata: Mapping[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"input_data": {} if input is None else input}
    if config is not None:
        body["config"] = config
    if execution_id is not None:
        body["execution_id"] = execution_id
    if metadata is not None:
        body["metadata"] = metadata
    return body


def _decode(content: bytes) -> Any:
    if not content:
        return None
    try:
        return msgspec.json.decode(content)
    except msgspec.DecodeError:
        return None


def _lifespan_optional(app: ASGIApp) -> ASGIApp:
    """Run ``app`` without a lifespan when it does not speak the protocol, as servers do."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        answered = False

        async def tracking(message: Message) -> None:
            nonlocal answered
            answered = answered or message["type"].startswith("lifespan.startup.")
            await send(message)

        try:
            await app(scope, receive, tracking)
        except Exception:
            if answered:
                raise
        if not answered:
            await send({"type": "lifespan.startup.complete"})
            while (await receive())["type"] != "lifespan.shutdown":
                pass
            await send({"type": "lifespan.shutdown.complete"})

    return guarded


class AsyncToolTestClient:
    """Drive a tool's app on the running event loop: ``async with AsyncToolTestClient(tool)``.

    Settings overrides (``api_keys=("k",)``, ``errors_as_200=True``, ...: the fields of
    ``ServerSettings``) go to ``create_app(tool, settings, **overrides)``; ``headers`` are sent
    with every request; ``http`` (an ``HTTPStub`` or a handler) answers ``context.http``;
    ``reset`` (default) clears the tool's breakers, cached results and custom metrics on entry.
    """

    def __init__(
        self,
        tool_or_app: Tool | ASGIApp,
        settings: ServerSettings | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        http: HTTPOption = None,
        reset: bool = True,
        **overrides: Any,
    ) -> None:
        self._driver = _Driver(tool_or_app, settings, overrides, headers, http, reset)

    @property
    def http(self) -> HTTPStub | None:
        """The ``HTTPStub`` answering ``context.http`` (``None`` when the client has none)."""
        return self._driver.http

    async def __aenter__(self) -> AsyncToolTestClient:
        await self._driver.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._driver.stop()

    async def execute(
        self,
        input: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        execution_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ToolResponse:
        """``POST /api/execute`` with ``{"input_data": input, "config": config, ...}``."""
        body = _execute_body(input, config, execution_id, metadata)
        return await self._driver.request("POST", "/api/execute", json=body, headers=headers)

    async def get(self, path: str, *, headers: Mapping[str, str] | None = None) -> ToolResponse:
        """Send a GET request."""
        return await self._driver.request("GET", path, headers=headers)

    async def post(
        self,
        path: str,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ToolResponse:
        """Send a POST request with a JSON body (``json``) or raw bytes (``content``)."""
        return await self._driver.request("POST", path, json=json, content=content, headers=headers)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ToolResponse:
        """Send any request."""
        return await self._driver.request(method, path, json=json, content=content, headers=headers)


class ToolTestClient:
    """Drive a tool's app in-process from plain synchronous code (no pytest-asyncio needed).

    ``with ToolTestClient(tool) as client:`` starts the app on a background event loop and runs its
    lifespan (the tool's ``setup``); leaving the block runs ``cleanup`` and stops the loop.
    ``async with ToolTestClient(tool) as client:`` instead yields an ``AsyncToolTestClient`` on the
    running loop, whose methods are awaited. Settings overrides, ``headers``, ``http`` and
    ``reset`` are as for ``AsyncToolTestClient``.
    """

    def __init__(
        self,
        tool_or_app: Tool | ASGIApp,
        settings: ServerSettings | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        http: HTTPOption = None,
        reset: bool = True,
        **overrides: Any,
    ) -> None:
        self._client = AsyncToolTestClient(
            tool_or_app, settings, headers=headers, http=http, reset=reset, **overrides
        )
        self._portal: Portal | None = None

    @property
    def http(self) -> HTTPStub | None:
        """The ``HTTPStub`` answering ``context.http`` (``None`` when the client has none)."""
        return self._client.http

    # -- synchronous use ---------------------------------------------------------------------

    def __enter__(self) -> ToolTestClient:
        if self._portal is not None:
            raise RuntimeError("this ToolTestClient is already in use")
        portal = Portal("ai-spine-test-client")
        portal.start()
        try:
            portal.call(self._client.__aenter__())
        except BaseException:
            portal.stop()
            raise
        self._portal = portal
        return self

    def __exit__(self, *exc_info: object) -> None:
        portal, self._portal = self._portal, None
        if portal is not None:
            try:
                portal.call(self._client.__aexit__(*exc_info))
            finally:
                portal.stop()

    def execute(
        self,
        input: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        execution_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ToolResponse:
        """``POST /api/execute`` with ``{"input_data": input, "config": config, ...}``."""
        body = _execute_body(input, config, execution_id, metadata)
        return self.request("POST", "/api/execute", json=body, headers=headers)

    def get(self, path: str, *, headers: Mapping[str, str] | None = None) -> ToolResponse:
        """Send a GET request."""
        return self.request("GET", path, headers=headers)

    def post(
        self,
        path: str,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ToolResponse:
        """Send a POST request with a JSON body (``json``) or raw bytes (``content``)."""
        return self.request("POST", path, json=json, content=content, headers=headers)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ToolResponse:
        """Send any request."""
        if self._portal is None:
            raise RuntimeError("use the client inside 'with ToolTestClient(tool) as client:'")
        return self._portal.call(
            self._client.request(method, path, json=json, content=content, headers=headers)
        )

    # -- asynchronous use --------------------------------------------------------------------

    async def __aenter__(self) -> AsyncToolTestClient:
        if self._portal is not None:
            raise RuntimeError("this ToolTestClient is already in use")
        return await self._client.__aenter__()

    async def __aexit__(self, *exc_info: object) -> None:
        await self._client.__aexit__(*exc_info)


def test_tool(
    tool: Tool,
    input: Mapping[str, Any] | None = None,  # noqa: PT028 - a helper named like a test
    config: Mapping[str, Any] | None = None,  # noqa: PT028
    *,
    expect_success: bool = False,  # noqa: PT028
    **settings: Any,
) -> ToolResponse:
    """Run one execution of ``tool`` through its server in-process and return the response.

    The tool's ``setup`` and ``cleanup`` run around it. With ``expect_success=True`` an error
    raises ``AssertionError`` whose message gives the code and every validation message.
    """
    with ToolTestClient(tool, **settings) as client:
        response = client.execute(input, config)
    if expect_success:
        __tracebackhide__ = True
        assert_success(response)
    return response


test_tool.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test for pytest
