"""The weather example with result caching on: every benchmark request after the first is a hit."""

from __future__ import annotations

from ai_spine_tools import create_tool
from weather import get_weather
from weather import tool as weather

tool = create_tool(
    metadata=weather.metadata.to_dict(),
    schema={"input": weather.input_schema.fields, "config": weather.config.fields},
    execute=get_weather,
    cache={"ttl": 600},
)
