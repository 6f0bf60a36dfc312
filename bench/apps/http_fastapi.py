"""The ``upstream_http`` workload in FastAPI: the same aiohttp session, the usual FastAPI way."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import aiohttp
from fastapi import FastAPI, Header, Response

from bench.apps._common import UPSTREAM_URL
from bench.apps._fastapi import Success, WeatherEnvelope, add_health, check_key, success
from bench.apps.upstream import to_output


class Clients:
    """The app's clients, opened in the lifespan."""

    session: aiohttp.ClientSession


clients = Clients()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the shared session (up to 100 keep-alive connections) and close it at shutdown."""
    clients.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
    yield
    await clients.session.close()


app = FastAPI(lifespan=lifespan)
add_health(app)


@app.post("/api/execute")
async def execute(
    envelope: WeatherEnvelope,
    response: Response,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Success:
    """Fetch the city's document from the upstream and shape it as the tool's output."""
    check_key(x_api_key)
    started = time.perf_counter()
    data = envelope.input_data
    async with clients.session.get(UPSTREAM_URL, params={"q": data.city}) as r:
        r.raise_for_status()
        document = await r.json()
    return success(response, to_output(document, data.units), started, envelope.execution_id)
