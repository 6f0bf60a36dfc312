"""What the three contenders of a workload must agree on: the query, the cache key, the sizes.

Ours, the yardstick and FastAPI import these, so they do the same work by construction. The
settings come from the environment the benchmark starts each app with.
"""

from __future__ import annotations

import hashlib
import os

import msgspec

API_KEY = "bench-key"
UPSTREAM_URL = os.environ.get("BENCH_UPSTREAM_URL", "http://127.0.0.1:8089") + "/weather"
USER_QUERY = "SELECT id, name, city, score FROM bench_users WHERE id = $1"
DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/ai_spine_bench")
POOL_SIZE = int(os.environ.get("DB_POOL_MAX", "10"))
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13")
REDIS_PREFIX = os.environ.get("AI_SPINE_REDIS_PREFIX", "ai-spine-bench:")
REDIS_CONNECTIONS = int(os.environ.get("REDIS_MAX_CONNECTIONS", "10"))
PROCESS_WORKERS = int(os.environ.get("AI_SPINE_PROCESS_WORKERS", "0")) or os.cpu_count() or 1

# Ours keys a result by tool name, version and the sha256 of the validated input encoded with
# sorted keys (the tool declares no config, so none of it is in the key): ToolCache.key_for.
_RESULT_PREFIX = "result:weather-lookup:1.0.0:"
_canonical = msgspec.json.Encoder(order="deterministic").encode


def result_key(city: str, units: str) -> str:
    """Return the key under which ours caches the weather of ``city`` in ``units``."""
    digest = hashlib.sha256(_canonical({"city": city, "units": units})).hexdigest()
    return _RESULT_PREFIX + digest
