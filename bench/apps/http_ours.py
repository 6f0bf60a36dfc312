"""The ``upstream_http`` workload, ours: the weather tool asking the upstream API through
``context.http``, written the way the SDK's guide writes it."""

from __future__ import annotations

from typing import Any

from ai_spine_tools import ToolContext, create_tool, enum_field, string_field
from bench.apps._common import UPSTREAM_URL
from bench.apps.upstream import to_output


async def get_weather(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> dict[str, Any]:
    """Return the upstream's current weather for ``input["city"]`` in the requested units."""
    # Only get(..., params=), raise_for_status() and json(): the shape both the httpx client and
    # its aiohttp successor offer, so this tool measures whichever the SDK ships.
    r = await context.http.get(UPSTREAM_URL, params={"q": input["city"]})
    r.raise_for_status()
    data = r.json()
    return to_output(data, input["units"])


tool = create_tool(
    metadata={
        "name": "weather-lookup",
        "version": "1.0.0",
        "description": "Get current weather for a specific city from the upstream API",
        "capabilities": ["weather.current"],
    },
    schema={
        "input": {
            "city": string_field(required=True, max_length=100, description="City name"),
            "units": enum_field(["celsius", "fahrenheit"], default="celsius"),
        }
    },
    execute=get_weather,
)
