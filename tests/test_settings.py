"""Server settings from the environment: defaults, parsing, and errors naming the variable."""

from __future__ import annotations

import pytest

from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.exceptions import ServerConfigurationError


def test_defaults_need_no_environment() -> None:
    settings = ServerSettings.from_env({})
    assert (settings.host, settings.port, settings.workers) == ("0.0.0.0", 3000, 1)
    assert settings.request_timeout_ms == 25_000
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert not settings.auth_enabled
    assert settings.rate_limit is None


@pytest.mark.parametrize(
    ("environ", "attribute", "value"),
    [
        ({"PORT": "8080"}, "port", 8080),
        ({"HOST": "127.0.0.1"}, "host", "127.0.0.1"),
        ({"AI_SPINE_WORKERS": "4"}, "workers", 4),
        ({"AI_SPINE_REQUEST_TIMEOUT": "1500"}, "request_timeout_ms", 1500),
        ({"AI_SPINE_API_KEYS": " a , b,,c "}, "api_keys", ("a", "b", "c")),
        ({"AI_SPINE_ENABLE_COMPRESSION": "TRUE"}, "compression", True),
        ({"AI_SPINE_ENABLE_COMPRESSION": "0"}, "compression", False),
        ({"AI_SPINE_RATE_LIMIT": "100/minute"}, "rate_limit", "100/minute"),
        ({"AI_SPINE_RATE_LIMIT": "10 per second"}, "rate_limit", "10 per second"),
        ({"AI_SPINE_RATE_LIMIT_BY": "IP"}, "rate_limit_by", "ip"),
        ({"AI_SPINE_ERRORS_AS_200": "yes"}, "errors_as_200", True),
        ({"AI_SPINE_SHUTDOWN_GRACE": "2.5"}, "shutdown_grace_s", 2.5),
        ({"AI_SPINE_LOG_LEVEL": "DEBUG"}, "log_level", "debug"),
        ({"AI_SPINE_CORS_ORIGINS": "https://a.example"}, "cors_origins", ("https://a.example",)),
        ({"PORT": ""}, "port", 3000),
        ({"AI_SPINE_MAX_JSON_DEPTH": "32"}, "max_json_depth", 32),
        ({"AI_SPINE_MAX_JSON_ITEMS": "5000"}, "max_json_items", 5000),
        ({"AI_SPINE_MAX_HEADER_BYTES": "8192"}, "max_header_bytes", 8192),
        ({"AI_SPINE_READ_TIMEOUT": "12.5"}, "read_timeout_s", 12.5),
        ({"AI_SPINE_KEEP_ALIVE": "2"}, "keep_alive_s", 2),
        ({"AI_SPINE_MAX_CLIENT_CONNECTIONS": "64"}, "max_client_connections", 64),
        ({"AI_SPINE_API_KEYS_FILE": "/run/keys"}, "api_keys_file", "/run/keys"),
        ({"AI_SPINE_SIGNING_SECRETS": "s1,s2"}, "signing_secrets", ("s1", "s2")),
        ({"AI_SPINE_SIGNING_SECRETS_FILE": "/run/s"}, "signing_secrets_file", "/run/s"),
        ({"AI_SPINE_SIGNATURE_TOLERANCE": "60"}, "signature_tolerance_s", 60),
        ({"AI_SPINE_PUBLIC_ROUTES": "/metrics"}, "public_routes", ("/metrics",)),
        ({"AI_SPINE_CSP": "default-src 'self'"}, "content_security_policy", "default-src 'self'"),
        ({"AI_SPINE_CACHE_TTL": "0"}, "cache_ttl_s", 0),
        ({"REDIS_URL": "redis://cache:6380/1"}, "redis_url", "redis://cache:6380/1"),
        ({"REDIS_URL": "unix:///run/redis.sock"}, "redis_url", "unix:///run/redis.sock"),
        ({"REDIS_HOST": "cache"}, "redis_url", "redis://cache:6379/0"),
        ({"REDIS_HOST": "cache", "REDIS_PORT": "7000"}, "redis_url", "redis://cache:7000/0"),
        ({"REDIS_URL": "redis://a:1/0", "REDIS_HOST": "b"}, "redis_url", "redis://a:1/0"),
        ({"REDIS_PORT": "7000"}, "redis_url", None),
        ({"REDIS_MAX_CONNECTIONS": "20"}, "redis_max_connections", 20),
        ({"REDIS_COMMAND_TIMEOUT": "5000"}, "redis_command_timeout_ms", 5000),
        ({"REDIS_RETRY_DELAY": "0"}, "redis_retry_delay_ms", 0),
        ({"AI_SPINE_REDIS_PREFIX": "svc-a:"}, "redis_prefix", "svc-a:"),
        ({"AI_SPINE_MAX_CONCURRENT_EXECUTIONS": "64"}, "max_concurrent_executions", 64),
        ({}, "max_concurrent_executions", 1000),
        ({"AI_SPINE_QUEUE_SIZE": "0"}, "queue_size", 0),
        ({"AI_SPINE_QUEUE_TIMEOUT": "5"}, "queue_timeout_ms", 5),
        ({"AI_SPINE_PROCESS_WORKERS": "6"}, "process_workers", 6),
        ({}, "process_workers", None),
    ],
)
def test_each_variable_is_read(environ: dict[str, str], attribute: str, value: object) -> None:
    assert getattr(ServerSettings.from_env(environ), attribute) == value


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"AI_SPINE_WORKERS": "0"}, "AI_SPINE_WORKERS"),
        ({"AI_SPINE_REQUEST_TIMEOUT": "-5"}, "AI_SPINE_REQUEST_TIMEOUT"),
        ({"AI_SPINE_MAX_BODY_BYTES": "lots"}, "AI_SPINE_MAX_BODY_BYTES"),
        ({"AI_SPINE_ENABLE_COMPRESSION": "maybe"}, "AI_SPINE_ENABLE_COMPRESSION"),
        ({"AI_SPINE_RATE_LIMIT": "fast"}, "AI_SPINE_RATE_LIMIT"),
        ({"AI_SPINE_RATE_LIMIT_BY": "user"}, "AI_SPINE_RATE_LIMIT_BY"),
        ({"AI_SPINE_LOG_LEVEL": "chatty"}, "AI_SPINE_LOG_LEVEL"),
        ({"AI_SPINE_SHUTDOWN_GRACE": "nan"}, "AI_SPINE_SHUTDOWN_GRACE"),
        ({"AI_SPINE_REQUIRE_AUTH": "true"}, "AI_SPINE_API_KEYS"),
        ({"AI_SPINE_MAX_JSON_DEPTH": "1"}, "AI_SPINE_MAX_JSON_DEPTH"),
        ({"AI_SPINE_MAX_JSON_ITEMS": "0"}, "AI_SPINE_MAX_JSON_ITEMS"),
        ({"AI_SPINE_MAX_HEADER_BYTES": "100"}, "AI_SPINE_MAX_HEADER_BYTES"),
        ({"AI_SPINE_READ_TIMEOUT": "soon"}, "AI_SPINE_READ_TIMEOUT"),
        ({"AI_SPINE_KEEP_ALIVE": "0"}, "AI_SPINE_KEEP_ALIVE"),
        ({"AI_SPINE_MAX_CLIENT_CONNECTIONS": "-1"}, "AI_SPINE_MAX_CLIENT_CONNECTIONS"),
        ({"AI_SPINE_SIGNATURE_TOLERANCE": "0"}, "AI_SPINE_SIGNATURE_TOLERANCE"),
        ({"AI_SPINE_PUBLIC_ROUTES": "/api/execute"}, "AI_SPINE_PUBLIC_ROUTES"),
        ({"REDIS_URL": "http://cache:6379"}, "REDIS_URL"),
        ({"REDIS_HOST": "cache", "REDIS_PORT": "0"}, "REDIS_PORT"),
        ({"REDIS_MAX_CONNECTIONS": "0"}, "REDIS_MAX_CONNECTIONS"),
        ({"REDIS_COMMAND_TIMEOUT": "soon"}, "REDIS_COMMAND_TIMEOUT"),
        ({"REDIS_RETRY_DELAY": "-1"}, "REDIS_RETRY_DELAY"),
        ({"AI_SPINE_MAX_CONCURRENT_EXECUTIONS": "0"}, "AI_SPINE_MAX_CONCURRENT_EXECUTIONS"),
        ({"AI_SPINE_QUEUE_SIZE": "-1"}, "AI_SPINE_QUEUE_SIZE"),
        ({"AI_SPINE_QUEUE_TIMEOUT": "a while"}, "AI_SPINE_QUEUE_TIMEOUT"),
        ({"AI_SPINE_PROCESS_WORKERS": "0"}, "AI_SPINE_PROCESS_WORKERS"),
        ({"AI_SPINE_PROCESS_WORKERS": "two"}, "AI_SPINE_PROCESS_WORKERS"),
        ({"AI_SPINE_PROCESS_WORKERS": "5000"}, "AI_SPINE_PROCESS_WORKERS"),
    ],
)
def test_bad_values_name_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ServerConfigurationError, match=variable):
        ServerSettings.from_env(environ)


def test_replace_ignores_none() -> None:
    settings = ServerSettings.from_env({}).replace(port=9000, host=None)
    assert (settings.port, settings.host) == (9000, "0.0.0.0")


@pytest.mark.parametrize(
    "environ",
    [
        {"AI_SPINE_API_KEYS": "k"},
        {"AI_SPINE_API_KEYS_FILE": "/run/keys"},
        {"AI_SPINE_SIGNING_SECRETS": "s"},
        {"AI_SPINE_SIGNING_SECRETS_FILE": "/run/secrets"},
    ],
)
def test_any_credential_turns_auth_on(environ: dict[str, str]) -> None:
    settings = ServerSettings.from_env({**environ, "AI_SPINE_REQUIRE_AUTH": "true"})
    assert settings.auth_enabled


def test_repr_hides_keys_secrets_and_the_redis_password() -> None:
    settings = ServerSettings(
        api_keys=("k-hidden",), signing_secrets=("s-hidden",), redis_url="redis://:pw-hidden@h/0"
    )
    assert "hidden" not in repr(settings)


def test_the_old_workers_variable_still_works_with_a_deprecation_warning() -> None:
    with pytest.deprecated_call(match="use AI_SPINE_WORKERS"):
        settings = ServerSettings.from_env({"AI_SPINE_WORKER_THREADS": "3"})
    assert settings.workers == 3


def test_the_new_workers_variable_wins_over_the_old_one_without_a_warning() -> None:
    environ = {"AI_SPINE_WORKERS": "2", "AI_SPINE_WORKER_THREADS": "5"}
    assert ServerSettings.from_env(environ).workers == 2  # filterwarnings = error: none raised


def test_a_bad_old_workers_value_names_the_old_variable() -> None:
    with (
        pytest.deprecated_call(),
        pytest.raises(ServerConfigurationError, match="AI_SPINE_WORKER_THREADS"),
    ):
        ServerSettings.from_env({"AI_SPINE_WORKER_THREADS": "0"})
