"""The pools benchmark (PostgreSQL and Redis against their bare clients) runs end to end in its
smoke mode, against the real services, so it cannot rot."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from redisproc import shared_redis

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = os.environ.get("AI_SPINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_or_skip() -> None:
    async def connect() -> None:
        import asyncpg

        connection = await asyncpg.connect(POSTGRES, timeout=3)
        await connection.close()

    try:
        asyncio.run(connect())
    except Exception as exc:
        if os.environ.get("AI_SPINE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL is required but not reachable at {POSTGRES}: {exc}")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES}: {exc}")


@pytest.mark.slow
def test_pools_benchmark_smoke_mode_reports_every_pair(tmp_path: Path) -> None:
    shared_redis()
    _postgres_or_skip()
    out = tmp_path / "pools.json"
    subprocess.run(
        [sys.executable, "-m", "bench.pools", "--smoke", "--out", str(out)],
        cwd=ROOT,
        check=True,
        timeout=300,
        capture_output=True,
    )
    results = json.loads(out.read_text())
    for pair in ("postgres_pool", "postgres_pool_busy", "postgres_tool", "redis_l2_hit"):
        assert results[pair]["ratio_cpu"] > 0
        assert results[pair]["ratio_wall"] > 0
        assert set(results[pair]["cpu_us"]) == {"bare", "ours"}
