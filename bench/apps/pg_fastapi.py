"""The ``postgres`` workload in FastAPI: an asyncpg pool of the same size, the usual way."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, Header, Response
from pydantic import BaseModel, ConfigDict, Field

from bench.apps._common import DATABASE_URL, POOL_SIZE, USER_QUERY
from bench.apps._fastapi import Envelope, Success, add_health, check_key, success


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[int, Field(ge=1, le=1_000_000_000)]


class UserEnvelope(Envelope):
    input_data: Input


class Clients:
    """The app's clients, opened in the lifespan."""

    pool: Any  # asyncpg ships no type hints


clients = Clients()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the pool and close it at shutdown."""
    clients.pool = await asyncpg.create_pool(DATABASE_URL, min_size=POOL_SIZE, max_size=POOL_SIZE)
    yield
    await clients.pool.close()


app = FastAPI(lifespan=lifespan)
add_health(app)


@app.post("/api/execute")
async def execute(
    envelope: UserEnvelope,
    response: Response,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Success:
    """Return the user named by the request."""
    check_key(x_api_key)
    started = time.perf_counter()
    row = await clients.pool.fetchrow(USER_QUERY, envelope.input_data.id)
    return success(response, dict(row), started, envelope.execution_id)
