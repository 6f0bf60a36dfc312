"""The answers a connection writes by itself: each a whole response that closes the connection."""

from __future__ import annotations

import json

import pytest

from _rawhttp import split_responses
from ai_spine_tools.exceptions import OverloadedError
from ai_spine_tools.server._refusals import (
    error_response,
    head_too_large,
    malformed,
    request_timeout,
    status_line,
)


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (200, b"HTTP/1.1 200 OK\r\n"),
        (431, b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        (599, b"HTTP/1.1 599 \r\n"),
    ],
)
def test_status_lines(status: int, line: bytes) -> None:
    assert status_line(status) == line


@pytest.mark.parametrize(
    ("response", "status", "code", "details"),
    [
        (head_too_large(16384), 431, "HEADERS_TOO_LARGE", {"max_header_bytes": 16384}),
        (request_timeout(2), 408, "REQUEST_TIMEOUT", {"read_timeout_s": 2}),
    ],
)
def test_refusals_carry_the_error_envelope(
    response: bytes, status: int, code: str, details: dict[str, int]
) -> None:
    (answer,), rest = split_responses(response)
    assert rest == b""
    assert answer.status == status
    assert answer.header("connection") == "close"
    assert answer.header("content-type") == "application/json"
    assert answer.header("x-content-type-options") == "nosniff"
    body = answer.json()
    assert (body["status"], body["error_code"], body["error_details"]) == ("error", code, details)
    assert body["timestamp"].endswith("Z")


def test_an_error_response_may_say_when_to_retry() -> None:
    (answer,), _ = split_responses(error_response(OverloadedError("busy"), retry_after_s=3))
    assert (answer.status, answer.header("retry-after")) == (503, "3")


def test_a_malformed_request_gets_uvicorns_400_with_our_headers() -> None:
    (answer,), _ = split_responses(malformed([(b"date", b"today")]))
    assert answer.status == 400
    assert answer.head.split(b"\r\n")[1] == b"date: today"
    assert answer.body == b"Invalid HTTP request received."
    assert answer.header("connection") == "close"
    assert answer.header("x-frame-options") == "DENY"
    assert json.dumps(answer.header("content-type")) == '"text/plain; charset=utf-8"'
