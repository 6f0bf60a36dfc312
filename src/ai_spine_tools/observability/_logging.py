"""Logs as text or as one JSON object a line (``AI_SPINE_LOG_FORMAT``), and the execution line.

``ai-spine serve`` configures uvicorn's loggers and the SDK's (``ai_spine_tools.*``) on the same
handlers; with ``json`` every record, uvicorn's access log included, is written as::

    {"timestamp": "2026-11-29T08:21:32.220Z", "level": "info", "logger": "ai_spine_tools.server",
     "message": "execution 4f0c... success in 0.412 ms", "execution_id": "4f0c...", ...}

With ``AI_SPINE_LOG_REQUESTS=true`` each execution adds one info line with ``tool``,
``execution_id``, ``request_id``, ``status``, ``code``, ``duration_ms`` and ``key_id`` (the id
derived from the API key, never the key). Input and config are never logged.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import msgspec

from ai_spine_tools.observability._timestamps import iso_timestamp

__all__ = ["JSONFormatter", "log_config", "log_execution"]

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", None, None).__dict__,
        "message",
        "asctime",
        "color_message",  # uvicorn's coloured copy of the message
        "taskName",
    }
)
_encoder = msgspec.json.Encoder(enc_hook=str)


class JSONFormatter(logging.Formatter):
    """Formats a record as one JSON object: timestamp, level, logger, message and its extras."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "timestamp": iso_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            body.update(client=args[0], method=args[1], path=args[2], status=args[4])
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            body["stack"] = self.formatStack(record.stack_info)
        return _encoder.encode(body).decode()


def log_config(level: str, log_format: str) -> dict[str, Any]:
    """uvicorn's logging config, with the SDK's loggers on its handler, in ``log_format``."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["ai_spine_tools"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    if log_format == "json":
        for name in ("default", "access"):
            config["formatters"][name] = {"()": f"{__name__}.JSONFormatter"}
    return config


def log_execution(
    logger: logging.Logger,
    level: int,
    *,
    tool: str,
    execution_id: str | None,
    request_id: str | None,
    code: str | None,
    duration_ms: float,
    key_id: str | None,
) -> None:
    """Log one finished execution (ids, outcome and duration; never input, config or keys)."""
    status = "error" if code else "success"
    logger.log(
        level,
        "execution %s %s%s in %.3f ms (request %s, caller %s)",
        execution_id,
        status,
        f" {code}" if code else "",
        duration_ms,
        request_id,
        key_id or "anonymous",
        extra={
            "tool": tool,
            "execution_id": execution_id,
            "request_id": request_id,
            "status": status,
            "code": code,
            "duration_ms": round(duration_ms, 3),
            "key_id": key_id,
        },
    )
