"""The tool's own tests, against a local stand-in for the forecast API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from my_tool.tool import tool

from ai_spine_tools.testing import ToolTestClient, assert_success, invalid_inputs


class Upstream(BaseHTTPRequestHandler):
    """Answers like the forecast API; fails while ``failing`` is set."""

    failing = False

    def do_GET(self) -> None:
        if Upstream.failing:
            self.send_response(503)
            self.end_headers()
            return
        body = json.dumps({"current": {"temperature_2m": 21.5, "wind_speed_10m": 3.2}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    tool.configure(api_url=f"http://127.0.0.1:{server.server_address[1]}/v1/forecast")
    yield "ok"
    server.shutdown()
    Upstream.failing = False


def test_current_weather_comes_from_the_api(upstream: str) -> None:
    with ToolTestClient(tool) as client:
        response = client.execute({"latitude": 40.42, "longitude": -3.7})
    assert_success(response)
    assert response.output_data == {
        "latitude": 40.42,
        "longitude": -3.7,
        "temperature_c": 21.5,
        "wind_speed_kmh": 3.2,
    }


def test_a_failing_api_is_a_retryable_upstream_error(upstream: str) -> None:
    Upstream.failing = True
    with ToolTestClient(tool) as client:
        response = client.execute({"latitude": 1, "longitude": 2})
    assert response.status_code == 502
    assert response.json["error_code"] == "UPSTREAM_ERROR"
    assert response.json["retryable"] is True


def test_every_broken_constraint_is_refused(upstream: str) -> None:
    with ToolTestClient(tool) as client:
        for case in invalid_inputs(tool):
            response = client.execute(case.input)
            assert response.status_code == 400, case.description
