"""Server settings from the environment, validated at start-up with messages naming the variable."""

from __future__ import annotations

import dataclasses
import difflib
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from ai_spine_tools._variables import DEPRECATED_SETTINGS
from ai_spine_tools.exceptions import ServerConfigurationError, ToolDefinitionError

__all__ = [
    "ServerSettings",
    "process_workers_from_env",
]

T = TypeVar("T")
PUBLIC_ROUTE_CHOICES = ("/metrics", "/schema", "/dashboard")
"""Routes that need auth when it is on, unless listed in ``AI_SPINE_PUBLIC_ROUTES``."""
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
"""The default Content-Security-Policy of HTML pages (``AI_SPINE_CSP`` replaces it)."""
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
LogFormat = Literal["json", "text"]


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """How the tool server runs. ``from_env()`` reads each from its environment variable.

    Attributes (variable, default):
        host (``HOST``, ``0.0.0.0``), port (``PORT``, 3000),
        workers (``AI_SPINE_WORKERS``, 1; ``AI_SPINE_WORKER_THREADS``, its old name, still
        works with a deprecation warning): worker processes sharing the port,
        request_timeout_ms (``AI_SPINE_REQUEST_TIMEOUT``, 25000): execution deadline,
        max_body_bytes (``AI_SPINE_MAX_BODY_BYTES``, 10 MiB): larger bodies get 413,
        max_json_depth (``AI_SPINE_MAX_JSON_DEPTH``, 64) and max_json_items
        (``AI_SPINE_MAX_JSON_ITEMS``, 100000): deeper bodies get 400, fuller ones 413,
        max_header_bytes (``AI_SPINE_MAX_HEADER_BYTES``, 16 KiB): request line and headers, 431,
        read_timeout_s (``AI_SPINE_READ_TIMEOUT``, 30): time to send a whole request, else 408,
        keep_alive_s (``AI_SPINE_KEEP_ALIVE``, 5): idle keep-alive connections close after it,
        max_client_connections (``AI_SPINE_MAX_CLIENT_CONNECTIONS``, 1000): per worker; the
        connections opened past it get 503,
        api_keys (``AI_SPINE_API_KEYS``, comma list), api_keys_file (``AI_SPINE_API_KEYS_FILE``:
        one key a line, re-read when it changes) and require_auth (``AI_SPINE_REQUIRE_AUTH``),
        signing_secrets (``AI_SPINE_SIGNING_SECRETS``), signing_secrets_file
        (``AI_SPINE_SIGNING_SECRETS_FILE``) and signature_tolerance_s
        (``AI_SPINE_SIGNATURE_TOLERANCE``, 300): HMAC-signed requests,
        public_routes (``AI_SPINE_PUBLIC_ROUTES``: of ``/metrics``, ``/schema``, ``/dashboard``,
        those that stay open when auth is on), content_security_policy (``AI_SPINE_CSP``: the
        Content-Security-Policy of HTML pages; JSON answers carry ``default-src 'none'``),
        rate_limit (``AI_SPINE_RATE_LIMIT``, e.g. ``100/minute``), rate_limit_by
        (``AI_SPINE_RATE_LIMIT_BY``: ``key`` or ``ip``),
        compression (``AI_SPINE_ENABLE_COMPRESSION``), cors_origins (``AI_SPINE_CORS_ORIGINS``),
        errors_as_200 (``AI_SPINE_ERRORS_AS_200``): execute errors answer HTTP 200,
        mcp (``AI_SPINE_MCP``, false): also serve the tool over MCP at ``/mcp`` ([mcp] extra),
        shutdown_grace_s (``AI_SPINE_SHUTDOWN_GRACE``, 30): how long in-flight requests may finish,
        debug (``AI_SPINE_DEBUG``): error messages include exception text,
        log_level (``AI_SPINE_LOG_LEVEL``, info), log_format (``AI_SPINE_LOG_FORMAT``, text),
        log_requests (``AI_SPINE_LOG_REQUESTS``, false): one info line per execution,
        metrics (``AI_SPINE_METRICS``, true): built-in request metrics are recorded,
        dashboard (``AI_SPINE_DASHBOARD``, false): the live page at ``/dashboard``,
        tracing (``AI_SPINE_TRACING``, false): an OpenTelemetry span per execution,
        max_connections (``AI_SPINE_MAX_CONNECTIONS``, 100): outbound connection pool size,
        max_concurrent_executions (``AI_SPINE_MAX_CONCURRENT_EXECUTIONS``, 1000): executions one
        worker runs at once; queue_size (``AI_SPINE_QUEUE_SIZE``, 100) more may wait up to
        queue_timeout_ms (``AI_SPINE_QUEUE_TIMEOUT``, 50) for a slot; the rest get 503 OVERLOADED,
        cache_ttl_s (``AI_SPINE_CACHE_TTL``, 300; 0: no expiry),
        redis_url (``REDIS_URL``, else ``redis://REDIS_HOST:REDIS_PORT/0`` when ``REDIS_HOST`` is
        set; none by default): the shared cache and distributed rate limits,
        redis_max_connections (``REDIS_MAX_CONNECTIONS``, 10): pool size per process,
        redis_command_timeout_ms (``REDIS_COMMAND_TIMEOUT``, 1000),
        redis_retry_delay_ms (``REDIS_RETRY_DELAY``, 100): pause before retrying a command and
        first pause before trying a failed Redis again,
        redis_prefix (``AI_SPINE_REDIS_PREFIX``, ``ai-spine:``): prefix of every Redis key,
        gc_tuning (``AI_SPINE_GC_TUNING``, true): a served process freezes its start-up objects
        and collects young objects less often (see ``_gctuning``),
        strict_startup (``AI_SPINE_STRICT_STARTUP``, false): serving several tools, a tool whose
        setup fails fails the start-up, instead of answering 503 ``TOOL_UNAVAILABLE``,
        diagnostics (``AI_SPINE_DIAGNOSTICS``, true): the event-loop, leak and pool watches
        (see ``_loopwatch``, ``_leakwatch``), blocking_threshold_ms
        (``AI_SPINE_BLOCKING_THRESHOLD_MS``, 100), blocking_stacks (``AI_SPINE_BLOCKING_STACKS``,
        false; on in ``ai-spine dev``), leak_slope_mb (``AI_SPINE_LEAK_SLOPE_MB``, 1.0: MB per
        1000 requests), leak_sample_interval_s (``AI_SPINE_LEAK_SAMPLE_INTERVAL``, 5),
        pool_wait_warning_ms (``AI_SPINE_POOL_WAIT_WARNING_MS``, 100),
        process_workers (``AI_SPINE_PROCESS_WORKERS``, the number of cores): the size of the
        process pool of ``context.to_process`` and ``executor="process"``, per worker process.
    """

    host: str = "0.0.0.0"
    port: int = 3000
    workers: int = 1
    request_timeout_ms: int = 25_000
    max_body_bytes: int = 10 * 1024 * 1024
    max_json_depth: int = 64
    max_json_items: int = 100_000
    max_header_bytes: int = 16_384
    read_timeout_s: float = 30.0
    keep_alive_s: int = 5
    max_client_connections: int = 1000
    api_keys: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    api_keys_file: str | None = None
    signing_secrets: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    signing_secrets_file: str | None = None
    signature_tolerance_s: int = 300
    public_routes: tuple[str, ...] = ()
    content_security_policy: str = PAGE_CSP
    require_auth: bool = False
    rate_limit: str | None = None
    rate_limit_by: Literal["key", "ip"] | None = None
    compression: bool = False
    cors_origins: tuple[str, ...] = ()
    errors_as_200: bool = False
    shutdown_grace_s: float = 30.0
    debug: bool = False
    mcp: bool = False
    log_level: str = "info"
    log_format: LogFormat = "text"
    log_requests: bool = False
    metrics: bool = True
    dashboard: bool = False
    tracing: bool = False
    max_connections: int = 100
    max_concurrent_executions: int = 1000
    queue_size: int = 100
    queue_timeout_ms: int = 50
    cache_ttl_s: int = 300
    redis_url: str | None = dataclasses.field(default=None, repr=False)  # may hold a password
    redis_max_connections: int = 10
    redis_command_timeout_ms: int = 1000
    redis_retry_delay_ms: int = 100
    redis_prefix: str = "ai-spine:"
    gc_tuning: bool = True
    strict_startup: bool = False
    diagnostics: bool = True
    blocking_threshold_ms: int = 100
    blocking_stacks: bool = False
    leak_slope_mb: float = 1.0
    leak_sample_interval_s: float = 5.0
    pool_wait_warning_ms: int = 100
    process_workers: int | None = None  # None: one per core (see _processes)

    def __post_init__(self) -> None:
        if self.require_auth and not self.auth_enabled:
            raise ServerConfigurationError(
                "AI_SPINE_REQUIRE_AUTH is on but AI_SPINE_API_KEYS lists no key "
                "(nor is AI_SPINE_API_KEYS_FILE or AI_SPINE_SIGNING_SECRETS set)"
            )
        for route in self.public_routes:
            if route not in PUBLIC_ROUTE_CHOICES:
                raise ServerConfigurationError(
                    f"AI_SPINE_PUBLIC_ROUTES is invalid: {route!r} is not one of "
                    f"{', '.join(PUBLIC_ROUTE_CHOICES)}",
                    details={"variable": "AI_SPINE_PUBLIC_ROUTES"},
                )
        if self.rate_limit is not None:
            _parse_rate(self.rate_limit, "AI_SPINE_RATE_LIMIT")

    @property
    def auth_enabled(self) -> bool:
        """True when requests to protected routes must carry an API key or a signature."""
        return bool(
            self.api_keys or self.api_keys_file or self.signing_secrets or self.signing_secrets_file
        )

    def replace(self, **changes: Any) -> ServerSettings:
        """Return a copy with ``changes`` applied (``None`` values are ignored); an unknown
        name raises ``ToolDefinitionError`` naming the closest setting."""
        names = sorted(item.name for item in dataclasses.fields(self))
        for key in changes:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ToolDefinitionError(
                    f"unknown server setting {key!r}; {hint}the settings are: {', '.join(names)}"
                )
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        """Read the settings from ``environ`` (default ``os.environ``)."""
        env = os.environ if environ is None else environ
        read = _Reader(env)
        return cls(
            host=read("HOST", str, cls.host),
            port=read("PORT", _int_between(1, 65535), cls.port),
            workers=_workers(read, env, cls.workers),
            request_timeout_ms=read(
                "AI_SPINE_REQUEST_TIMEOUT", _int_between(1, 86_400_000), cls.request_timeout_ms
            ),
            max_body_bytes=read(
                "AI_SPINE_MAX_BODY_BYTES", _int_between(1, 1 << 34), cls.max_body_bytes
            ),
            max_json_depth=read(
                "AI_SPINE_MAX_JSON_DEPTH", _int_between(2, 10_000), cls.max_json_depth
            ),
            max_json_items=read(
                "AI_SPINE_MAX_JSON_ITEMS", _int_between(1, 100_000_000), cls.max_json_items
            ),
            max_header_bytes=read(
                "AI_SPINE_MAX_HEADER_BYTES", _int_between(1024, 1 << 24), cls.max_header_bytes
            ),
            read_timeout_s=read("AI_SPINE_READ_TIMEOUT", _positive_float, cls.read_timeout_s),
            keep_alive_s=read("AI_SPINE_KEEP_ALIVE", _int_between(1, 3600), cls.keep_alive_s),
            max_client_connections=read(
                "AI_SPINE_MAX_CLIENT_CONNECTIONS",
                _int_between(1, 1_000_000),
                cls.max_client_connections,
            ),
            api_keys=read("AI_SPINE_API_KEYS", _keys, ()),
            api_keys_file=read("AI_SPINE_API_KEYS_FILE", str, None),
            signing_secrets=read("AI_SPINE_SIGNING_SECRETS", _keys, ()),
            signing_secrets_file=read("AI_SPINE_SIGNING_SECRETS_FILE", str, None),
            signature_tolerance_s=read(
                "AI_SPINE_SIGNATURE_TOLERANCE", _int_between(1, 86_400), cls.signature_tolerance_s
            ),
            public_routes=read("AI_SPINE_PUBLIC_ROUTES", _public_routes, ()),
            content_security_policy=read("AI_SPINE_CSP", str, cls.content_security_policy),
            require_auth=read("AI_SPINE_REQUIRE_AUTH", _bool, False),
            rate_limit=read("AI_SPINE_RATE_LIMIT", _rate, None),
            rate_limit_by=read("AI_SPINE_RATE_LIMIT_BY", _choice("key", "ip"), None),
            compression=read("AI_SPINE_ENABLE_COMPRESSION", _bool, False),
            cors_origins=read("AI_SPINE_CORS_ORIGINS", _keys, ()),
            errors_as_200=read("AI_SPINE_ERRORS_AS_200", _bool, False),
            shutdown_grace_s=read("AI_SPINE_SHUTDOWN_GRACE", _positive_float, cls.shutdown_grace_s),
            debug=read("AI_SPINE_DEBUG", _bool, False),
            mcp=read("AI_SPINE_MCP", _bool, False),
            log_level=read(
                "AI_SPINE_LOG_LEVEL",
                _choice("debug", "info", "warning", "error", "critical"),
                "info",
            ),
            log_format=read("AI_SPINE_LOG_FORMAT", _choice("json", "text"), "text"),
            log_requests=read("AI_SPINE_LOG_REQUESTS", _bool, False),
            metrics=read("AI_SPINE_METRICS", _bool, True),
            dashboard=read("AI_SPINE_DASHBOARD", _bool, False),
            tracing=read("AI_SPINE_TRACING", _bool, False),
            max_connections=read(
                "AI_SPINE_MAX_CONNECTIONS", _int_between(1, 100_000), cls.max_connections
            ),
            max_concurrent_executions=read(
                "AI_SPINE_MAX_CONCURRENT_EXECUTIONS",
                _int_between(1, 1_000_000),
                cls.max_concurrent_executions,
            ),
            queue_size=read("AI_SPINE_QUEUE_SIZE", _int_between(0, 1_000_000), cls.queue_size),
            queue_timeout_ms=read(
                "AI_SPINE_QUEUE_TIMEOUT", _int_between(0, 60_000), cls.queue_timeout_ms
            ),
            cache_ttl_s=read("AI_SPINE_CACHE_TTL", _int_between(0, 31_536_000), cls.cache_ttl_s),
            redis_url=read("REDIS_URL", _redis_url, None) or _redis_host(read),
            redis_max_connections=read(
                "REDIS_MAX_CONNECTIONS", _int_between(1, 10_000), cls.redis_max_connections
            ),
            redis_command_timeout_ms=read(
                "REDIS_COMMAND_TIMEOUT", _int_between(1, 600_000), cls.redis_command_timeout_ms
            ),
            redis_retry_delay_ms=read(
                "REDIS_RETRY_DELAY", _int_between(0, 600_000), cls.redis_retry_delay_ms
            ),
            redis_prefix=read("AI_SPINE_REDIS_PREFIX", str, cls.redis_prefix),
            gc_tuning=read("AI_SPINE_GC_TUNING", _bool, cls.gc_tuning),
            strict_startup=read("AI_SPINE_STRICT_STARTUP", _bool, cls.strict_startup),
            diagnostics=read("AI_SPINE_DIAGNOSTICS", _bool, cls.diagnostics),
            blocking_threshold_ms=read(
                "AI_SPINE_BLOCKING_THRESHOLD_MS",
                _int_between(1, 600_000),
                cls.blocking_threshold_ms,
            ),
            blocking_stacks=read("AI_SPINE_BLOCKING_STACKS", _bool, cls.blocking_stacks),
            leak_slope_mb=read("AI_SPINE_LEAK_SLOPE_MB", _positive_float, cls.leak_slope_mb),
            leak_sample_interval_s=read(
                "AI_SPINE_LEAK_SAMPLE_INTERVAL", _positive_float, cls.leak_sample_interval_s
            ),
            pool_wait_warning_ms=read(
                "AI_SPINE_POOL_WAIT_WARNING_MS", _int_between(1, 600_000), cls.pool_wait_warning_ms
            ),
            process_workers=process_workers_from_env(env),
        )


def _workers(read: _Reader, env: Mapping[str, str], default: int) -> int:
    """``AI_SPINE_WORKERS``, else its deprecated name (with a ``DeprecationWarning``)."""
    if not env.get("AI_SPINE_WORKERS", "").strip() and env.get("AI_SPINE_WORKER_THREADS", ""):
        warnings.warn(
            DEPRECATED_SETTINGS["AI_SPINE_WORKER_THREADS"], DeprecationWarning, stacklevel=3
        )
        return read("AI_SPINE_WORKER_THREADS", _int_between(1, 512), default)
    return read("AI_SPINE_WORKERS", _int_between(1, 512), default)


def process_workers_from_env(environ: Mapping[str, str] | None = None) -> int | None:
    """``AI_SPINE_PROCESS_WORKERS`` (``None`` when unset); a bad value raises naming it."""
    read = _Reader(os.environ if environ is None else environ)
    return read("AI_SPINE_PROCESS_WORKERS", _int_between(1, 1024), None)


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


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected a URL such as redis://host:6379/0 (or rediss://, unix://)")
    return raw


def _redis_host(read: _Reader) -> str | None:
    host = read("REDIS_HOST", str, "")
    if not host:
        return None
    port = read("REDIS_PORT", _int_between(1, 65535), 6379)
    return f"redis://{host}:{port}/0"


def _public_routes(raw: str) -> tuple[str, ...]:
    routes = tuple("/" + part.strip().strip("/") for part in raw.split(",") if part.strip())
    for route in routes:
        if route not in PUBLIC_ROUTE_CHOICES:
            raise ValueError(f"expected routes among {', '.join(PUBLIC_ROUTE_CHOICES)}")
    return routes


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
