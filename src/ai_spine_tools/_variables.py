"""Every environment variable the server reads, for people: its default and meaning (the
settings page of the docs and every generated ``.env.example`` are written from it), the old
names that still work, and the ones that decide who may call. ``_settings`` reads them."""

from __future__ import annotations

__all__ = ["DEPRECATED_SETTINGS", "DOCUMENTED_SETTINGS", "SECURITY_SETTINGS"]

DOCUMENTED_SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("PORT", "3000", "Port to listen on"),
    ("HOST", "0.0.0.0", "Interface to listen on"),
    ("AI_SPINE_WORKERS", "1", "Worker processes sharing the port"),
    ("AI_SPINE_SERVER", "uvicorn", "HTTP server of ai-spine serve: uvicorn or granian"),
    (
        "AI_SPINE_REQUEST_TIMEOUT",
        "25000",
        "Execution deadline in ms (create_tool(timeout_ms=) wins)",
    ),
    ("AI_SPINE_MAX_BODY_BYTES", "10485760", "Largest accepted request body in bytes"),
    ("AI_SPINE_MAX_JSON_DEPTH", "64", "Deepest JSON nesting accepted in a body (else 400)"),
    ("AI_SPINE_MAX_JSON_ITEMS", "100000", "Most array items + object members in a body (413)"),
    ("AI_SPINE_MAX_HEADER_BYTES", "16384", "Largest request line + headers in bytes (else 431)"),
    ("AI_SPINE_READ_TIMEOUT", "30", "Seconds a client has to send a whole request (else 408)"),
    ("AI_SPINE_KEEP_ALIVE", "5", "Seconds an idle keep-alive connection stays open"),
    ("AI_SPINE_MAX_CLIENT_CONNECTIONS", "1000", "Open connections per worker before 503"),
    ("AI_SPINE_API_KEYS", "", "Comma-separated API keys; when set, executions need one"),
    ("AI_SPINE_API_KEYS_FILE", "", "File of API keys, one a line (# comments); re-read on change"),
    ("AI_SPINE_SIGNING_SECRETS", "", "Comma-separated secrets for HMAC-signed requests"),
    ("AI_SPINE_SIGNING_SECRETS_FILE", "", "File of signing secrets, one a line; re-read on change"),
    ("AI_SPINE_SIGNATURE_TOLERANCE", "300", "Seconds a request signature's timestamp may be off"),
    ("AI_SPINE_PUBLIC_ROUTES", "", "Of /metrics, /schema, /dashboard: open even when auth is on"),
    ("AI_SPINE_CSP", "", "Content-Security-Policy of HTML pages such as /dashboard"),
    ("AI_SPINE_REQUIRE_AUTH", "false", "Refuse to start without API keys"),
    (
        "AI_SPINE_ALLOW_UNKNOWN_SETTINGS",
        "false",
        "Start even when a variable is a near miss of a security setting (else exit 2)",
    ),
    ("AI_SPINE_RATE_LIMIT", "", "Requests allowed per caller, e.g. 100/minute"),
    ("AI_SPINE_RATE_LIMIT_BY", "key", "Count requests per API key or per client IP (key|ip)"),
    ("AI_SPINE_ENABLE_COMPRESSION", "false", "Gzip responses for clients that accept it"),
    ("AI_SPINE_CORS_ORIGINS", "", "Comma-separated origins allowed by CORS"),
    ("AI_SPINE_ERRORS_AS_200", "false", "Answer execute errors with HTTP 200 (same body)"),
    ("AI_SPINE_SHUTDOWN_GRACE", "30", "Seconds in-flight requests get to finish on shutdown"),
    ("AI_SPINE_DEBUG", "false", "Include exception text in error messages"),
    ("AI_SPINE_MCP", "false", "Also serve the tool over MCP at /mcp ([mcp] extra)"),
    ("AI_SPINE_LOG_LEVEL", "info", "debug, info, warning, error or critical"),
    ("AI_SPINE_LOG_FORMAT", "text", "json or text"),
    ("AI_SPINE_LOG_REQUESTS", "false", "Log one info line per execution (ids, status, duration)"),
    ("AI_SPINE_METRICS", "true", "Record built-in request metrics (false: counters stay at 0)"),
    ("AI_SPINE_DASHBOARD", "false", "Serve the live metrics page at /dashboard"),
    ("AI_SPINE_TRACING", "false", "An OpenTelemetry span per execution ([otel] extra)"),
    ("AI_SPINE_MAX_CONNECTIONS", "100", "Size of the outbound HTTP connection pool"),
    ("AI_SPINE_MAX_CONCURRENT_EXECUTIONS", "1000", "Executions one worker runs at once"),
    ("AI_SPINE_QUEUE_SIZE", "100", "Executions that may wait for a slot beyond that"),
    ("AI_SPINE_QUEUE_TIMEOUT", "50", "How long they may wait, in ms, before 503 OVERLOADED"),
    ("AI_SPINE_GC_TUNING", "true", "Freeze start-up objects and collect young ones less often"),
    (
        "AI_SPINE_STRICT_STARTUP",
        "false",
        "Serving several tools: one tool's failed setup fails start-up (else that tool is 503)",
    ),
    ("AI_SPINE_DIAGNOSTICS", "true", "Event-loop lag, blocking, leak and pool-wait watches"),
    ("AI_SPINE_BLOCKING_THRESHOLD_MS", "100", "Warn when an execute blocks the event loop longer"),
    ("AI_SPINE_BLOCKING_STACKS", "false", "Add the blocking stack to that warning (on in dev)"),
    ("AI_SPINE_LEAK_SLOPE_MB", "1.0", "RSS growth per 1000 requests that degrades /health (MB)"),
    ("AI_SPINE_LEAK_SAMPLE_INTERVAL", "5", "Seconds between RSS samples of the leak watch"),
    ("AI_SPINE_POOL_WAIT_WARNING_MS", "100", "Warn when a pooled connection takes longer to get"),
    ("AI_SPINE_PROCESS_WORKERS", "", "Process pool size for CPU-bound work (empty: one per CPU)"),
    ("DATABASE_URL", "", "PostgreSQL for ai_spine_tools.postgres.PostgresPool.from_env()"),
    ("DB_POOL_MIN", "5", "Connections the PostgreSQL pool keeps open"),
    ("DB_POOL_MAX", "20", "Most connections the PostgreSQL pool opens"),
    ("DB_POOL_IDLE_TIMEOUT", "30000", "Idle PostgreSQL connections close after this many ms"),
    ("AI_SPINE_CACHE_TTL", "300", "Default time-to-live of cached results, in seconds (0: none)"),
    ("REDIS_URL", "", "Redis for the shared cache and rate limits, e.g. redis://host:6379/0"),
    ("REDIS_HOST", "", "Redis host, when REDIS_URL is not set"),
    ("REDIS_PORT", "6379", "Redis port, with REDIS_HOST"),
    ("REDIS_MAX_CONNECTIONS", "10", "Redis connection pool size per process"),
    ("REDIS_COMMAND_TIMEOUT", "1000", "Longest wait for a Redis command, in milliseconds"),
    ("REDIS_RETRY_DELAY", "100", "Pause before retrying Redis after a failure, in milliseconds"),
    ("AI_SPINE_REDIS_PREFIX", "ai-spine:", "Prefix of every key this server writes to Redis"),
)
"""Every environment variable the server reads: name, default and meaning (for .env.example)."""

DEPRECATED_SETTINGS: dict[str, str] = {
    "AI_SPINE_WORKER_THREADS": (
        "AI_SPINE_WORKER_THREADS is deprecated: it sets worker processes, not threads; "
        "use AI_SPINE_WORKERS"
    ),
}
"""Old names that still work, with what to use instead."""

SECURITY_SETTINGS = frozenset(
    {
        "AI_SPINE_API_KEYS",
        "AI_SPINE_API_KEYS_FILE",
        "AI_SPINE_SIGNING_SECRETS",
        "AI_SPINE_SIGNING_SECRETS_FILE",
        "AI_SPINE_REQUIRE_AUTH",
    }
)
"""The settings that decide who may call: a near miss of one of them stops start-up."""
