"""Server settings from the environment, validated at start-up with messages naming the variable."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from ai_spine_tools.exceptions import ServerConfigurationError

__all__ = ["DOCUMENTED_SETTINGS", "ServerSettings"]

T = TypeVar("T")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
LogFormat = Literal["json", "text"]


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """How the tool server runs. ``from_env()`` reads each from its environment variable.

    Attributes (variable, default):
        host (``HOST``, ``0.0.0.0``), port (``PORT``, 3000),
        workers (``AI_SPINE_WORKER_THREADS``, 1): worker processes sharing the port,
        request_timeout_ms (``AI_SPINE_REQUEST_TIMEOUT``, 25000): execution deadline,
        max_body_bytes (``AI_SPINE_MAX_BODY_BYTES``, 10 MiB): larger bodies get 413,
        api_keys (``AI_SPINE_API_KEYS``, comma list) and require_auth (``AI_SPINE_REQUIRE_AUTH``),
        rate_limit (``AI_SPINE_RATE_LIMIT``, e.g. ``100/minute``), rate_limit_by
        (``AI_SPINE_RATE_LIMIT_BY``: ``key`` or ``ip``),
        compression (``AI_SPINE_ENABLE_COMPRESSION``), cors_origins (``AI_SPINE_CORS_ORIGINS``),
        errors_as_200 (``AI_SPINE_ERRORS_AS_200``): execute errors answer HTTP 200,
        shutdown_grace_s (``AI_SPINE_SHUTDOWN_GRACE``, 30): how long in-flight requests may finish,
        debug (``AI_SPINE_DEBUG``): error messages include exception text,
        log_level (``AI_SPINE_LOG_LEVEL``, info), log_format (``AI_SPINE_LOG_FORMAT``, text),
        max_connections (``AI_SPINE_MAX_CONNECTIONS``, 100): outbound connection pool size,
        cache_ttl_s (``AI_SPINE_CACHE_TTL``, 300).
    """

    host: str = "0.0.0.0"
    port: int = 3000
    workers: int = 1
    request_timeout_ms: int = 25_000
    max_body_bytes: int = 10 * 1024 * 1024
    api_keys: tuple[str, ...] = ()
    require_auth: bool = False
    rate_limit: str | None = None
    rate_limit_by: Literal["key", "ip"] | None = None
    compression: bool = False
    cors_origins: tuple[str, ...] = ()
    errors_as_200: bool = False
    shutdown_grace_s: float = 30.0
    debug: bool = False
    log_level: str = "info"
    log_format: LogFormat = "text"
    max_connections: int = 100
    cache_ttl_s: int = 300

    def __post_init__(self) -> None:
        if self.require_auth and not self.api_keys:
            raise ServerConfigurationError(
                "AI_SPINE_REQUIRE_AUTH is on but AI_SPINE_API_KEYS lists no key"
            )
        if self.rate_limit is not None:
            _parse_rate(self.rate_limit, "AI_SPINE_RATE_LIMIT")

    @property
    def auth_enabled(self) -> bool:
        """True when requests to protected routes must carry an API key."""
        return bool(self.api_keys)

    def replace(self, **changes: Any) -> ServerSettings:
        """Return a copy with ``changes`` applied (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        """Read the settings from ``environ`` (default ``os.environ``)."""
        env = os.environ if environ is None else environ
        read = _Reader(env)
        return cls(
            host=read("HOST", str, cls.host),
            port=read("PORT", _int_between(1, 65535), cls.port),
            workers=read("AI_SPINE_WORKER_THREADS", _int_between(1, 512), cls.workers),
            request_timeout_ms=read(
                "AI_SPINE_REQUEST_TIMEOUT", _int_between(1, 86_400_000), cls.request_timeout_ms
            ),
            max_body_bytes=read(
                "AI_SPINE_MAX_BODY_BYTES", _int_between(1, 1 << 34), cls.max_body_bytes
            ),
            api_keys=read("AI_SPINE_API_KEYS", _keys, ()),
            require_auth=read("AI_SPINE_REQUIRE_AUTH", _bool, False),
            rate_limit=read("AI_SPINE_RATE_LIMIT", _rate, None),
            rate_limit_by=read("AI_SPINE_RATE_LIMIT_BY", _choice("key", "ip"), None),
            compression=read("AI_SPINE_ENABLE_COMPRESSION", _bool, False),
            cors_origins=read("AI_SPINE_CORS_ORIGINS", _keys, ()),
            errors_as_200=read("AI_SPINE_ERRORS_AS_200", _bool, False),
            shutdown_grace_s=read("AI_SPINE_SHUTDOWN_GRACE", _positive_float, cls.shutdown_grace_s),
            debug=read("AI_SPINE_DEBUG", _bool, False),
            log_level=read(
                "AI_SPINE_LOG_LEVEL",
                _choice("debug", "info", "warning", "error", "critical"),
                "info",
            ),
            log_format=read("AI_SPINE_LOG_FORMAT", _choice("json", "text"), "text"),
            max_connections=read(
                "AI_SPINE_MAX_CONNECTIONS", _int_between(1, 100_000), cls.max_connections
            ),
            cache_ttl_s=read("AI_SPINE_CACHE_TTL", _int_between(0, 31_536_000), cls.cache_ttl_s),
        )


class _Reader:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def __call__(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self._environ.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except ValueError as exc:
            raise ServerConfigurationError(
                f"Environment variable {name} is invalid: {exc} (got {raw[:60]!r})",
                details={"variable": name},
            ) from None


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}")
        return value

    return parse


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number") from None
    if not 0 <= value < 1e9:
        raise ValueError("expected a non-negative number")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


def _keys(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _choice(*choices: str) -> Callable[[str], Any]:
    def parse(raw: str) -> str:
        lowered = raw.lower()
        if lowered not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return lowered

    return parse


def _rate(raw: str) -> str:
    _parse_rate(raw, None)
    return raw


def _parse_rate(raw: str, variable: str | None) -> Any:
    from limits import parse

    try:
        return parse(raw)
    except ValueError:
        message = "expected a rate such as '100/minute' or '10 per second'"
        if variable is None:
            raise ValueError(message) from None
        raise ServerConfigurationError(
            f"{variable} is invalid: {message} (got {raw[:60]!r})", details={"variable": variable}
        ) from None


DOCUMENTED_SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("PORT", "3000", "Port to listen on"),
    ("HOST", "0.0.0.0", "Interface to listen on"),
    ("AI_SPINE_WORKER_THREADS", "1", "Worker processes sharing the port"),
    ("AI_SPINE_REQUEST_TIMEOUT", "25000", "Execution deadline in milliseconds"),
    ("AI_SPINE_MAX_BODY_BYTES", "10485760", "Largest accepted request body in bytes"),
    ("AI_SPINE_API_KEYS", "", "Comma-separated API keys; when set, executions need one"),
    ("AI_SPINE_REQUIRE_AUTH", "false", "Refuse to start without API keys"),
    ("AI_SPINE_RATE_LIMIT", "", "Requests allowed per caller, e.g. 100/minute"),
    ("AI_SPINE_RATE_LIMIT_BY", "key", "Count requests per API key or per client IP (key|ip)"),
    ("AI_SPINE_ENABLE_COMPRESSION", "false", "Gzip responses for clients that accept it"),
    ("AI_SPINE_CORS_ORIGINS", "", "Comma-separated origins allowed by CORS"),
    ("AI_SPINE_ERRORS_AS_200", "false", "Answer execute errors with HTTP 200 (same body)"),
    ("AI_SPINE_SHUTDOWN_GRACE", "30", "Seconds in-flight requests get to finish on shutdown"),
    ("AI_SPINE_DEBUG", "false", "Include exception text in error messages"),
    ("AI_SPINE_LOG_LEVEL", "info", "debug, info, warning, error or critical"),
    ("AI_SPINE_LOG_FORMAT", "text", "json or text"),
    ("AI_SPINE_MAX_CONNECTIONS", "100", "Size of the outbound HTTP connection pool"),
    ("AI_SPINE_CACHE_TTL", "300", "Default time-to-live of cached results, in seconds"),
)
"""Every environment variable the server reads: name, default and meaning (for .env.example)."""
