"""The ``cpu`` yardstick: bare ASGI + msgspec + a ``ProcessPoolExecutor`` via ``run_in_executor``.

The pool has as many workers as ours (``AI_SPINE_PROCESS_WORKERS``, default the core count),
started at start-up with the ``spawn`` method (no fork of a running event loop), so no request
waits for a worker to boot.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Annotated, Any

import msgspec

from bench.apps._bare import Answer, bare_app
from bench.apps._common import PROCESS_WORKERS
from bench.apps.cpu_work import chain


class Input(msgspec.Struct, forbid_unknown_fields=True):
    seed: Annotated[str, msgspec.Meta(max_length=100)]
    rounds: Annotated[int, msgspec.Meta(ge=1, le=100_000_000)]


class Envelope(msgspec.Struct):
    input_data: Input
    config: dict[str, Any] | None = None


class Clients:
    """The app's process pool, started at start-up."""

    pool: ProcessPoolExecutor


clients = Clients()
decoder = msgspec.json.Decoder(Envelope)


async def execute(body: bytes) -> Answer:
    """Return the last digest of the seed's chain, computed in a worker process."""
    data = decoder.decode(body).input_data
    loop = asyncio.get_running_loop()
    digest = await loop.run_in_executor(clients.pool, chain, data.seed, data.rounds)
    return Answer({"seed": data.seed, "rounds": data.rounds, "digest": digest})


async def startup() -> None:
    context = multiprocessing.get_context("spawn")
    clients.pool = ProcessPoolExecutor(PROCESS_WORKERS, mp_context=context)
    loop = asyncio.get_running_loop()
    # one task per worker, at once: every worker is up before the first request
    await asyncio.gather(
        *(loop.run_in_executor(clients.pool, chain, "warm", 1) for _ in range(PROCESS_WORKERS))
    )


async def shutdown() -> None:
    clients.pool.shutdown(cancel_futures=True)


app = bare_app(execute, startup=startup, shutdown=shutdown)
