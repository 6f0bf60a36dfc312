"""``HTTPClient`` against a real upstream on loopback: what is sent, what comes back, and every
way a call fails (timeouts, refused and dropped connections, redirects, proxies), with retries
and breakers."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from ai_spine_tools import (
    CircuitBreaker,
    HTTPClient,
    HTTPTimeout,
    ToolContext,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    create_tool,
    retry,
)
from ai_spine_tools.outbound._http_client import HTTPSettings
from ai_spine_tools.testing import AsyncToolTestClient
from upstream import UpstreamAPI


def _dead_url() -> str:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/x?key=secret"


# -- what is sent ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "query"),
    [
        ({"q": "Madrid", "n": 3, "f": 1.5}, [["q", "Madrid"], ["n", "3"], ["f", "1.5"]]),
        (
            {"on": True, "off": False, "none": None},
            [["on", "true"], ["off", "false"], ["none", ""]],
        ),
        ({"tag": ["a", "b"]}, [["tag", "a"], ["tag", "b"]]),
        ([("k", "1"), ("k", "2")], [["k", "1"], ["k", "2"]]),
        ("raw=1&x=%C3%A9", [["raw", "1"], ["x", "é"]]),
        ({"city": "São Paulo & co"}, [["city", "São Paulo & co"]]),
    ],
)
async def test_query_parameters_are_sent_as_httpx_sends_them(
    http_client: HTTPClient, api: UpstreamAPI, params: Any, query: list[list[str]]
) -> None:
    echoed = (await http_client.get(f"{api.url}/echo", params=params)).json()
    assert echoed["query"] == query


async def test_bodies_json_content_and_form(http_client: HTTPClient, api: UpstreamAPI) -> None:
    sent = (await http_client.post(f"{api.url}/echo", json={"city": "Zürich", "n": [1, 2]})).json()
    assert sent["body"] == '{"city":"Zürich","n":[1,2]}'
    assert sent["headers"]["content-type"] == "application/json"
    raw = (await http_client.put(f"{api.url}/echo", content=b"\x00raw")).json()
    assert (raw["method"], raw["body"]) == ("PUT", "\x00raw")
    form = (await http_client.patch(f"{api.url}/echo", data={"a": "1", "b": "x y"})).json()
    assert form["body"] == "a=1&b=x+y"
    assert form["headers"]["content-type"] == "application/x-www-form-urlencoded"
    typed = await http_client.post(
        f"{api.url}/echo", json=[1], headers={"Content-Type": "application/vnd.x+json"}
    )
    assert typed.json()["headers"]["content-type"] == "application/vnd.x+json"


async def test_headers_auth_and_user_agent_are_sent(
    http_client: HTTPClient, api: UpstreamAPI
) -> None:
    sent = (
        await http_client.delete(f"{api.url}/echo", headers={"X-Trace": "t1"}, auth=("ana", "pw"))
    ).json()
    assert sent["method"] == "DELETE"
    assert sent["headers"]["x-trace"] == "t1"
    assert sent["headers"]["authorization"] == "Basic YW5hOnB3"
    assert sent["headers"]["user-agent"] == "ai-spine-tools"


async def test_no_cookie_is_carried_from_one_call_to_the_next(
    http_client: HTTPClient, api: UpstreamAPI
) -> None:
    first = await http_client.get(f"{api.url}/cookie")
    assert "session=" in first.headers["set-cookie"]
    second = await http_client.get(f"{api.url}/cookie")
    assert second.json() == {"cookie": None}  # one caller's session never reaches another's call


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"json": {}, "content": b"x"}, TypeError, "at most one of"),
        ({"timeout": 0}, ValueError, "timeout must be seconds > 0"),
        ({"timeout": "5"}, ValueError, "timeout must be seconds > 0"),
        ({"params": {"q": object()}}, TypeError, "query parameter values"),
        ({"files": {}}, TypeError, "files"),
    ],
)
async def test_bad_arguments_are_refused_before_sending(
    http_client: HTTPClient, api: UpstreamAPI, kwargs: dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        await http_client.post(f"{api.url}/echo", **kwargs)
    assert api.calls == 0


# -- failures ----------------------------------------------------------------------------------


async def test_a_slow_upstream_is_an_upstream_timeout(
    http_client: HTTPClient, api: UpstreamAPI
) -> None:
    with pytest.raises(UpstreamTimeoutError) as caught:
        await http_client.get(f"{api.url}/slow", params={"delay": "2"}, timeout=0.2)
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert (error.code, error.status, error.retryable) == ("UPSTREAM_TIMEOUT", 504, True)
    assert "GET 127.0.0.1" in error.message
    assert "delay" not in error.message  # no query in messages


async def test_an_httptimeout_bounds_each_read(http_client: HTTPClient, api: UpstreamAPI) -> None:
    with pytest.raises(UpstreamTimeoutError):
        await http_client.get(f"{api.url}/slow?delay=2", timeout=HTTPTimeout(total=None, read=0.2))
    assert (await http_client.get(f"{api.url}/slow?delay=0.05", timeout=None)).json() == {
        "slow": True
    }


async def test_an_unreachable_upstream_is_a_connection_error(http_client: HTTPClient) -> None:
    with pytest.raises(UpstreamConnectionError) as caught:
        await http_client.get(_dead_url())
    error = caught.value
    assert isinstance(error, ConnectionError)
    assert (error.code, error.status, error.retryable) == ("UPSTREAM_UNAVAILABLE", 503, True)
    assert "secret" not in error.message


async def test_a_body_cut_short_is_a_connection_error(
    http_client: HTTPClient, api: UpstreamAPI
) -> None:
    with pytest.raises(UpstreamConnectionError, match=r"GET 127\.0\.0\.1:[0-9]+/cut failed"):
        await http_client.get(f"{api.url}/cut")
    assert (await http_client.get(f"{api.url}/json")).status_code == 200  # the pool still serves


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/x", "http://"])
async def test_an_invalid_url_is_an_upstream_error(http_client: HTTPClient, url: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        await http_client.get(url)
    assert not caught.value.retryable
    assert http_client.stats()["in_use"] == 0


async def test_redirects_are_followed_up_to_the_limit(api: UpstreamAPI) -> None:
    async with HTTPClient(HTTPSettings(max_redirects=3)) as client:
        followed = await client.get(f"{api.url}/redirect/3")
        assert (followed.status_code, followed.url) == (200, f"{api.url}/json")
        with pytest.raises(UpstreamError, match="more than 3 redirects"):
            await client.get(f"{api.url}/redirect/4")
        kept = await client.get(f"{api.url}/redirect/1", follow_redirects=False)
        assert (kept.status_code, kept.headers["location"]) == (302, "/json")


async def test_proxies_come_from_the_environment(
    api: UpstreamAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With HTTP_PROXY set, requests go to the proxy (an absolute URI); NO_PROXY is honoured."""
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n"))
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nproxied")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    try:
        async with HTTPClient() as client:
            through = await client.get("http://upstream.invalid/weather?q=1")
            direct = await client.get(f"{api.url}/json")
        assert through.text == "proxied"
        assert seen == [b"GET http://upstream.invalid/weather?q=1 HTTP/1.1\r\n"]
        assert direct.json()["city"] == "Madrid"  # NO_PROXY: straight to the upstream
    finally:
        server.close()
        await server.wait_closed()


# -- with retries and breakers -----------------------------------------------------------------


async def test_retry_mends_a_flaky_upstream(http_client: HTTPClient, api: UpstreamAPI) -> None:
    api.failures = 2

    @retry(attempts=3, base_delay=0.01)
    async def fetch() -> Any:
        response = await http_client.get(f"{api.url}/flaky")
        return response.raise_for_status().json()

    assert await fetch() == {"ok": True, "calls": 3}


async def test_a_breaker_counts_upstream_failures_not_its_answers(
    http_client: HTTPClient, api: UpstreamAPI
) -> None:
    breaker = CircuitBreaker(2, 60.0, name="upstream")
    await _fail(breaker, http_client, f"{api.url}/status/404", times=3)
    after_answers = breaker.state  # a 404 is the upstream's answer: the circuit stays closed
    await _fail(breaker, http_client, f"{api.url}/status/502", times=2)
    assert (after_answers, breaker.state) == ("closed", "open")


async def _fail(breaker: CircuitBreaker, http_client: HTTPClient, url: str, *, times: int) -> None:
    for _ in range(times):
        with pytest.raises(UpstreamStatusError):
            async with breaker:
                (await http_client.get(url)).raise_for_status()


async def test_an_upstream_failure_reaches_the_caller_as_a_retryable_502(api: UpstreamAPI) -> None:
    async def execute(
        input: dict[str, Any], config: dict[str, Any], context: ToolContext
    ) -> dict[str, Any]:
        response = await context.http.get(f"{api.url}/status/503", params={"key": "secret"})
        return dict(response.raise_for_status().json())

    tool = create_tool(
        metadata={"name": "caller", "version": "1.0.0", "description": "x"}, execute=execute
    )
    async with AsyncToolTestClient(tool) as test_client:
        response = await test_client.post("/api/execute", json={"input_data": {}})
    body = response.json
    assert response.status_code == 502
    assert body["error_code"] == "UPSTREAM_ERROR"
    assert body["retryable"] is True
    assert body["retry_after_ms"] == 2000
    assert body["error_details"] == {"upstream_status": 503}
    assert "secret" not in response.text
