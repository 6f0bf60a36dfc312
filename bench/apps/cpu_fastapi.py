"""The ``cpu`` workload in FastAPI: the same process pool via ``run_in_executor``, the usual way."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Header, Response
from pydantic import BaseModel, ConfigDict, Field

from bench.apps._common import PROCESS_WORKERS
from bench.apps._fastapi import Envelope, Success, add_health, check_key, success
from bench.apps.cpu_work import chain


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: Annotated[str, Field(max_length=100)]
    rounds: Annotated[int, Field(ge=1, le=100_000_000)]


class HashEnvelope(Envelope):
    input_data: Input


class Clients:
    """The app's process pool, started in the lifespan."""

    pool: ProcessPoolExecutor


clients = Clients()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start every worker of the pool, and stop them at shutdown."""
    clients.pool = ProcessPoolExecutor(
        PROCESS_WORKERS, mp_context=multiprocessing.get_context("spawn")
    )
    loop = asyncio.get_running_loop()
    await asyncio.gather(
        *(loop.run_in_executor(clients.pool, chain, "warm", 1) for _ in range(PROCESS_WORKERS))
    )
    yield
    clients.pool.shutdown(cancel_futures=True)


app = FastAPI(lifespan=lifespan)
add_health(app)


@app.post("/api/execute")
async def execute(
    envelope: HashEnvelope,
    response: Response,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Success:
    """Return the last digest of the seed's chain, computed in a worker process."""
    check_key(x_api_key)
    started = time.perf_counter()
    data = envelope.input_data
    loop = asyncio.get_running_loop()
    digest = await loop.run_in_executor(clients.pool, chain, data.seed, data.rounds)
    output = {"seed": data.seed, "rounds": data.rounds, "digest": digest}
    return success(response, output, started, envelope.execution_id)
