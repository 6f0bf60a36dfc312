"""Config resolution: configure() > environment > request > default, what a request may override,
and how bad server-side values fail start-up."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ai_spine_tools import (
    ConfigurationError,
    ServerConfigurationError,
    ToolDefinitionError,
    api_key_field,
    array_field,
    boolean_field,
    create_tool,
    date_field,
    enum_field,
    integer_field,
    json_field,
    number_field,
    object_field,
    secret_field,
    string_field,
    url_field,
)
from ai_spine_tools.core._config import ConfigResolver, env_name
from ai_spine_tools.fields import Field


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AI_SPINE_CONFIG_ENDPOINT", "AI_SPINE_CONFIG_API_KEY", "MY_ENDPOINT", "MY_KEY"):
        monkeypatch.delenv(name, raising=False)


def _resolver(**fields: Field) -> ConfigResolver:
    resolver = ConfigResolver(fields)
    resolver.resolve()
    return resolver


# -- resolution order ---------------------------------------------------------------------------

ORDER: list[tuple[str, dict[str, Any], str | None, dict[str, Any] | None, str]] = [
    # (case, configure, env value, request config, expected)
    ("configure beats env", {"endpoint": "https://configured"}, "https://env", None, "configured"),
    (
        "configure beats request",
        {"endpoint": "https://configured"},
        None,
        {"endpoint": "https://request"},
        "configured",
    ),
    ("env beats request", {}, "https://env", {"endpoint": "https://request"}, "env"),
    ("env beats default", {}, "https://env", None, "env"),
    ("request beats default", {}, None, {"endpoint": "https://request"}, "request"),
    ("default when nothing else", {}, None, None, "default"),
    ("null in request is ignored", {}, None, {"endpoint": None}, "default"),
    ("empty env is unset", {}, "", {"endpoint": "https://request"}, "request"),
]


@pytest.mark.parametrize(
    ("case", "configured", "env", "sent", "expected"), ORDER, ids=[c[0] for c in ORDER]
)
def test_config_resolution_order(
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    configured: dict[str, Any],
    env: str | None,
    sent: dict[str, Any] | None,
    expected: str,
) -> None:
    if env is not None:
        monkeypatch.setenv("AI_SPINE_CONFIG_ENDPOINT", env)
    resolver = ConfigResolver({"endpoint": url_field(default="https://default")})
    if configured:
        resolver.configure(configured)
    resolver.resolve()
    assert resolver.for_request(sent)["endpoint"] == f"https://{expected}"


def test_field_env_name_wins_over_the_generic_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_ENDPOINT", "https://named")
    monkeypatch.setenv("AI_SPINE_CONFIG_ENDPOINT", "https://generic")
    resolver = _resolver(endpoint=url_field(env="MY_ENDPOINT"))
    assert resolver.for_request(None)["endpoint"] == "https://named"


@pytest.mark.parametrize(
    ("key", "field", "expected"),
    [
        ("endpoint", string_field(), "AI_SPINE_CONFIG_ENDPOINT"),
        ("api-key", string_field(), "AI_SPINE_CONFIG_API_KEY"),
        ("apiKey", string_field(), "AI_SPINE_CONFIG_APIKEY"),
        ("api_key", string_field(env="WEATHER_API_KEY"), "WEATHER_API_KEY"),
    ],
)
def test_env_name_is_the_field_env_or_the_generic_one(
    key: str, field: Field, expected: str
) -> None:
    assert env_name(key, field) == expected


# -- what a request may override ----------------------------------------------------------------


def test_request_cannot_swap_a_server_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_ENDPOINT", "https://internal.example.com")
    resolver = _resolver(endpoint=url_field(env="MY_ENDPOINT"))
    values = resolver.for_request({"endpoint": "https://attacker.example.com"})
    assert values["endpoint"] == "https://internal.example.com"


def test_request_overrides_an_overridable_server_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "server-key")
    resolver = _resolver(api_key=api_key_field(env="MY_KEY", overridable=True))
    assert resolver.for_request({"api_key": "users-own-key"})["api_key"] == "users-own-key"
    assert resolver.for_request({})["api_key"] == "server-key"


def test_configured_value_cannot_be_swapped_either() -> None:
    resolver = ConfigResolver({"endpoint": url_field()})
    resolver.configure({"endpoint": "https://configured.example.com"})
    values = resolver.for_request({"endpoint": "https://attacker.example.com"})
    assert values["endpoint"] == "https://configured.example.com"


def test_unknown_request_config_keys_are_ignored() -> None:
    resolver = _resolver(endpoint=url_field(default="https://default"))
    assert resolver.for_request({"other_tool_key": "x"}) == {"endpoint": "https://default"}


def test_request_values_are_validated_and_every_issue_reported() -> None:
    resolver = _resolver(retries=integer_field(min=0, max=5), mode=enum_field(["a", "b"]))
    with pytest.raises(ConfigurationError) as info:
        resolver.for_request({"retries": 9, "mode": "c"})
    error = info.value
    assert error.status == 400
    assert error.code == "CONFIGURATION_ERROR"
    assert [(e["path"], e["code"]) for e in error.details["errors"]] == [
        ("retries", "maximum"),
        ("mode", "enum"),
    ]


def test_request_config_that_is_not_an_object_is_rejected() -> None:
    resolver = _resolver(endpoint=url_field())
    with pytest.raises(ConfigurationError, match="'config' must be an object"):
        resolver.for_request(["x"])  # type: ignore[arg-type]


def test_invalid_request_secret_is_not_echoed() -> None:
    resolver = _resolver(api_key=secret_field(min_length=20, pattern=r"^sk-"))
    with pytest.raises(ConfigurationError) as info:
        resolver.for_request({"api_key": "hunter2-hunter2-hunter2"})
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(info.value.details)


def test_defaults_are_fresh_copies_per_request() -> None:
    resolver = _resolver(hosts=array_field(string_field(), default=["a"]))
    first = resolver.for_request(None)
    first["hosts"].append("mutated")
    assert resolver.for_request(None)["hosts"] == ["a"]


# -- required fields ----------------------------------------------------------------------------


@pytest.mark.parametrize("request_config", [None, {}, {"api_key": None}, {"other": "x"}])
def test_missing_required_config_names_the_field(request_config: dict[str, Any] | None) -> None:
    resolver = _resolver(api_key=api_key_field(required=True), region=string_field())
    with pytest.raises(ConfigurationError) as info:
        resolver.for_request(request_config)
    error = info.value
    assert not isinstance(error, ServerConfigurationError)
    assert error.status == 400
    assert "'api_key'" in error.message
    assert error.details["errors"] == [
        {"path": "api_key", "code": "required", "message": "'api_key' is required"}
    ]


def test_required_config_may_come_from_the_request() -> None:
    resolver = _resolver(api_key=api_key_field(required=True))
    assert resolver.for_request({"api_key": "k"}) == {"api_key": "k"}


def test_required_config_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_SPINE_CONFIG_API_KEY", "from-env")
    resolver = _resolver(api_key=api_key_field(required=True))
    assert resolver.for_request(None) == {"api_key": "from-env"}


# -- server-side values -------------------------------------------------------------------------


def test_bad_env_value_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_SPINE_CONFIG_RETRIES", "lots")
    resolver = ConfigResolver({"retries": integer_field(max=5)})
    with pytest.raises(ServerConfigurationError) as info:
        resolver.resolve()
    error = info.value
    assert error.status == 500
    assert "AI_SPINE_CONFIG_RETRIES" in error.message
    assert "'retries'" in error.message
    assert "'lots'" in error.message  # not a secret: the value helps fix it
    assert error.details == {"variable": "AI_SPINE_CONFIG_RETRIES", "field": "retries"}


@pytest.mark.parametrize(
    "field",
    [
        api_key_field(env="MY_KEY", min_length=40),
        secret_field(env="MY_KEY", pattern=r"^sk-"),
        integer_field(env="MY_KEY", sensitive=True),
    ],
    ids=repr,
)
def test_bad_sensitive_env_value_is_not_echoed(
    monkeypatch: pytest.MonkeyPatch, field: Field
) -> None:
    monkeypatch.setenv("MY_KEY", "hunter2-secret")
    with pytest.raises(ServerConfigurationError) as info:
        ConfigResolver({"api_key": field}).resolve()
    assert "MY_KEY" in info.value.message
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(info.value.details)


ENV_VALUES: list[tuple[Field, str, Any]] = [
    (boolean_field(), "true", True),
    (boolean_field(), "TRUE", True),
    (boolean_field(), "1", True),
    (boolean_field(), "yes", True),
    (boolean_field(), " on ", True),
    (boolean_field(), "false", False),
    (boolean_field(), "0", False),
    (boolean_field(), "No", False),
    (boolean_field(), "off", False),
    (integer_field(), "42", 42),
    (integer_field(), "-7", -7),
    (number_field(), "1.5", 1.5),
    (number_field(), "3", 3.0),
    (string_field(), "123", "123"),
    (string_field(), "true", "true"),
    (string_field(), '"quoted"', '"quoted"'),
    (enum_field(["eu", "us"]), "eu", "eu"),
    (enum_field([1, 2]), "2", 2),
    (date_field(), "2024-01-31", dt.date(2024, 1, 31)),
    (array_field(string_field()), '["a", "b"]', ["a", "b"]),
    (object_field({"a": integer_field()}), '{"a": 1}', {"a": 1}),
    (json_field(), '{"k": [1, null]}', {"k": [1, None]}),
    (json_field(), "plain text", "plain text"),
]


@pytest.mark.parametrize(("field", "raw", "expected"), ENV_VALUES)
def test_env_values_are_parsed_for_the_field_type(
    monkeypatch: pytest.MonkeyPatch, field: Field, raw: str, expected: Any
) -> None:
    monkeypatch.setenv("AI_SPINE_CONFIG_VALUE", raw)
    value = _resolver(value=field).for_request(None)["value"]
    assert value == expected
    assert type(value) is type(expected)


BAD_ENV_VALUES: list[tuple[Field, str]] = [
    (boolean_field(), "maybe"),
    (boolean_field(), "2"),
    (integer_field(), "1.5"),
    (integer_field(), "ten"),
    (number_field(), "1e400"),
    (number_field(max=1), "2"),
    (enum_field(["eu", "us"]), "asia"),
    (url_field(), "not a url"),
    (array_field(string_field()), "a,b"),
    (array_field(integer_field()), '["a"]'),
    (date_field(), "31/01/2024"),
]


@pytest.mark.parametrize(("field", "raw"), BAD_ENV_VALUES)
def test_bad_env_values_fail_start_up(
    monkeypatch: pytest.MonkeyPatch, field: Field, raw: str
) -> None:
    monkeypatch.setenv("AI_SPINE_CONFIG_VALUE", raw)
    with pytest.raises(ServerConfigurationError, match="AI_SPINE_CONFIG_VALUE"):
        ConfigResolver({"value": field}).resolve()


def test_configure_rejects_unknown_fields() -> None:
    resolver = ConfigResolver({"endpoint": url_field()})
    with pytest.raises(ToolDefinitionError, match="unknown config field"):
        resolver.configure({"endpont": "https://x"})


def test_configure_rejects_invalid_values_without_echoing_secrets() -> None:
    resolver = ConfigResolver({"api_key": api_key_field(min_length=40)})
    with pytest.raises(ServerConfigurationError, match=r"configure\(api_key=\.\.\.\)") as info:
        resolver.configure({"api_key": "hunter2"})
    assert "hunter2" not in str(info.value)


def test_server_values_hold_configured_env_and_default_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AI_SPINE_CONFIG_REGION", "eu")
    resolver = ConfigResolver(
        {
            "endpoint": url_field(),
            "region": string_field(),
            "retries": integer_field(default=3),
            "api_key": api_key_field(),
        }
    )
    resolver.configure({"endpoint": "https://configured"})
    assert resolver.server_values() == {
        "endpoint": "https://configured",
        "region": "eu",
        "retries": 3,
        "api_key": None,
    }


def test_configure_after_resolve_takes_effect() -> None:
    resolver = _resolver(endpoint=url_field(default="https://default"))
    assert resolver.for_request(None)["endpoint"] == "https://default"
    resolver.configure({"endpoint": "https://later"})
    assert resolver.for_request(None)["endpoint"] == "https://later"


# -- through the tool ---------------------------------------------------------------------------


async def _show_config(input: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    return config


def _config_tool(**fields: Field) -> Any:
    return create_tool(
        metadata={"name": "configured", "version": "1.0.0", "description": "Shows its config"},
        schema={"config": fields},
        execute=_show_config,
    )


async def test_tool_run_resolves_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_ENDPOINT", "https://internal")
    tool = _config_tool(
        endpoint=url_field(env="MY_ENDPOINT"),
        api_key=api_key_field(required=True),
        units=enum_field(["c", "f"], default="c"),
    )
    result = await tool.run({}, {"api_key": "k", "endpoint": "https://other"})
    assert result.data == {"endpoint": "https://internal", "api_key": "k", "units": "c"}


async def test_tool_run_reports_missing_config_as_configuration_error() -> None:
    tool = _config_tool(api_key=api_key_field(required=True))
    result = await tool.run({})
    assert result.failure is not None
    assert result.error_code == "CONFIGURATION_ERROR"
    assert result.failure.status == 400
    assert "'api_key'" in result.failure.message


async def test_tool_configure_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_ENDPOINT", "https://env")
    tool = _config_tool(endpoint=url_field(env="MY_ENDPOINT")).configure(
        endpoint="https://configured"
    )
    result = await tool.run({})
    assert result.data == {"endpoint": "https://configured"}


async def test_tool_start_fails_on_a_bad_env_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_ENDPOINT", "ftp://nope")
    tool = _config_tool(endpoint=url_field(env="MY_ENDPOINT"))
    with pytest.raises(ServerConfigurationError, match="MY_ENDPOINT"):
        await tool.start()
