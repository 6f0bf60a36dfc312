"""The ``postgres`` yardstick: bare ASGI + msgspec + an asyncpg pool of the same size as ours.

asyncpg is the fastest PostgreSQL driver in Python (binary protocol, prepared statements cached
per connection); ``pool.fetchrow`` acquires a connection, runs the query and gives it back.
"""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
import msgspec

from bench.apps._bare import Answer, bare_app
from bench.apps._common import DATABASE_URL, POOL_SIZE, USER_QUERY


class Input(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]


class Envelope(msgspec.Struct):
    input_data: Input
    config: dict[str, Any] | None = None


class Clients:
    """The app's clients, opened at start-up."""

    pool: Any  # asyncpg ships no type hints


clients = Clients()
decoder = msgspec.json.Decoder(Envelope)


async def execute(body: bytes) -> Answer:
    """Return the user named by the request."""
    row = await clients.pool.fetchrow(USER_QUERY, decoder.decode(body).input_data.id)
    return Answer(dict(row))


async def startup() -> None:
    clients.pool = await asyncpg.create_pool(DATABASE_URL, min_size=POOL_SIZE, max_size=POOL_SIZE)


async def shutdown() -> None:
    await clients.pool.close()


app = bare_app(execute, startup=startup, shutdown=shutdown)
