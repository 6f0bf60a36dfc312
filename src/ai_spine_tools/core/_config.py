"""Resolve a tool's config fields from the server side and from each request.

Each field takes the first value found: ``tool.configure(...)``, then the environment (the field's
``env=`` name, else ``AI_SPINE_CONFIG_<FIELD>``), then the request's ``config``, then its default.
A request may set a field only when the server has no value for it, or when the field is
``overridable`` (then the request wins). Server-side values are validated once, at start-up.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from ai_spine_tools.exceptions import (
    ConfigurationError,
    ServerConfigurationError,
    ToolDefinitionError,
    ValidationIssue,
)
from ai_spine_tools.fields import MISSING, BooleanField, Field, JSONField
from ai_spine_tools.fields._schema import IssueList
from ai_spine_tools.fields._secrets import hiding

__all__ = ["ConfigResolver", "env_name"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def env_name(key: str, field: Field) -> str:
    """Return the environment variable that supplies config field ``key``."""
    return field.env or "AI_SPINE_CONFIG_" + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


class ConfigResolver:
    """Holds the server-side config of one tool and merges each request's config into it."""

    def __init__(self, fields: Mapping[str, Field]) -> None:
        self.fields = dict(fields)
        # With a secret field, config dicts hide its value from repr (and so from logs).
        self._copy: Callable[[dict[str, Any]], dict[str, Any]] = hiding(self.fields) or dict
        # A secret nested in an object: the objects a caller supplies must be hidden too.
        self._hide_supplied = not isinstance(self._copy, type)
        self._explicit: dict[str, Any] = {}
        self._server: dict[str, Any] = {}  # key -> validated server-side value
        self._defaults: dict[str, Any] = {}
        self._missing: tuple[str, ...] = ()
        self._base: dict[str, Any] = {}
        self._mutable: tuple[str, ...] = ()
        self._resolved = False

    def configure(self, values: Mapping[str, Any]) -> None:
        """Set server-side values explicitly; they win over the environment."""
        unknown = [key for key in values if key not in self.fields]
        if unknown:
            raise ToolDefinitionError(
                f"unknown config field(s) {', '.join(map(repr, unknown))}; "
                f"declared: {', '.join(self.fields) or 'none'}"
            )
        for key, value in values.items():
            issues = IssueList()
            checked = self.fields[key].check(value, key, issues) if value is not None else None
            if issues:
                raise ServerConfigurationError(
                    f"configure({key}=...) is invalid: {issues[0].message}",
                    details={"field": key},
                )
            self._explicit[key] = checked
        self._resolved = False

    def resolve(self, environ: Mapping[str, str] | None = None) -> None:
        """Read and validate the server-side values; raise ``ServerConfigurationError`` naming
        the variable of a bad one."""
        environ = os.environ if environ is None else environ
        server: dict[str, Any] = {}
        defaults: dict[str, Any] = {}
        for key, field in self.fields.items():
            if self._explicit.get(key) is not None:
                server[key] = self._explicit[key]
                continue
            variable = env_name(key, field)
            raw = environ.get(variable)
            if raw is not None and raw != "":
                server[key] = _from_env(key, field, raw, variable)
            elif field.default is not MISSING:
                defaults[key] = field.default
        self._server = server
        self._defaults = defaults
        self._missing = tuple(
            key for key, field in self.fields.items() if field.required and key not in server
        )
        self._base = {**dict.fromkeys(self.fields), **defaults, **server}
        self._mutable = tuple(k for k, v in self._base.items() if isinstance(v, list | dict))
        self._resolved = True

    def required_per_request(self) -> tuple[str, ...]:
        """Return the required fields each request must supply (the server has no value)."""
        if not self._resolved:
            try:
                self.resolve()
            except ServerConfigurationError:  # reported at start-up; here, assume no values
                return tuple(key for key, field in self.fields.items() if field.required)
        return self._missing

    def server_values(self) -> dict[str, Any]:
        """Return the validated server-side values and defaults (what ``setup`` receives)."""
        if not self._resolved:
            self.resolve()
        values = dict.fromkeys(self.fields)
        values.update(self._defaults)
        values.update(self._server)
        return self._copy(values)

    def for_request(self, supplied: Mapping[str, Any] | None) -> dict[str, Any]:
        """Return the config for one execution; raise ``ConfigurationError`` when it is invalid."""
        if not self._resolved:
            self.resolve()
        values = self._copy(self._base)  # each execution gets its own copy, mutables included
        for key in self._mutable:
            values[key] = copy.deepcopy(values[key])
        if not supplied:
            if self._missing:
                raise _missing_error(self._missing)
            return values
        if not isinstance(supplied, Mapping):
            raise ConfigurationError("'config' must be an object")
        issues = IssueList()
        for key, value in supplied.items():
            field = self.fields.get(key)
            if field is None or value is None:
                continue  # unknown keys are ignored: callers may send config meant for others
            if key in self._server and not field.overridable:
                continue  # the server's own value cannot be swapped by a caller
            values[key] = field.check(value, key, issues)
        if issues:
            raise ConfigurationError(
                "Invalid config: " + "; ".join(issue.message for issue in issues),
                details={"errors": [issue.to_dict() for issue in issues]},
            )
        missing = tuple(key for key in self._missing if values[key] is None)
        if missing:
            raise _missing_error(missing)
        return self._copy(values) if self._hide_supplied else values


def _missing_error(keys: tuple[str, ...]) -> ConfigurationError:
    names = ", ".join(f"'{key}'" for key in keys)
    return ConfigurationError(
        f"Missing required config {names}: send it in the request's 'config' "
        "or set it on the server",
        details={
            "errors": [
                ValidationIssue(key, "required", f"'{key}' is required").to_dict() for key in keys
            ]
        },
    )


def _from_env(key: str, field: Field, raw: str, variable: str) -> Any:
    candidates: list[Any] = [raw]
    if isinstance(field, BooleanField):
        lowered = raw.strip().lower()
        candidates = [True] if lowered in _TRUE else [False] if lowered in _FALSE else [raw]
    else:
        with contextlib.suppress(msgspec.DecodeError):
            decoded = msgspec.json.decode(raw)
            # a JSON field takes the parsed document; the others try the text as it is first
            candidates.insert(0 if isinstance(field, JSONField) else 1, decoded)
    issues = IssueList()
    for candidate in candidates:
        issues = IssueList()
        value = field.check(candidate, key, issues)
        if not issues:
            return value
    shown = "" if field.sensitive else f" (got {raw[:40]!r})"
    raise ServerConfigurationError(
        f"Environment variable {variable} is invalid for config field '{key}': "
        f"{issues[0].message}{shown}",
        details={"variable": variable, "field": key},
    )
