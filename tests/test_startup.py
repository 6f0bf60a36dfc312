"""Start-up: unknown settings warned about with the closest known name, a near miss of a security
setting refused (exit 2, through the CLI), the security posture stated, and the README's table of
settings and the code kept in step."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping

import httpx
import pytest

from ai_spine_tools._settings import ServerSettings
from ai_spine_tools._variables import DEPRECATED_SETTINGS, DOCUMENTED_SETTINGS
from ai_spine_tools.exceptions import UnknownSettingError
from ai_spine_tools.server._startup import (
    KNOWN_SETTINGS,
    check_environment,
    raise_for_fatal,
    security_posture,
)
from ai_spine_tools.server._suite import tool_keys_variable
from docsimages import docs_text
from serverproc import EXAMPLES, free_port, running_server

WEATHER = EXAMPLES / "weather.py"


def _readme_settings() -> set[str]:
    """Every AI_SPINE_* name the docs mention (the prefix of config variables aside)."""
    names = set(re.findall(r"\bAI_SPINE_[A-Z0-9_]*[A-Z0-9]\b", docs_text()))
    return {name for name in names if not name.startswith("AI_SPINE_CONFIG_")}


MISTAKES_SHOWN = {"AI_SPINE_API_KEY": True, "AI_SPINE_REQUST_TIMEOUT": False}
"""The misspellings the docs show the check catching, and whether each stops start-up."""


def test_every_ai_spine_name_in_the_docs_passes_the_settings_check() -> None:
    names = _readme_settings() - set(MISTAKES_SHOWN)
    assert len(names) > 40  # the settings table was found
    # The docs' suite example gives its tool "weather" keys of its own.
    own = [tool_keys_variable("weather")]
    problems = check_environment(dict.fromkeys(names, "1"), config_variables=(), tool_settings=own)
    assert [p.message for p in problems if p.variable not in DEPRECATED_SETTINGS] == []


@pytest.mark.parametrize(("variable", "fatal"), MISTAKES_SHOWN.items())
def test_the_mistakes_the_docs_show_are_caught_as_they_say(variable: str, fatal: bool) -> None:
    assert variable in docs_text()
    [problem] = check_environment({variable: "1"}, config_variables=())
    assert problem.fatal == fatal


class _Recording(Mapping[str, str]):
    """An empty environment that remembers every name it was asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_every_variable_the_server_reads_is_known_and_in_the_readme() -> None:
    environ = _Recording()
    ServerSettings.from_env(environ)
    read = {name for name in environ.asked if name.startswith(("AI_SPINE_", "REDIS_", "DB_"))}
    assert read <= KNOWN_SETTINGS
    readme = docs_text()
    assert [name for name in sorted(read) if name not in readme] == []
    assert [name for name, _, _ in DOCUMENTED_SETTINGS if name not in readme] == []


UNKNOWN: list[tuple[dict[str, str], str, str | None, bool]] = [
    ({"AI_SPINE_API_KEY": "k1"}, "AI_SPINE_API_KEY", "AI_SPINE_API_KEYS", True),
    ({"ai_spine_api_keys": "k1"}, "ai_spine_api_keys", "AI_SPINE_API_KEYS", True),
    ({"AI_SPINE_APIKEYS_FILE": "/k"}, "AI_SPINE_APIKEYS_FILE", "AI_SPINE_API_KEYS_FILE", True),
    ({"AI_SPINE_SIGNING_SECRET": "s"}, "AI_SPINE_SIGNING_SECRET", "AI_SPINE_SIGNING_SECRETS", True),
    ({"AI_SPINE_REQUIRES_AUTH": "1"}, "AI_SPINE_REQUIRES_AUTH", "AI_SPINE_REQUIRE_AUTH", True),
    ({"AI_SPINE_AUTH_TOKEN": "t"}, "AI_SPINE_AUTH_TOKEN", None, True),  # a security word
    (
        {"AI_SPINE_REQUST_TIMEOUT": "5"},
        "AI_SPINE_REQUST_TIMEOUT",
        "AI_SPINE_REQUEST_TIMEOUT",
        False,
    ),
    ({"AI_SPINE_LOG_LEVL": "debug"}, "AI_SPINE_LOG_LEVL", "AI_SPINE_LOG_LEVEL", False),
    ({"AI_SPINE_SOMETHING_ELSE": "1"}, "AI_SPINE_SOMETHING_ELSE", None, False),
    ({"REDIS_ULR": "redis://x"}, "REDIS_ULR", "REDIS_URL", False),
    ({"DB_POOL_MAXX": "5"}, "DB_POOL_MAXX", "DB_POOL_MAX", False),
    ({"AI_SPINE_WORKER_THREADS": "2"}, "AI_SPINE_WORKER_THREADS", "AI_SPINE_WORKERS", False),
]


@pytest.mark.parametrize(("environ", "variable", "closest", "fatal"), UNKNOWN)
def test_an_unknown_setting_names_the_closest_known_one(
    environ: dict[str, str], variable: str, closest: str | None, fatal: bool
) -> None:
    [problem] = check_environment(environ, config_variables=())
    assert (problem.variable, problem.fatal) == (variable, fatal)
    if closest is not None:
        assert closest in problem.message


KNOWN_OR_FOREIGN = [
    {"AI_SPINE_API_KEYS": "k1", "AI_SPINE_REQUIRE_AUTH": "true"},
    {"AI_SPINE_WORKERS": "2", "AI_SPINE_SERVER": "granian", "AI_SPINE_TOOL": "x.py"},
    {"AI_SPINE_ALLOW_UNKNOWN_SETTINGS": "true"},
    {"REDIS_PASSWORD": "pw", "REDIS_SERVICE_HOST": "10.0.0.1", "DATABASE_URL": "postgres://"},
    {"PATH": "/bin", "HOME": "/root", "API_KEY": "not ours"},
    {"AI_SPINE_CONFIG_RETRIES": "3"},
]


@pytest.mark.parametrize("environ", KNOWN_OR_FOREIGN)
def test_known_and_foreign_variables_pass(environ: dict[str, str]) -> None:
    assert check_environment(environ, config_variables=("AI_SPINE_CONFIG_RETRIES",)) == []


def test_a_near_miss_of_a_config_variable_names_the_field_variable() -> None:
    [problem] = check_environment(
        {"AI_SPINE_CONFIG_RETRYS": "3"}, config_variables=("AI_SPINE_CONFIG_RETRIES",)
    )
    assert not problem.fatal
    assert "did you mean AI_SPINE_CONFIG_RETRIES" in problem.message


def test_config_variables_are_not_judged_without_the_tool() -> None:
    assert check_environment({"AI_SPINE_CONFIG_ANYTHING": "1"}) == []


def test_a_security_near_miss_raises_unless_allowed() -> None:
    environ = {"AI_SPINE_API_KEY": "k1"}
    problems = check_environment(environ, config_variables=())
    with pytest.raises(UnknownSettingError, match="AI_SPINE_API_KEYS") as raised:
        raise_for_fatal(problems, environ)
    assert raised.value.details == {"variable": "AI_SPINE_API_KEY"}
    raise_for_fatal(problems, {**environ, "AI_SPINE_ALLOW_UNKNOWN_SETTINGS": "true"})


POSTURES: list[tuple[ServerSettings, list[str], bool]] = [
    (ServerSettings(), ["listening on 0.0.0.0:3000", "auth off", "no rate limit"], True),
    (ServerSettings(host="127.0.0.1", port=8080), ["127.0.0.1:8080", "auth off"], False),
    (ServerSettings(host="::1"), ["[::1]:3000"], False),
    (ServerSettings(host="localhost"), ["localhost:3000"], False),
    (
        ServerSettings(api_keys=("a", "b"), rate_limit="100/minute"),
        ["auth on (2 API keys)", "signatures off", "rate limit 100/minute per key"],
        False,
    ),
    (
        ServerSettings(api_keys_file="/run/keys", signing_secrets=("s",)),
        ["auth on (key file /run/keys)", "signatures on (1 secret)"],
        False,
    ),
    (
        ServerSettings(signing_secrets=("s",), cors_origins=("https://a.example",)),
        ["auth on (signatures only)", "CORS origins: https://a.example"],
        False,
    ),
]


@pytest.mark.parametrize(("settings", "parts", "warned"), POSTURES)
def test_the_posture_line_says_who_may_call(
    settings: ServerSettings, parts: list[str], warned: bool
) -> None:
    line, warning = security_posture(settings)
    assert all(part in line for part in parts), line
    assert (warning is not None) == warned
    if warning is not None:
        assert "AI_SPINE_API_KEYS" in warning


def _cli(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ai_spine_tools", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_serve_refuses_a_near_miss_of_the_api_keys_variable_and_listens_on_nothing() -> None:
    port = free_port()
    result = _cli(
        "serve", str(WEATHER), "--host", "127.0.0.1", "--port", str(port),
        env={"AI_SPINE_API_KEY": "k1"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "AI_SPINE_API_KEY is not a setting" in result.stderr
    assert "did you mean AI_SPINE_API_KEYS?" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0)


@pytest.mark.parametrize("command", ["call", "mcp", "check"])
def test_every_command_that_runs_the_tool_refuses_it_too(command: str) -> None:
    args = [command, str(WEATHER)] + (['{"city": "Oslo"}'] if command == "call" else [])
    result = _cli(*args, env={"AI_SPINE_SIGNING_SECRET": "s"})
    if command == "check":  # check serves nothing: it reports the problem among the others
        assert "AI_SPINE_SIGNING_SECRETS" in result.stdout
        return
    assert result.returncode == 2, result.stderr
    assert "did you mean AI_SPINE_SIGNING_SECRETS?" in result.stderr


@pytest.mark.slow
def test_allowed_near_miss_serves_openly_and_says_so_over_a_real_socket() -> None:
    env = {"AI_SPINE_API_KEY": "k1", "AI_SPINE_ALLOW_UNKNOWN_SETTINGS": "true"}
    with running_server(WEATHER, env=env) as server:
        answer = httpx.post(
            f"{server.url}/api/execute", json={"input_data": {"city": "Oslo"}}, timeout=10
        )
        assert server.stop() == 0
        output = server.output()
    assert answer.status_code == 200  # nothing reads the misspelt name: auth is off
    assert "did you mean AI_SPINE_API_KEYS?" in output
    assert "security: listening on 127.0.0.1:" in output
    assert "auth off" in output


@pytest.mark.slow
def test_the_right_name_turns_auth_on_and_the_posture_line_says_so() -> None:
    env = {"AI_SPINE_API_KEYS": "k1", "AI_SPINE_REQUST_TIMEOUT": "5000"}
    with running_server(WEATHER, env=env) as server:
        body = {"input_data": {"city": "Oslo"}}
        anonymous = httpx.post(f"{server.url}/api/execute", json=body, timeout=10)
        keyed = httpx.post(
            f"{server.url}/api/execute", json=body, headers={"X-API-Key": "k1"}, timeout=10
        )
        server.stop()
        output = server.output()
    assert (anonymous.status_code, keyed.status_code) == (401, 200)
    assert "auth on (1 API key)" in output
    assert "AI_SPINE_REQUST_TIMEOUT is not a setting" in output
    assert "did you mean AI_SPINE_REQUEST_TIMEOUT?" in output
