"""The ``redis_l2`` workload, ours: the weather tool with result caching, every hit read from Redis.

``l1_ttl: 0`` keeps results out of this process's memory, so a hit is always an L2 (Redis) read;
the benchmark fills Redis beforehand from another process, so this one never computes a result.
Served with ``REDIS_URL`` and ``AI_SPINE_REDIS_PREFIX`` set by the benchmark.
"""

from __future__ import annotations

from ai_spine_tools import create_tool, enum_field, string_field
from weather import get_weather

tool = create_tool(
    metadata={
        "name": "weather-lookup",
        "version": "1.0.0",
        "description": "Get current weather for a specific city",
        "capabilities": ["weather.current"],
    },
    # No config fields: the result key is the input alone (bench.apps._common.result_key).
    schema={
        "input": {
            "city": string_field(required=True, max_length=100, description="City name"),
            "units": enum_field(["celsius", "fahrenheit"], default="celsius"),
        }
    },
    execute=get_weather,
    cache={"ttl": 600, "l1_ttl": 0},
)
