"""``HTTPStub``: context.http answered by canned responses, a handler, or a real local server,
as a user writes the tests of a tool that calls an API."""

from __future__ import annotations

from typing import Any

import pytest

from ai_spine_tools import ToolContext, create_tool, string_field
from ai_spine_tools.testing import (
    HTTPStub,
    StubRequest,
    StubResponse,
    ToolTestClient,
    assert_success,
)
from upstream import UpstreamAPI

API = "https://weather.example.com/v1/current"


async def current(input: dict[str, Any], context: ToolContext) -> dict[str, Any]:
    response = await context.http.get(API, params={"city": input["city"], "units": "metric"})
    response.raise_for_status()
    payload: dict[str, Any] = response.json()
    return payload


async def report(input: dict[str, Any], context: ToolContext) -> dict[str, Any]:
    response = await context.http.post(f"{API}/reports", json={"city": input["city"]})
    return {"status": response.status_code, "echo": response.json()}


weather = create_tool(
    metadata={"name": "stubbed-weather", "version": "1.0.0", "description": "calls an API"},
    schema={"input": {"city": string_field(required=True, max_length=50)}},
    execute=current,
)
reporter = create_tool(
    metadata={"name": "stubbed-reporter", "version": "1.0.0", "description": "posts JSON"},
    schema={"input": {"city": string_field(required=True, max_length=50)}},
    execute=report,
)


def test_a_canned_json_answer_reaches_execute_and_the_request_is_recorded() -> None:
    stub = HTTPStub().get(API, json={"temperature": 21.5})
    with ToolTestClient(weather, http=stub) as client:
        response = client.execute({"city": "Madrid"})
    assert assert_success(response) == {"temperature": 21.5}
    [sent] = stub.requests
    assert (sent.method, sent.path, sent.query) == (
        "GET",
        "/v1/current",
        {"city": "Madrid", "units": "metric"},
    )


def test_routes_with_times_answer_in_turn() -> None:
    stub = HTTPStub().get(API, status=503, times=1).get(API, json={"temperature": 3})
    with ToolTestClient(weather, http=stub) as client:
        first = client.execute({"city": "Oslo"})
        second = client.execute({"city": "Oslo"})
    assert first.status_code == 502
    assert first.error_code == "UPSTREAM_ERROR"
    assert first.error_details["upstream_status"] == 503
    assert assert_success(second) == {"temperature": 3}


def test_a_route_with_a_query_matches_only_that_query() -> None:
    stub = HTTPStub().get(f"{API}?city=Oslo", json={"temperature": -2})
    with ToolTestClient(weather, http=stub) as client:
        assert assert_success(client.execute({"city": "Oslo"})) == {"temperature": -2}
        assert client.execute({"city": "Rome"}).error_code == "UPSTREAM_UNAVAILABLE"


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (TimeoutError(), "UPSTREAM_TIMEOUT", 504),
        (ConnectionResetError(), "UPSTREAM_UNAVAILABLE", 503),
    ],
)
def test_a_route_can_fail_as_the_network_does(error: BaseException, code: str, status: int) -> None:
    stub = HTTPStub().get(API, error=error)
    with ToolTestClient(weather, http=stub) as client:
        response = client.execute({"city": "Oslo"})
    assert (response.error_code, response.status_code) == (code, status)


def test_an_unanswered_request_fails_naming_itself() -> None:
    stub = HTTPStub()
    with ToolTestClient(weather, http=stub, debug=True) as client:
        response = client.execute({"city": "Oslo"})
    assert response.error_code == "UPSTREAM_UNAVAILABLE"
    assert "HTTPStub has no answer" in (response.error_message or "")
    assert len(stub.requests) == 1


def test_a_handler_answers_and_reads_the_json_body() -> None:
    async def handler(request: StubRequest) -> StubResponse:
        return StubResponse(status=201, json={"got": request.json(), "method": request.method})

    with ToolTestClient(reporter, http=handler) as client:
        response = client.execute({"city": "Lima"})
        assert client.http is not None
        assert client.http.requests[0].headers["content-type"] == "application/json"
    assert assert_success(response) == {
        "status": 201,
        "echo": {"got": {"city": "Lima"}, "method": "POST"},
    }


async def test_forward_sends_requests_to_a_real_local_server(api: UpstreamAPI) -> None:
    stub = HTTPStub().forward("https://weather.example.com/v1/current", to=f"{api.url}/echo")
    async with ToolTestClient(weather, http=stub) as client:
        response = await client.execute({"city": "Quito"})
    echoed = assert_success(response)
    assert echoed["path"] == "/echo"
    assert ["city", "Quito"] in echoed["query"]
    assert len(stub.requests) == 1


async def test_the_stub_is_gone_once_the_client_closes(api: UpstreamAPI) -> None:
    async def direct(input: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        response = await context.http.get(f"{api.url}/json")
        return {"status": response.status_code}

    tool = create_tool(
        metadata={"name": "direct", "version": "1.0.0", "description": "calls the upstream"},
        schema={"input": {}},
        execute=direct,
    )
    async with ToolTestClient(tool, http=HTTPStub().get(f"{api.url}/json", status=418)) as c:
        assert assert_success(await c.execute({})) == {"status": 418}
    async with ToolTestClient(tool) as client:  # the real upstream again
        assert assert_success(await client.execute({})) == {"status": 200}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda stub: stub.get("/no/scheme", json={}), "whole URL"),
        (lambda stub: stub.get(API, times=0), "times must be at least 1"),
        (lambda stub: stub.forward("weather.example.com", to="http://127.0.0.1:1"), "whole URLs"),
    ],
)
def test_bad_routes_are_refused(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(HTTPStub())


def test_http_takes_a_stub_or_a_handler() -> None:
    with pytest.raises(TypeError, match="HTTPStub or a handler"):
        ToolTestClient(weather, http=42)  # type: ignore[arg-type]


def test_a_handler_returning_something_else_is_an_error_naming_it() -> None:
    with ToolTestClient(weather, http=lambda request: {"temperature": 1}, debug=True) as client:
        response = client.execute({"city": "Oslo"})
    assert response.error_code == "EXECUTION_ERROR"
    assert "must return a StubResponse" in (response.error_message or "")


async def test_stream_is_refused_for_urls_the_stub_answers_itself() -> None:
    client = HTTPStub().get(API, json={}).client()
    with pytest.raises(TypeError, match="stream\\(\\) works only"):
        client.stream("GET", API)
    await client.aclose()
