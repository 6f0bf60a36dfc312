"""Ten tools in one server: the weather example and nine more like it, each under its name.

The benchmark loads ``/weather-lookup/api/execute`` against the weather example served alone:
what routing by prefix costs, and what nine more tools cost in memory.
"""

from __future__ import annotations

from ai_spine_tools import create_tool
from weather import get_weather
from weather import tool as weather

tools = [
    weather,
    *(
        create_tool(
            metadata={**weather.metadata.to_dict(), "name": f"weather-{n}"},
            schema={"input": weather.input_schema.fields, "config": weather.config.fields},
            execute=get_weather,
        )
        for n in range(1, 10)
    ),
]
