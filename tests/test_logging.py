"""Logs: JSON or text, one line per execution when asked (ids, outcome, duration, key id), and
never a secret."""

from __future__ import annotations

import json
import logging
import sys

import httpx
import pytest

from ai_spine_tools import Tool
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.observability._logging import JSONFormatter, log_config
from ai_spine_tools.testing import AsyncToolTestClient
from serverproc import TOOLS, running_server
from tools import observed

KEY = "log-key-0123456789abcdef"
PASSWORD = "hunter2-not-to-be-logged"


def record(name: str, message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.INFO, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_json_lines_carry_message_and_extras() -> None:
    line = JSONFormatter().format(
        record("ai_spine_tools.server", "hello %s", "world", execution_id="e-1", duration_ms=1.5)
    )
    body = json.loads(line)
    assert body["message"] == "hello world"
    assert body["level"] == "info"
    assert body["logger"] == "ai_spine_tools.server"
    assert body["execution_id"] == "e-1"
    assert body["duration_ms"] == 1.5
    assert body["timestamp"].endswith("Z")
    assert "args" not in body
    assert "\n" not in line


def test_json_lines_take_uvicorns_access_fields_and_exceptions() -> None:
    access = record(
        "uvicorn.access", '%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", "/health", "1.1", 200
    )
    body = json.loads(JSONFormatter().format(access))
    assert body["message"] == '1.2.3.4:5 - "GET /health HTTP/1.1" 200'
    assert (body["method"], body["path"], body["status"]) == ("GET", "/health", 200)
    try:
        raise ValueError("bad")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    assert "ValueError: bad" in json.loads(JSONFormatter().format(failed))["exception"]


@pytest.mark.parametrize(
    ("log_format", "formatter"),
    [
        ("json", "ai_spine_tools.observability._logging.JSONFormatter"),
        ("text", "uvicorn.logging.DefaultFormatter"),
    ],
)
def test_log_config_puts_every_logger_in_one_format(log_format: str, formatter: str) -> None:
    config = log_config("info", log_format)
    assert config["formatters"]["default"]["()"] == formatter
    assert config["loggers"]["ai_spine_tools"]["level"] == "INFO"
    if log_format == "json":
        assert config["formatters"]["access"]["()"] == formatter


@pytest.fixture
def tool() -> Tool:
    return observed.make_tool()


async def test_each_execution_logs_one_line_without_secrets(
    tool: Tool, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ServerSettings(log_requests=True, api_keys=(KEY,))
    with caplog.at_level(logging.INFO, logger="ai_spine_tools.server"):
        async with AsyncToolTestClient(tool, settings, headers={"x-api-key": KEY}) as client:
            ok = await client.execute(
                {"sleep_ms": 0}, config={"password": PASSWORD}, headers={"x-request-id": "r-1"}
            )
            failed = await client.execute({"fail_code": "UPSTREAM_DOWN"})
    lines = [r for r in caplog.records if r.name == "ai_spine_tools.server"]
    assert len(lines) == 2
    first, second = lines
    assert first.levelno == logging.INFO
    assert first.__dict__["execution_id"] == ok.execution_id
    assert first.__dict__["request_id"] == "r-1"
    assert first.__dict__["status"] == "success"
    assert first.__dict__["code"] is None
    assert first.__dict__["duration_ms"] >= 0
    assert first.__dict__["key_id"].startswith("key_")
    assert first.__dict__["tool"] == "observed"
    assert second.__dict__["code"] == "UPSTREAM_DOWN"
    assert second.__dict__["execution_id"] == failed.execution_id
    for line in lines:
        shown = JSONFormatter().format(line) + line.getMessage()
        assert PASSWORD not in shown
        assert KEY not in shown


async def test_no_execution_lines_unless_asked(
    tool: Tool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ai_spine_tools.server"):
        async with AsyncToolTestClient(tool, ServerSettings()) as client:
            await client.execute({})
    assert not [r for r in caplog.records if r.name == "ai_spine_tools.server"]


@pytest.mark.slow
def test_a_server_logs_json_lines() -> None:
    env = {"AI_SPINE_LOG_FORMAT": "json", "AI_SPINE_LOG_REQUESTS": "true", "AI_SPINE_API_KEYS": KEY}
    with running_server(TOOLS / "observed.py", env=env) as server:
        reply = httpx.post(
            f"{server.url}/api/execute",
            json={"input_data": {"rows": 3}, "config": {"password": PASSWORD}},
            headers={"x-api-key": KEY},
        ).json()
        server.stop()
        output = server.output()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    executions = [line for line in lines if line.get("execution_id") == reply["execution_id"]]
    assert len(executions) == 1
    assert executions[0]["status"] == "success"
    assert executions[0]["level"] == "info"
    assert executions[0]["key_id"].startswith("key_")
    assert PASSWORD not in output
    assert KEY not in output
