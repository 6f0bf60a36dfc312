"""Shared test setup: the examples folder is importable."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ai_spine_tools import HTTPClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from upstream import UpstreamAPI, upstream_api  # noqa: E402  (tests/ is on sys.path by now)


@pytest.fixture
async def api() -> AsyncIterator[UpstreamAPI]:
    """A real upstream HTTP API on loopback (``tests/upstream.py``)."""
    async with upstream_api() as served:
        yield served


@pytest.fixture
async def http_client() -> AsyncIterator[HTTPClient]:
    """An outbound ``HTTPClient`` of its own, closed afterwards."""
    async with HTTPClient() as made:
        yield made
