"""The seed's weather tool, served in-process through our own testing toolkit, validates."""

from __future__ import annotations

import weather
from ai_spine_tools.testing import AsyncToolTestClient, assert_success, assert_validation_error


async def test_weather_returns_data_for_a_city() -> None:
    async with AsyncToolTestClient(weather.tool) as client:
        response = await client.execute({"city": "Madrid"})
    assert response.ok
    data = assert_success(response)
    assert data["city"] == "Madrid"
    assert data["units"] == "celsius"


async def test_weather_rejects_a_bad_city() -> None:
    async with AsyncToolTestClient(weather.tool) as client:
        response = await client.execute({"city": "x" * 101, "units": "kelvin"})
    assert response.error_code == "VALIDATION_ERROR"
    assert response.status_code == 400
    paths = [issue["path"] for issue in response.validation_errors]
    assert paths == ["city", "units"]
    assert_validation_error(response, "city", "too_long")
    assert_validation_error(response, "units", "enum")
