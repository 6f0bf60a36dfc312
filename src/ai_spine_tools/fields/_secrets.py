"""Keep the values of ``api_key_field`` and ``secret_field`` out of ``repr`` and logs.

The ``input`` and ``config`` dicts that ``execute`` receives are plain ``dict`` subclasses when the
schema declares a secret: reading them, encoding them (msgspec, json) and copying them work as for
any dict, but ``repr`` (and so ``str``, f-strings and ``logger.info("%s", config)``) shows ``***``
in place of each secret value. Objects nested in them (in arrays too) that hold a secret are such
dicts as well. The values themselves stay plain ``str``, usable as they are.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ai_spine_tools.fields import ArrayField, Field, ObjectField

__all__ = ["REDACTED", "SecretValues", "hiding", "secret_values_type"]

REDACTED = "***"


class SecretValues(dict[str, Any]):
    """A dict whose ``repr`` hides the values of the keys in ``hidden``.

    Each set of hidden keys gets its own subclass (``secret_values_type``), so that building one
    is a plain ``dict`` copy: 0.1 us, where an ``__init__`` storing the keys cost three times that.
    """

    __slots__ = ()
    hidden: ClassVar[frozenset[str]] = frozenset()

    def __repr__(self) -> str:
        hidden = self.hidden
        shown = (
            f"{key!r}: {REDACTED!r}"
            if key in hidden and value is not None
            else f"{key!r}: {value!r}"
            for key, value in self.items()
        )
        return "{" + ", ".join(shown) + "}"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (dict(self), self.hidden))

    def copy(self) -> SecretValues:
        """Return a shallow copy that still hides the same keys."""
        return type(self)(self)


@functools.cache
def secret_values_type(hidden: frozenset[str]) -> type[SecretValues]:
    """Return the ``SecretValues`` subclass that hides ``hidden``."""
    return type("SecretValues", (SecretValues,), {"__slots__": (), "hidden": hidden})


def _rebuild(values: dict[str, Any], hidden: frozenset[str]) -> SecretValues:
    return secret_values_type(hidden)(values)


def hiding(fields: Mapping[str, Field]) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """Return what copies a value of ``fields`` into a dict hiding its secrets, and those of the
    objects nested in it (in arrays too); ``None`` when no field anywhere is a secret."""
    hidden = frozenset(key for key, field in fields.items() if field.sensitive)
    nested = {key: inner for key, field in fields.items() if (inner := _hiding_in(field))}
    if not hidden and not nested:
        return None
    wrap = secret_values_type(hidden)
    if not nested:
        return wrap

    def hide(values: dict[str, Any]) -> dict[str, Any]:
        out = wrap(values)
        for key, inner in nested.items():
            value = out.get(key)
            if value is not None:
                out[key] = inner(value)
        return out

    return hide


def _hiding_in(field: Field) -> Callable[[Any], Any] | None:
    """What hides the secrets inside a value of ``field`` (an object, or an array of them)."""
    if isinstance(field, ObjectField) and field.properties:
        inner = hiding(field.properties)
        if inner is not None:
            return lambda value: inner(value) if type(value) is dict else value
    elif isinstance(field, ArrayField) and field.items is not None:
        item = _hiding_in(field.items)
        if item is not None:
            return lambda value: [item(x) for x in value] if type(value) is list else value
    return None
