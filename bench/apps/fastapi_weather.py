"""The same weather tool written the usual FastAPI + pydantic v2 way.

It checks the same API key and sends the same response headers as ours.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from weather import get_weather

API_KEY = "bench-key"


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    city: Annotated[str, Field(max_length=100)]
    units: Literal["celsius", "fahrenheit"] = "celsius"


class Envelope(BaseModel):
    input_data: Input
    config: dict[str, Any] = {}
    execution_id: str | None = None
    metadata: dict[str, Any] | None = None


class Success(BaseModel):
    execution_id: str
    status: str
    output_data: dict[str, Any]
    execution_time_ms: float
    timestamp: str


app = FastAPI()


@app.post("/api/execute")
async def execute(
    envelope: Envelope, response: Response, x_api_key: Annotated[str | None, Header()] = None
) -> Success:
    """Run the weather function on validated input."""
    if x_api_key != API_KEY:
        raise HTTPException(status_code=401, detail="A valid API key is required")
    started = time.perf_counter()
    output = await get_weather(envelope.input_data.model_dump(), envelope.config, None)  # type: ignore[arg-type]
    execution_id = envelope.execution_id or str(uuid.uuid4())
    response.headers.update(
        {
            "x-request-id": execution_id,
            "x-response-time": f"{(time.perf_counter() - started) * 1000:.3f}ms",
            "x-tool-version": "1.0.0",
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            "referrer-policy": "no-referrer",
            "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
        }
    )
    return Success(
        execution_id=execution_id,
        status="success",
        output_data=output,
        execution_time_ms=(time.perf_counter() - started) * 1000.0,
        timestamp=dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
    )


@app.get("/health")
async def health() -> dict[str, str]:
    """Liveness."""
    return {"status": "healthy"}
