"""The ``upstream_http`` yardstick: bare ASGI + msgspec + one shared ``aiohttp.ClientSession``.

aiohttp is the fastest asyncio HTTP client in Python; the session keeps up to 100 keep-alive
connections to the upstream (``TCPConnector(limit=100)``) and the document is decoded by msgspec.
"""

from __future__ import annotations

import aiohttp
import msgspec

from bench.apps._bare import Answer, WeatherEnvelope, bare_app
from bench.apps._common import UPSTREAM_URL
from bench.apps.upstream import to_output


class Clients:
    """The app's clients, opened at start-up."""

    session: aiohttp.ClientSession


clients = Clients()
decoder = msgspec.json.Decoder(WeatherEnvelope)
decode = msgspec.json.decode


async def execute(body: bytes) -> Answer:
    """Fetch the city's document from the upstream and shape it as the tool's output."""
    data = decoder.decode(body).input_data
    async with clients.session.get(UPSTREAM_URL, params={"q": data.city}) as r:
        r.raise_for_status()
        document = decode(await r.read())
    return Answer(to_output(document, data.units))


async def startup() -> None:
    clients.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))


async def shutdown() -> None:
    await clients.session.close()


app = bare_app(execute, startup=startup, shutdown=shutdown)
