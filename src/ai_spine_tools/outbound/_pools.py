"""The process's connection pools, by name, so metrics can report them without knowing them."""

from __future__ import annotations

import weakref
from typing import Any, Protocol

from ai_spine_tools.outbound._http import http_stats

__all__ = ["Pool", "pool_stats", "register_pool", "unregister_pool"]


class Pool(Protocol):
    """Anything that reports its pool figures (size, idle, in use, acquire wait)."""

    def stats(self) -> dict[str, Any]: ...


_POOLS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def register_pool(name: str, pool: Pool) -> None:
    """Report ``pool`` under ``name`` in metrics while it is alive."""
    _POOLS[name] = pool


def unregister_pool(name: str, pool: Pool) -> None:
    """Stop reporting ``pool`` (only if ``name`` still refers to it)."""
    if _POOLS.get(name) is pool:
        del _POOLS[name]


def pool_stats() -> dict[str, dict[str, Any]]:
    """Return every registered pool's figures, and the shared HTTP client's when open."""
    out = {name: pool.stats() for name, pool in sorted(_POOLS.items())}
    http = http_stats()
    if http is not None:
        out["http"] = http
    return out
