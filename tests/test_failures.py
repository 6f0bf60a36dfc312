"""An exception escaping execute: a connection error or a timeout of any client answers a
retryable 503 UPSTREAM_UNAVAILABLE or 504 UPSTREAM_TIMEOUT, anything else a 500 that hides it."""

from __future__ import annotations

import inspect
import json
import socket
import subprocess
import sys
from typing import Any

import aiohttp
import httpx
import pytest
import redis.exceptions

from ai_spine_tools import create_tool, integer_field
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.core._failures import upstream_kind
from ai_spine_tools.testing import AsyncToolTestClient
from serverproc import TOOLS, free_port


def _key() -> Any:
    from aiohttp.client_reqrep import ConnectionKey

    # The fields vary by release (and the class was a dataclass before it was a NamedTuple).
    fields: dict[str, Any] = dict.fromkeys(inspect.signature(ConnectionKey).parameters)
    fields.update(host="upstream.example", port=443, is_ssl=True, ssl=True)
    return ConnectionKey(**fields)


def _oserror() -> OSError:
    return OSError(111, "Connection refused")


RAISED: list[tuple[BaseException, str, int, bool]] = [
    (ConnectionRefusedError(111, "Connection refused"), "UPSTREAM_UNAVAILABLE", 503, True),
    (ConnectionResetError(104, "reset"), "UPSTREAM_UNAVAILABLE", 503, True),
    (socket.gaierror(-2, "Name or service not known"), "UPSTREAM_UNAVAILABLE", 503, True),
    (TimeoutError(), "UPSTREAM_TIMEOUT", 504, True),
    (aiohttp.ClientConnectorError(_key(), _oserror()), "UPSTREAM_UNAVAILABLE", 503, True),
    (aiohttp.ServerDisconnectedError(), "UPSTREAM_UNAVAILABLE", 503, True),
    (aiohttp.ServerTimeoutError("read timed out"), "UPSTREAM_TIMEOUT", 504, True),
    (aiohttp.ClientSSLError(_key(), _oserror()), "UPSTREAM_UNAVAILABLE", 503, False),
    (httpx.ConnectError("refused"), "UPSTREAM_UNAVAILABLE", 503, True),
    (httpx.RemoteProtocolError("peer closed"), "UPSTREAM_UNAVAILABLE", 503, True),
    (httpx.ReadTimeout("read timed out"), "UPSTREAM_TIMEOUT", 504, True),
    (httpx.ConnectTimeout("connect timed out"), "UPSTREAM_TIMEOUT", 504, True),
    (redis.exceptions.ConnectionError("down"), "UPSTREAM_UNAVAILABLE", 503, True),
    (redis.exceptions.TimeoutError("slow"), "UPSTREAM_TIMEOUT", 504, True),
    (ValueError("a bug"), "EXECUTION_ERROR", 500, False),
    (aiohttp.InvalidURL("nope"), "EXECUTION_ERROR", 500, False),
    (httpx.UnsupportedProtocol("ftp"), "EXECUTION_ERROR", 500, False),
]


def _raising(exc: BaseException) -> Any:
    async def execute() -> None:
        raise exc

    return create_tool(
        metadata={"name": "raiser", "version": "1.0.0", "description": "Raises"},
        execute=execute,
    )


@pytest.mark.parametrize(("exc", "code", "status", "retryable"), RAISED)
async def test_an_escaping_exception_answers_by_what_failed(
    exc: BaseException, code: str, status: int, retryable: bool
) -> None:
    async with AsyncToolTestClient(_raising(exc), ServerSettings()) as client:
        response = await client.execute({})
    message = response.error_message or ""
    assert (response.status_code, response.error_code) == (status, code)
    assert response.json["retryable"] is retryable
    assert not str(exc) or str(exc) not in message  # no internals with debug off
    if code != "EXECUTION_ERROR":
        assert type(exc).__name__ in message  # which client failed, without what it said


async def test_debug_adds_the_exception_text() -> None:
    exc = httpx.ConnectError("[Errno 111] Connection refused")
    async with AsyncToolTestClient(_raising(exc), ServerSettings(debug=True)) as client:
        response = await client.execute({})
    assert "Connection refused" in (response.error_message or "")


def test_optional_clients_are_looked_up_not_imported() -> None:
    code = (
        "import sys; from ai_spine_tools.core._failures import upstream_kind; "
        "print(upstream_kind(ValueError()), upstream_kind(ConnectionError()), "
        "[m for m in ('aiohttp', 'httpx', 'redis', 'asyncpg') if m in sys.modules])"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split(maxsplit=2)
    assert shown[:2] == ["None", "connection"]
    assert "httpx" not in shown[2]
    assert "redis" not in shown[2]


@pytest.fixture
def closed_port() -> int:
    return free_port()


async def test_a_real_refused_connection_through_aiohttp_is_a_retryable_503(
    closed_port: int,
) -> None:
    async def execute(input: dict[str, Any]) -> dict[str, Any]:
        url = f"http://127.0.0.1:{input['port']}/"
        async with aiohttp.ClientSession() as session, session.get(url) as answer:
            return {"status": answer.status}

    made = create_tool(
        metadata={"name": "direct", "version": "1.0.0", "description": "Calls aiohttp itself"},
        schema={"input": {"port": integer_field(required=True)}},
        execute=execute,
    )
    async with AsyncToolTestClient(made, ServerSettings()) as client:
        response = await client.execute({"port": closed_port})
    assert (response.status_code, response.error_code) == (503, "UPSTREAM_UNAVAILABLE")
    assert response.json["retryable"] is True


def test_upstream_kind_reads_classes_of_loaded_clients_only() -> None:
    assert upstream_kind(httpx.PoolTimeout("pool")) == "timeout"
    assert upstream_kind(RuntimeError()) is None


CALL = [sys.executable, "-m", "ai_spine_tools", "call", str(TOOLS / "unreachable.py")]


@pytest.mark.slow
def test_ai_spine_call_of_a_tool_whose_upstream_is_down_prints_the_503(closed_port: int) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts connections into its backlog, never answers: a read timeout
    silent = listener.getsockname()[1]
    try:
        down, slow = (
            subprocess.run(
                [*CALL, json.dumps(arguments)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            for arguments in ({"port": closed_port}, {"port": silent, "timeout": 0.2})
        )
    finally:
        listener.close()
    assert down.returncode == slow.returncode == 1
    down_body, slow_body = json.loads(down.stdout), json.loads(slow.stdout)
    assert (down_body["error_code"], down_body["retryable"]) == ("UPSTREAM_UNAVAILABLE", True)
    assert (slow_body["error_code"], slow_body["retryable"]) == ("UPSTREAM_TIMEOUT", True)
    assert "Traceback" not in down.stdout
