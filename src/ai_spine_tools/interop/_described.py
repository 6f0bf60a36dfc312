"""What an exporter reads of a tool: its names, metadata and schemas (a ``Tool`` has them all).

Exporters take this, not ``Tool``, so that they sit below the tool: ``Tool.to_openai_tool()`` and
the server call them, never the other way round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ai_spine_tools.fields._schema import Schema

__all__ = ["Described"]


class _Metadata(Protocol):
    @property
    def description(self) -> str: ...

    @property
    def capabilities(self) -> tuple[str, ...]: ...

    @property
    def tags(self) -> tuple[str, ...]: ...

    def to_dict(self) -> dict[str, Any]: ...


class _Config(Protocol):
    def required_per_request(self) -> tuple[str, ...]: ...


class _Cache(Protocol):
    @property
    def enabled(self) -> bool: ...


class Described(Protocol):
    """A tool as the exporters see it."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def metadata(self) -> _Metadata: ...

    @property
    def input_schema(self) -> Schema: ...

    @property
    def config_schema(self) -> Schema: ...

    @property
    def config(self) -> _Config: ...

    @property
    def cache(self) -> _Cache: ...
