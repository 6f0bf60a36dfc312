"""The seed's weather tool runs in-process with validation."""

from __future__ import annotations

import weather


async def test_weather_returns_data_for_a_city() -> None:
    result = await weather.tool.run({"city": "Madrid"})
    assert result.ok
    assert result.data["city"] == "Madrid"
    assert result.data["units"] == "celsius"


async def test_weather_rejects_a_bad_city() -> None:
    result = await weather.tool.run({"city": "x" * 101, "units": "kelvin"})
    assert result.error_code == "VALIDATION_ERROR"
    assert result.failure is not None
    paths = [issue["path"] for issue in result.failure.details["errors"]]
    assert paths == ["city", "units"]
