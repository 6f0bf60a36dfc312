"""Values out: how what ``execute`` returns becomes JSON, with one encoder for every answer.

msgspec encodes the common Python values natively (the README's "Values out" table lists each
conversion): ``Decimal`` as a JSON number with its exact digits, ``bytes`` as base64,
``datetime``/``date``/``time`` as ISO 8601, ``timedelta`` as an ISO 8601 duration, ``UUID`` as
its canonical string, sets and tuples as arrays, an ``Enum`` as its value, dataclasses and msgspec
``Struct`` as objects; ``enc_hook`` adds pydantic models (``model_dump(mode="json")``) without
importing pydantic. What JSON cannot hold is an ``OutputNotSerializableError`` naming its path:
msgspec writes a ``NaN`` or infinite float as ``null``, so an encoded answer holding ``null``
has its values searched for one (an answer without ``null`` costs one byte scan).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from ai_spine_tools.exceptions import OutputNotSerializableError

__all__ = ["ENCODER", "check_finite", "unserializable"]


def _enc_hook(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)  # a pydantic (v2) model
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"Encoding objects of type {type(value).__name__} is unsupported")


ENCODER = msgspec.json.Encoder(decimal_format="number", enc_hook=_enc_hook)
"""The encoder of every answer the server writes."""
_encode: Callable[[Any], bytes] = ENCODER.encode


def check_finite(body: bytes, **parts: Any) -> None:
    """Raise ``OutputNotSerializableError`` if ``body``, encoded from ``parts`` (named as in the
    envelope: ``output_data=...``), wrote a ``NaN`` or an infinity as ``null``."""
    if b"null" not in body:
        return
    for name, value in parts.items():
        found = _non_finite(value)
        if found is not None:
            path, bad = found
            raise OutputNotSerializableError(
                f"{name}{path} is {bad!r}, which JSON cannot hold (it would become null): "
                "return None, or a string such as 'NaN', for it",
                details={"path": f"{name}{path}"},
            )


def unserializable(exc: Exception, **parts: Any) -> OutputNotSerializableError:
    """The error for ``parts`` that the encoder refused with ``exc``, naming the first value it
    cannot encode."""
    for name, value in parts.items():
        found = _unencodable(value)
        if found is not None:
            path, bad = found
            return OutputNotSerializableError(
                f"{name}{path} is {_kind(bad)}, which JSON cannot hold: return a dict, list, "
                "str, number, bool or None for it (docs: Writing a tool, Values out)",
                details={"path": f"{name}{path}", "type": type(bad).__name__},
            )
    return OutputNotSerializableError(f"The tool's output cannot be encoded as JSON: {exc}")


def encode_output(output: Any) -> bytes:
    """Encode ``output_data`` as JSON once; a value JSON cannot hold (an unknown type, a
    ``NaN`` or an infinity) raises ``OutputNotSerializableError`` naming it."""
    try:
        encoded = _encode(output)
    except (TypeError, ValueError, OverflowError) as exc:
        raise unserializable(exc, output_data=output) from exc
    check_finite(encoded, output_data=output)
    return encoded


def _non_finite(value: Any) -> tuple[str, Any] | None:
    """The path (``.a[2].b``) and value of the first ``NaN`` or infinity in ``value``."""
    kind = type(value)
    if kind is float or isinstance(value, float):
        return None if math.isfinite(value) else ("", value)
    if kind is str or kind is int or kind is bool or value is None:
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _non_finite(item)
            if found is not None:
                return f".{key}{found[0]}", found[1]
        return None
    if isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            found = _non_finite(item)
            if found is not None:
                return f"[{index}]{found[0]}", found[1]
        return None
    if isinstance(value, msgspec.Struct) or hasattr(value, "__dataclass_fields__"):
        try:
            return _non_finite(msgspec.to_builtins(value))
        except (TypeError, ValueError):  # holds something else it cannot convert
            return None
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _non_finite(dump())
    return None


def _unencodable(value: Any) -> tuple[str, Any] | None:
    """The path and value of the first part of ``value`` the encoder refuses (the error path:
    it encodes each part on its own)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _unencodable(item)
            if found is not None:
                return f".{key}{found[0]}", found[1]
        return None if _encodes(value) else ("", value)
    if isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            found = _unencodable(item)
            if found is not None:
                return f"[{index}]{found[0]}", found[1]
        return None
    return None if _encodes(value) else ("", value)


def _encodes(value: Any) -> bool:
    try:
        _encode(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _kind(value: Any) -> str:
    text = repr(value)
    shown = text if len(text) <= 40 else text[:37] + "..."
    return f"{shown} (a {type(value).__module__}.{type(value).__qualname__})"
