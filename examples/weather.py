"""The weather tool from the performance guide: one city in, its current weather out.

Run it with ``ai-spine serve examples/weather.py`` and call it with::

    curl -s localhost:3000/api/execute -H 'content-type: application/json' \
         -d '{"input_data": {"city": "Madrid", "units": "celsius"}}'

It answers from a deterministic table, so it needs no network and no API key; set
``WEATHER_API_KEY`` and a real provider could be called in its place.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ai_spine_tools import ToolContext, api_key_field, create_tool, enum_field, string_field

_CONDITIONS = ("clear", "partly cloudy", "cloudy", "light rain", "windy", "sunny")


async def get_weather(
    input: dict[str, Any],
    config: dict[str, Any],
    context: ToolContext,
) -> dict[str, Any]:
    """Return the current weather for ``input["city"]`` in the requested units."""
    city: str = input["city"]
    digest = hashlib.blake2b(city.casefold().encode(), digest_size=4).digest()
    celsius = round(-5 + digest[0] / 255 * 40, 1)
    temperature = celsius if input["units"] == "celsius" else round(celsius * 9 / 5 + 32, 1)
    return {
        "city": city,
        "temperature": temperature,
        "units": input["units"],
        "conditions": _CONDITIONS[digest[1] % len(_CONDITIONS)],
        "humidity_percent": digest[2] % 101,
    }


tool = create_tool(
    metadata={
        "name": "weather-lookup",
        "version": "1.0.0",
        "description": "Get current weather for a specific city",
        "capabilities": ["weather.current"],
    },
    schema={
        "input": {
            "city": string_field(
                required=True, max_length=100, description="City name", example="Madrid"
            ),
            "units": enum_field(
                ["celsius", "fahrenheit"], default="celsius", description="Temperature units"
            ),
        },
        "config": {
            "api_key": api_key_field(
                required=False, env="WEATHER_API_KEY", description="Weather provider API key"
            ),
        },
    },
    execute=get_weather,
)
