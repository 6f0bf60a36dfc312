"""The weather tool of the performance guide, calling a real weather API through ``context.http``.

Serve it with ``ai-spine serve examples/forecast.py`` and call it with::

    curl -s localhost:3000/api/execute -H 'content-type: application/json' \
         -d '{"input_data": {"city": "Madrid"}}'

``WEATHER_API_URL`` points it at the provider (a JSON API answering ``?q=<city>&units=...``);
``WEATHER_API_KEY``, when set, is sent as ``X-API-Key``. The call goes through the server's
pooled client, is retried on timeouts and 5xx answers (never past the execution's deadline),
and stops being made for 30 s after five failures in a row (a breaker), so a provider that is
down costs callers a fast, retryable 503 instead of a slow timeout each.
"""

from __future__ import annotations

from typing import Any

from ai_spine_tools import (
    ToolContext,
    api_key_field,
    create_tool,
    enum_field,
    retry,
    string_field,
    url_field,
)


async def get_weather(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> dict[str, Any]:
    """Ask the provider for the current weather in ``input["city"]``."""
    headers = {"x-api-key": config["api_key"]} if config["api_key"] else None

    @retry(attempts=3, context=context)
    async def fetch() -> dict[str, Any]:
        async with context.breaker("weather-api", failure_threshold=5, recovery_timeout=30):
            response = await context.http.get(
                config["api_url"],
                params={"q": input["city"], "units": input["units"]},
                headers=headers,
                timeout=5.0,
            )
            data: dict[str, Any] = response.raise_for_status().json()
            return data

    data = await fetch()
    return {"city": input["city"], "units": input["units"], **data}


tool = create_tool(
    metadata={
        "name": "weather-forecast",
        "version": "1.0.0",
        "description": "Get current weather for a specific city from a weather API",
        "capabilities": ["weather.current"],
    },
    schema={
        "input": {
            "city": string_field(required=True, max_length=100, example="Madrid"),
            "units": enum_field(["celsius", "fahrenheit"], default="celsius"),
        },
        "config": {
            "api_url": url_field(
                env="WEATHER_API_URL",
                default="http://127.0.0.1:8089/weather",
                description="The weather API's endpoint",
            ),
            "api_key": api_key_field(
                required=False, env="WEATHER_API_KEY", description="Weather provider API key"
            ),
        },
    },
    execute=get_weather,
)
