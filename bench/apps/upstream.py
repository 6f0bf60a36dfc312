"""The upstream weather API of the ``upstream_http`` workload, and what tools make of its answer.

A bare ASGI app (uvicorn, its own process, one worker) answering ``GET /weather?q=<city>`` with
a small JSON document, as a provider such as weatherapi.com would. Each distinct query is encoded
once, so the upstream costs as little as it can and the apps calling it are what is measured.
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qs

import msgspec

from bench.apps._bare import Receive, Send

_CONDITIONS = ("Clear", "Partly cloudy", "Cloudy", "Light rain", "Windy", "Sunny")
_encode = msgspec.json.Encoder().encode
_documents: dict[bytes, bytes] = {}


def document(city: str) -> dict[str, Any]:
    """Return the upstream's current weather for ``city`` (deterministic)."""
    digest = hashlib.blake2b(city.casefold().encode(), digest_size=5).digest()
    return {
        "location": {"name": city, "region": "", "country": "Spain", "tz_id": "Europe/Madrid"},
        "current": {
            "temp_c": round(-5 + digest[0] / 255 * 40, 1),
            "condition": {"text": _CONDITIONS[digest[1] % len(_CONDITIONS)]},
            "humidity": digest[2] % 101,
            "wind_kph": round(digest[3] / 255 * 60, 1),
            "pressure_mb": 990 + digest[4] % 40,
            "last_updated": "2025-01-01 12:00",
        },
    }


def to_output(data: dict[str, Any], units: str) -> dict[str, Any]:
    """Return the tool's output from the upstream's document, in ``units``."""
    current = data["current"]
    celsius: float = current["temp_c"]
    return {
        "city": data["location"]["name"],
        "temperature": celsius if units == "celsius" else round(celsius * 9 / 5 + 32, 1),
        "units": units,
        "conditions": current["condition"]["text"].lower(),
        "humidity_percent": current["humidity"],
    }


async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    """Answer ``GET /weather?q=<city>`` with the city's document."""
    if scope["type"] != "http":
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    query: bytes = scope["query_string"]
    body = _documents.get(query)
    if body is None:
        city = parse_qs(query.decode("latin-1")).get("q", ["Madrid"])[0]
        body = _encode(document(city))
        if len(_documents) < 10_000:
            _documents[query] = body
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
