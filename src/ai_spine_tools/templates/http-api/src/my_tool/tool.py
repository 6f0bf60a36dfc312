"""My Tool: current weather from an HTTP API via the SDK's pooled client, retries and breaker."""

from __future__ import annotations

from typing import Any

from ai_spine_tools import ToolContext, create_tool, number_field, retry, url_field


async def current_weather(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> dict[str, Any]:
    """Ask the forecast API for the current weather at a coordinate."""
    params = {
        "latitude": input["latitude"],
        "longitude": input["longitude"],
        "current": "temperature_2m,wind_speed_10m",
    }

    # Transient failures (timeouts, 5xx) are retried with backoff, never past the deadline;
    # repeated failures open the breaker, and then calls fail fast with a retryable 503.
    # What is left reaches the caller as it is: a 5xx as a retryable 502 UPSTREAM_ERROR, a
    # timeout as a 504 UPSTREAM_TIMEOUT, a 404 as a 502 that is not retried.
    @retry(attempts=3, context=context)
    async def fetch() -> dict[str, Any]:
        async with context.breaker("forecast-api", failure_threshold=5, recovery_timeout=30):
            response = await context.http.get(config["api_url"], params=params, timeout=5.0)
            response.raise_for_status()
            payload: dict[str, Any] = response.json()
            return payload

    payload = await fetch()
    current = payload.get("current", {})
    return {
        "latitude": input["latitude"],
        "longitude": input["longitude"],
        "temperature_c": current.get("temperature_2m"),
        "wind_speed_kmh": current.get("wind_speed_10m"),
    }


tool = create_tool(
    metadata={
        "name": "my-tool",
        "version": "0.1.0",
        "description": "Current temperature and wind at a coordinate, from a forecast API",
        "capabilities": ["weather.current"],
    },
    schema={
        "input": {
            "latitude": number_field(
                required=True, min=-90, max=90, description="Latitude", example=40.42
            ),
            "longitude": number_field(
                required=True, min=-180, max=180, description="Longitude", example=-3.7
            ),
        },
        "config": {
            "api_url": url_field(
                env="WEATHER_API_URL",
                default="https://api.open-meteo.com/v1/forecast",
                description="The forecast API's endpoint",
            ),
        },
    },
    execute=current_weather,
)
