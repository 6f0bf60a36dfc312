"""The tool's own tests: context.http answered by a stub, then by a local server; no internet."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from my_tool.tool import tool

from ai_spine_tools.testing import (
    HTTPStub,
    StubRequest,
    StubResponse,
    ToolTestClient,
    assert_success,
    invalid_inputs,
)

API = "https://api.open-meteo.com/v1/forecast"  # the default WEATHER_API_URL
WEATHER = {"current": {"temperature_2m": 21.5, "wind_speed_10m": 3.2}}


@pytest.fixture(autouse=True)
def api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests stub the default API, whatever WEATHER_API_URL the shell has."""
    monkeypatch.setenv("WEATHER_API_URL", API)


def test_current_weather_comes_from_the_api() -> None:
    stub = HTTPStub().get(API, json=WEATHER)
    with ToolTestClient(tool, http=stub) as client:
        response = client.execute({"latitude": 40.42, "longitude": -3.7})
    assert_success(response)
    assert response.output_data == {
        "latitude": 40.42,
        "longitude": -3.7,
        "temperature_c": 21.5,
        "wind_speed_kmh": 3.2,
    }
    assert stub.requests[0].query["latitude"] == "40.42"


def test_a_failing_api_is_retried_then_a_retryable_upstream_error() -> None:
    stub = HTTPStub().get(API, status=503)
    with ToolTestClient(tool, http=stub) as client:
        response = client.execute({"latitude": 1, "longitude": 2})
    assert response.status_code == 502
    assert response.error_code == "UPSTREAM_ERROR"
    assert response.json["retryable"] is True
    assert len(stub.requests) == 3  # retry(attempts=3)


def test_one_failure_then_success_is_retried() -> None:
    stub = HTTPStub().get(API, status=503, times=1).get(API, json=WEATHER)
    with ToolTestClient(tool, http=stub) as client:
        assert_success(client.execute({"latitude": 1, "longitude": 2}))
    assert len(stub.requests) == 2


def test_a_handler_sees_each_request() -> None:
    def answer(request: StubRequest) -> StubResponse:
        temperature = float(request.query["latitude"])  # echo it back, to see it arrived
        return StubResponse(json={"current": {"temperature_2m": temperature}})

    with ToolTestClient(tool, http=answer) as client:
        response = client.execute({"latitude": 12.5, "longitude": 0})
    assert response.output_data is not None
    assert response.output_data["temperature_c"] == 12.5


class Upstream(BaseHTTPRequestHandler):
    """A local stand-in for the forecast API."""

    def do_GET(self) -> None:
        body = json.dumps(WEATHER).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_api_can_be_a_real_local_server(local_api: str) -> None:
    stub = HTTPStub().forward("https://api.open-meteo.com", to=local_api)
    with ToolTestClient(tool, http=stub) as client:
        response = client.execute({"latitude": 40.42, "longitude": -3.7})
    assert_success(response)
    assert response.output_data is not None
    assert response.output_data["temperature_c"] == 21.5


def test_every_broken_constraint_is_refused() -> None:
    with ToolTestClient(tool) as client:
        for case in invalid_inputs(tool):
            response = client.execute(case.input)
            assert response.status_code == 400, case.description
