"""What the FastAPI contenders share: our envelope as pydantic models, the key check, the headers.

Each workload's FastAPI app is written the usual way (pydantic v2 input model, a typed route,
its clients opened in the lifespan) and answers with the same body shape and headers as ours.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from bench.apps._common import API_KEY


class WeatherInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    city: Annotated[str, Field(max_length=100)]
    units: Literal["celsius", "fahrenheit"] = "celsius"


class Envelope(BaseModel):
    config: dict[str, Any] = {}
    execution_id: str | None = None
    metadata: dict[str, Any] | None = None


class WeatherEnvelope(Envelope):
    input_data: WeatherInput


class Success(BaseModel):
    execution_id: str
    status: str
    output_data: dict[str, Any]
    execution_time_ms: float
    timestamp: str


class CacheBlock(BaseModel):
    hit: bool
    key: str
    age_ms: float


class CachedSuccess(Success):
    cache: CacheBlock


def check_key(x_api_key: str | None) -> None:
    """Refuse a request without the benchmark's API key, as ours does."""
    if x_api_key != API_KEY:
        raise HTTPException(status_code=401, detail="A valid API key is required")


def success(
    response: Response, output: dict[str, Any], started: float, execution_id: str | None = None
) -> Success:
    """Set our headers on ``response`` and return our envelope around ``output``."""
    return Success(**_fields(response, output, started, execution_id))


def cached_success(
    response: Response, output: dict[str, Any], started: float, cache: CacheBlock
) -> CachedSuccess:
    """Set our headers (and ``x-cache: HIT``) and return our envelope of a cached result."""
    response.headers["x-cache"] = "HIT"
    return CachedSuccess(**_fields(response, output, started, None), cache=cache)


def _fields(
    response: Response, output: dict[str, Any], started: float, execution_id: str | None
) -> dict[str, Any]:
    execution_id = execution_id or str(uuid.uuid4())
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
    return {
        "execution_id": execution_id,
        "status": "success",
        "output_data": output,
        "execution_time_ms": (time.perf_counter() - started) * 1000.0,
        "timestamp": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
    }


def add_health(app: FastAPI) -> None:
    """Add ``GET /health`` (the cpu workload polls it while the app works)."""

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}
