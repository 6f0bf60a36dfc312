"""What the server says as it starts: the settings it does not know, and who may call it.

``check_environment`` compares every ``AI_SPINE_*`` variable of the process with the names the SDK
reads (and ``REDIS_*``, ``DB_POOL_*`` and ``DATABASE_*`` ones with theirs, where a near miss is
flagged and other names are left to the other software that reads them). An unknown name is a
warning naming the closest known one. A near miss of a security setting (``AI_SPINE_API_KEY``
for ``AI_SPINE_API_KEYS``) is fatal: nothing reads it, so the server would serve openly what its
operator meant to close; start-up stops with exit status 2 unless
``AI_SPINE_ALLOW_UNKNOWN_SETTINGS=true``.

``security_posture`` is the one line the server logs before it listens: the address, auth on or
off and with how many keys, signatures, the rate limit and the CORS origins, and a warning when a
non-loopback address is served with auth off.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ai_spine_tools._settings import ServerSettings
from ai_spine_tools._variables import DEPRECATED_SETTINGS, DOCUMENTED_SETTINGS, SECURITY_SETTINGS
from ai_spine_tools.core._config import env_name
from ai_spine_tools.core._tool import Tool
from ai_spine_tools.exceptions import UnknownSettingError
from ai_spine_tools.server._suite import tool_keys_variable

__all__ = [
    "KNOWN_SETTINGS",
    "SettingProblem",
    "announce",
    "check_environment",
    "check_tool_environment",
    "raise_for_fatal",
    "security_posture",
]

logger = logging.getLogger("ai_spine_tools.server")

ALLOW_VARIABLE = "AI_SPINE_ALLOW_UNKNOWN_SETTINGS"
CONFIG_PREFIX = "AI_SPINE_CONFIG_"
INTERNAL_SETTINGS = frozenset(
    {
        "AI_SPINE_TOOL",  # set by the server for its worker processes: the tool to load
        "AI_SPINE_METRICS_DIR",  # set by the server: where its workers share their metrics
        # The project's own test suite: fail, not skip, without Redis/PostgreSQL; the database
        # it uses; and its run of the protocol tests on the newest uvicorn.
        "AI_SPINE_REQUIRE_SERVICES",
        "AI_SPINE_TEST_POSTGRES",
        "AI_SPINE_NEWEST_UVICORN",
        "AI_SPINE_UVICORN_UNDER_TEST",
    }
)
KNOWN_SETTINGS = frozenset(
    {name for name, _, _ in DOCUMENTED_SETTINGS} | set(DEPRECATED_SETTINGS) | INTERNAL_SETTINGS
)
"""Every environment variable the SDK reads (besides each tool's config variables)."""
_FAMILIES = ("AI_SPINE_", "REDIS_", "DB_POOL_", "DATABASE_")
_SECURITY_WORDS = frozenset(
    {"KEY", "KEYS", "APIKEY", "APIKEYS", "SECRET", "SECRETS", "AUTH", "TOKEN", "TOKENS"}
    | {"PASSWORD", "SIGNING", "CREDENTIALS"}
)
_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


@dataclass(frozen=True, slots=True)
class SettingProblem:
    """One environment variable the SDK does not read (or reads under a new name)."""

    variable: str
    message: str
    fatal: bool = False


def check_environment(
    environ: Mapping[str, str] | None = None,
    *,
    config_variables: Iterable[str] | None = None,
    tool_settings: Iterable[str] = (),
) -> list[SettingProblem]:
    """Return a problem for each variable of ``environ`` that looks like a setting but is none.

    ``config_variables`` are the variables the served tool's config fields read (see
    ``_config.env_name``); without them, ``AI_SPINE_CONFIG_*`` names are not judged.
    ``tool_settings`` are the settings of the served tools' own (a suite's
    ``AI_SPINE_API_KEYS_<NAME>``).
    """
    env = os.environ if environ is None else environ
    configs = None if config_variables is None else frozenset(config_variables)
    own = frozenset(tool_settings)  # every one of them holds keys: a security setting
    settings = KNOWN_SETTINGS | own
    known = settings | (configs or frozenset())
    problems = []
    for name in sorted(env):
        if name in DEPRECATED_SETTINGS:
            problems.append(SettingProblem(name, DEPRECATED_SETTINGS[name]))
            continue
        upper = name.upper()
        family = next((prefix for prefix in _FAMILIES if upper.startswith(prefix)), None)
        if family is None or name in known:
            continue
        if upper.startswith(CONFIG_PREFIX):
            if configs is not None:
                problems.append(_unknown_config(name, configs))
            continue
        candidates = [known_name for known_name in settings if known_name.startswith(family)]
        closest = _closest(name, candidates, family)
        if family != "AI_SPINE_" and closest is None:
            continue  # REDIS_PASSWORD and the like belong to other software
        fatal = (
            closest in SECURITY_SETTINGS or closest in own
            if closest is not None
            else bool(_SECURITY_WORDS & set(upper.split("_")))
        )
        problems.append(SettingProblem(name, _unknown_message(name, closest, fatal), fatal))
    return problems


def check_tool_environment(
    tool: Tool | Sequence[Tool], environ: Mapping[str, str] | None = None
) -> list[SettingProblem]:
    """``check_environment`` for serving ``tool`` (or a suite of tools); raise
    ``UnknownSettingError`` on a near miss of a security setting (unless allowed)."""
    tools = [tool] if isinstance(tool, Tool) else list(tool)
    variables = [env_name(key, field) for one in tools for key, field in one.config.fields.items()]
    own = [tool_keys_variable(one.name) for one in tools] if len(tools) > 1 else []
    problems = check_environment(environ, config_variables=variables, tool_settings=own)
    raise_for_fatal(problems, environ)
    return problems


def raise_for_fatal(
    problems: Iterable[SettingProblem], environ: Mapping[str, str] | None = None
) -> None:
    """Raise ``UnknownSettingError`` for the first fatal problem, unless the environment sets
    ``AI_SPINE_ALLOW_UNKNOWN_SETTINGS`` to true."""
    env = os.environ if environ is None else environ
    if env.get(ALLOW_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on"):
        return
    for problem in problems:
        if problem.fatal:
            raise UnknownSettingError(problem.message, details={"variable": problem.variable})


def security_posture(settings: ServerSettings) -> tuple[str, str | None]:
    """The line saying where the server listens and who may call it, and a warning when anyone
    on a network may."""
    where = f"[{settings.host}]" if ":" in settings.host else settings.host
    if settings.auth_enabled:
        sources = []
        if settings.api_keys:
            sources.append(_count(len(settings.api_keys), "API key"))
        if settings.api_keys_file:
            sources.append(f"key file {settings.api_keys_file}")
        auth = f"auth on ({', '.join(sources)})" if sources else "auth on (signatures only)"
    else:
        auth = "auth off"
    secrets = len(settings.signing_secrets)
    if settings.signing_secrets_file:
        signatures = f"signatures on (secrets file {settings.signing_secrets_file})"
    elif secrets:
        signatures = f"signatures on ({_count(secrets, 'secret')})"
    else:
        signatures = "signatures off"
    by = settings.rate_limit_by or ("key" if settings.auth_enabled else "ip")
    limit = f"rate limit {settings.rate_limit} per {by}" if settings.rate_limit else "no rate limit"
    origins = ", ".join(settings.cors_origins) or "none"
    line = (
        f"security: listening on {where}:{settings.port}; {auth}; {signatures}; {limit}; "
        f"CORS origins: {origins}"
    )
    warning = None
    if not settings.auth_enabled and not _is_loopback(settings.host):
        warning = (
            f"auth is off while serving on {settings.host}: anyone who can reach port "
            f"{settings.port} can call the tool. Set AI_SPINE_API_KEYS (or "
            "AI_SPINE_SIGNING_SECRETS), or serve on 127.0.0.1 (--host 127.0.0.1)."
        )
    return line, warning


def announce(
    problems: Iterable[SettingProblem],
    settings: ServerSettings | None = None,
    *,
    own_keys: Sequence[str] = (),
) -> None:
    """Log each problem as a warning, then (with ``settings``) the security posture; ``own_keys``
    names the tools of a suite that have API keys of their own."""
    for problem in problems:
        logger.warning("%s", problem.message)
    if settings is not None:
        line, warning = security_posture(settings)
        if own_keys:
            line += f"; tools with API keys of their own: {', '.join(own_keys)}"
        logger.info("%s", line)
        if warning is not None:
            logger.warning("%s", warning)


def _unknown_config(name: str, configs: frozenset[str]) -> SettingProblem:
    closest = _closest(name, configs, CONFIG_PREFIX)
    declared = ", ".join(sorted(configs)) or "none"
    hint = f"did you mean {closest}?" if closest else f"the tool's config variables: {declared}"
    return SettingProblem(
        name, f"{name} matches no config field of the tool, so nothing reads it; {hint}"
    )


def _unknown_message(name: str, closest: str | None, fatal: bool) -> str:
    hint = f"did you mean {closest}?" if closest else "see the README's Settings table"
    if not fatal:
        return f"{name} is not a setting of ai-spine-tools, so nothing reads it; {hint}"
    names = closest or ", ".join(sorted(SECURITY_SETTINGS))
    return (
        f"{name} is not a setting of ai-spine-tools; did you mean {names}? Nothing reads it, "
        "so the server would start without the protection it asks for. Rename it, or set "
        f"{ALLOW_VARIABLE}=true to start anyway."
    )


def _closest(name: str, candidates: Iterable[str], prefix: str) -> str | None:
    """The candidate nearest ``name`` by edit distance (after their shared ``prefix``), when
    near enough to be a misspelling of it."""
    wanted = name.upper()[len(prefix) :]
    best: tuple[int, str] | None = None
    for candidate in sorted(candidates):
        distance = _distance(wanted, candidate[len(prefix) :])
        if best is None or distance < best[0]:
            best = (distance, candidate)
    if best is None:
        return None
    limit = 1 if len(wanted) <= 4 else 2 if len(wanted) <= 10 else 3
    return best[1] if best[0] <= limit else None


def _distance(a: str, b: str) -> int:
    """Edit distance with adjacent transpositions (``ULR`` is one step from ``URL``)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        row = [i]
        for j, other in enumerate(b, 1):
            cost = 0 if char == other else 1
            value = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and char == b[j - 2] and a[i - 2] == other:
                value = min(value, previous2[j - 2] + 1)
            row.append(value)
        previous2, previous = previous, row
    return previous[-1]


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
