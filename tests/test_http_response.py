"""``HTTPResponse`` and ``StreamedHTTPResponse``: reading an upstream's answer, whole or as it
arrives, and ``raise_for_status``."""

from __future__ import annotations

import pytest

from ai_spine_tools import (
    HTTPClient,
    UpstreamConnectionError,
    UpstreamDecodeError,
    UpstreamStatusError,
)
from ai_spine_tools.outbound._http_response import retry_after_ms
from upstream import UpstreamAPI


async def test_a_response_reads_like_httpx(http_client: HTTPClient, api: UpstreamAPI) -> None:
    response = await http_client.get(f"{api.url}/json")
    assert (response.status_code, response.reason_phrase) == (200, "OK")
    assert response.headers["Content-Type"] == response.headers["content-type"]
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"city": "Madrid", "temperature": 21.5}
    assert response.content == b'{"city": "Madrid", "temperature": 21.5}'
    assert response.text == '{"city": "Madrid", "temperature": 21.5}'
    assert response.url == f"{api.url}/json"
    assert response.is_success
    assert not response.is_error
    assert response.raise_for_status() is response
    assert repr(response) == "<HTTPResponse [200 OK]>"


async def test_text_is_decoded_with_the_charset_the_upstream_names(
    http_client: HTTPClient, api: UpstreamAPI
) -> None:
    response = await http_client.get(f"{api.url}/text")
    assert response.encoding == "iso8859-1"
    assert response.content == "café".encode("latin-1")
    assert response.text == "café"


async def test_json_of_a_body_that_is_not_json_names_the_call(
    http_client: HTTPClient, api: UpstreamAPI
) -> None:
    response = await http_client.get(f"{api.url}/notjson?token=secret")
    with pytest.raises(UpstreamDecodeError, match=r"GET 127\.0\.0\.1:\d+/notjson answered 200"):
        response.json()
    with pytest.raises(ValueError, match="not JSON") as caught:  # the usual idiom works
        response.json()
    assert "secret" not in str(caught.value)
    assert caught.value.response is response  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("status", "retryable", "retry_after"),
    [
        (400, False, None),
        (404, False, None),
        (429, True, None),
        (500, True, None),
        (503, True, 2000),
        (504, True, None),
    ],
)
async def test_raise_for_status_names_the_status_and_whether_to_retry(
    http_client: HTTPClient, api: UpstreamAPI, status: int, retryable: bool, retry_after: int | None
) -> None:
    response = await http_client.get(f"{api.url}/status/{status}")
    assert response.is_error
    with pytest.raises(UpstreamStatusError) as caught:
        response.raise_for_status()
    error = caught.value
    assert error.status_code == status
    assert error.response is response
    assert (error.retryable, error.retry_after_ms) == (retryable, retry_after)
    assert (error.code, error.status) == ("UPSTREAM_ERROR", 502)
    assert error.details == {"upstream_status": status}
    assert error.message.endswith(f"/status/{status} answered {status} {response.reason_phrase}")


@pytest.mark.parametrize(
    ("header", "expected"), [("2", 2000), ("0", 0), ("", None), ("soon", None), ("-1", None)]
)
def test_retry_after_is_read_in_seconds(header: str, expected: int | None) -> None:
    assert retry_after_ms({"retry-after": header} if header else {}) == expected


async def test_a_streamed_answer_is_read_as_it_arrives(
    http_client: HTTPClient, api: UpstreamAPI
) -> None:
    async with http_client.stream("GET", f"{api.url}/lines") as response:
        assert response.raise_for_status() is response
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        lines = [line async for line in response.aiter_lines()]
    assert lines == ["one", "two", "three"]
    async with http_client.stream("GET", f"{api.url}/lines") as response:
        chunks = [chunk async for chunk in response.aiter_bytes(chunk_size=3)]
    assert b"".join(chunks) == b"one\ntwo\r\nthree"
    assert max(map(len, chunks)) <= 3
    async with http_client.stream("GET", f"{api.url}/json") as response:
        assert await response.aread() == b'{"city": "Madrid", "temperature": 21.5}'
    assert http_client.stats()["in_use"] == 0


async def test_a_stream_cut_short_is_a_connection_error(
    http_client: HTTPClient, api: UpstreamAPI
) -> None:
    async with http_client.stream("GET", f"{api.url}/cut") as response:
        with pytest.raises(UpstreamConnectionError, match="/cut failed"):
            await response.aread()
    assert http_client.stats()["in_use"] == 0


async def test_leaving_a_stream_unread_closes_its_connection(
    http_client: HTTPClient, api: UpstreamAPI
) -> None:
    async with http_client.stream("GET", f"{api.url}/lines") as response:
        assert response.status_code == 200
    assert http_client.stats()["in_use"] == 0
    assert (await http_client.get(f"{api.url}/json")).status_code == 200
