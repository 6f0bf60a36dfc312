"""``RedisCache``: a cache shared by every instance and worker, on redis-py's asyncio client."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from ai_spine_tools.cache._memory import hit_rate
from ai_spine_tools.exceptions import MissingExtraError

if TYPE_CHECKING:
    from ai_spine_tools._settings import ServerSettings

__all__ = ["CacheError", "RedisCache"]

logger = logging.getLogger("ai_spine_tools.cache")

_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})
_SCAN_BATCH = 500


class CacheError(Exception):
    """The shared cache (Redis) failed: unreachable, timed out, or refused the command."""


class RedisCache:
    """Values as JSON (msgspec) in Redis under ``key_prefix``, through a bounded connection pool.

    The client is redis-py's asyncio one with the hiredis parser (the ``[redis]`` extra), imported
    when the first ``RedisCache`` is made, never by ``import ai_spine_tools``. The pool holds at
    most ``max_connections`` connections; a command waits at most ``command_timeout`` seconds (for
    a pooled connection, to connect, and for the reply); a command that failed on a broken
    connection is retried once after ``retry_delay`` seconds (a restarted Redis leaves the pool's
    connections broken). Every failure raises ``CacheError``; ``MultiLevelCache`` turns that into
    a degraded, memory-only mode instead of a failed request.

    ``from_env()`` reads ``REDIS_URL`` (or ``REDIS_HOST``/``REDIS_PORT``),
    ``REDIS_MAX_CONNECTIONS``, ``REDIS_COMMAND_TIMEOUT`` and ``REDIS_RETRY_DELAY`` (both in ms)
    and ``AI_SPINE_REDIS_PREFIX``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key_prefix: str = "ai-spine:",
        max_connections: int = 10,
        command_timeout: float = 1.0,
        retry_delay: float = 0.1,
        default_ttl: float | None = 300.0,
    ) -> None:
        try:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import ConstantBackoff
            from redis.exceptions import ConnectionError as RedisConnectionError
            from redis.exceptions import RedisError
        except ImportError:
            raise MissingExtraError("RedisCache", "the redis package", "redis") from None
        self.url = url
        self.key_prefix = key_prefix
        self.max_connections = max_connections
        self.command_timeout = command_timeout
        self.retry_delay = retry_delay
        self.default_ttl = default_ttl or None
        from ai_spine_tools.cache._redispool import pool_class

        self.pool = pool_class().from_url(
            url,
            max_connections=max_connections,
            timeout=command_timeout,  # waiting for a free pooled connection
            socket_timeout=command_timeout,
            socket_connect_timeout=command_timeout,
            retry=Retry(ConstantBackoff(retry_delay), 1, supported_errors=(RedisConnectionError,)),
            health_check_interval=30,
        )
        self.client = aioredis.Redis(connection_pool=self.pool)
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder().decode
        self._errors = (RedisError, OSError, asyncio.TimeoutError)
        self.hits = self.misses = self.errors = 0

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> RedisCache:
        """Make the cache the server settings describe (``settings.redis_url`` must be set)."""
        if settings.redis_url is None:
            raise ValueError("no Redis is configured (set REDIS_URL or REDIS_HOST)")
        return cls(
            settings.redis_url,
            key_prefix=settings.redis_prefix,
            max_connections=settings.redis_max_connections,
            command_timeout=settings.redis_command_timeout_ms / 1000.0,
            retry_delay=settings.redis_retry_delay_ms / 1000.0,
            default_ttl=settings.cache_ttl_s,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RedisCache | None:
        """Make the cache the ``REDIS_*`` variables describe, or ``None`` when none is set."""
        from ai_spine_tools._settings import ServerSettings

        settings = ServerSettings.from_env(os.environ if environ is None else environ)
        return cls.from_settings(settings) if settings.redis_url else None

    def __repr__(self) -> str:
        return f"<RedisCache {_redact(self.url)} prefix={self.key_prefix!r}>"

    # -- the Cache protocol --------------------------------------------------------------------

    async def get(self, key: str, *, decode: Callable[[bytes], Any] | None = None) -> Any:
        """Return the value under ``key``, or ``None`` when absent.

        ``decode`` reads the stored JSON instead of decoding it into builtins (a typed msgspec
        decoder, say); a value it rejects counts as absent.
        """
        try:
            raw: Any = await self.client.get(self.key_prefix + key)
        except self._errors as exc:
            raise self._failed("GET", exc) from exc
        return self._loaded(key, raw, decode)

    async def get_with_ttl(
        self, key: str, *, decode: Callable[[bytes], Any] | None = None
    ) -> tuple[Any, float | None]:
        """Return the value under ``key`` and its remaining TTL in seconds (one round trip)."""
        name = self.key_prefix + key
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(name)
            pipe.pttl(name)
            raw, pttl = await pipe.execute()
        except self._errors as exc:
            raise self._failed("GET", exc) from exc
        value = self._loaded(key, raw, decode)
        if value is None or pttl is None or pttl < 0:
            return value, None
        return value, pttl / 1000.0

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` as JSON under ``key`` for ``ttl`` seconds (``None``: the default)."""
        if ttl is None:
            ttl = self.default_ttl
        elif ttl < 0:
            raise ValueError(f"ttl must be a number of seconds >= 0 (got {ttl!r})")
        payload = self._encode(value)  # a value JSON cannot hold raises here, not as CacheError
        try:
            await self.client.set(
                self.key_prefix + key, payload, px=max(1, int(ttl * 1000)) if ttl else None
            )
        except self._errors as exc:
            raise self._failed("SET", exc) from exc

    async def add(self, key: str, value: Any, ttl: float) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` seconds only if ``key`` is absent (one atomic
        ``SET NX``); say whether it was stored."""
        if ttl <= 0:
            raise ValueError(f"ttl must be a number of seconds > 0 (got {ttl!r})")
        payload = self._encode(value)
        try:
            stored = await self.client.set(
                self.key_prefix + key, payload, px=max(1, int(ttl * 1000)), nx=True
            )
        except self._errors as exc:
            raise self._failed("SET", exc) from exc
        return bool(stored)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; say whether it was there."""
        try:
            return bool(await self.client.unlink(self.key_prefix + key))
        except self._errors as exc:
            raise self._failed("UNLINK", exc) from exc

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` (SCAN, then UNLINK in batches)."""
        pattern = (self.key_prefix + prefix).translate(_GLOB_SPECIAL) + "*"
        removed = 0
        try:
            batch: list[bytes] = []
            async for name in self.client.scan_iter(match=pattern, count=_SCAN_BATCH):
                batch.append(name)
                if len(batch) >= _SCAN_BATCH:
                    removed += await self.client.unlink(*batch)
                    batch.clear()
            if batch:
                removed += await self.client.unlink(*batch)
        except self._errors as exc:
            raise self._failed("SCAN/UNLINK", exc) from exc
        return removed

    async def clear(self) -> None:
        """Remove every key under this cache's ``key_prefix`` (never the rest of the database)."""
        await self.delete_prefix("")

    async def ping(self) -> None:
        """Check that Redis answers; raise ``CacheError`` when it does not."""
        try:
            await self.client.ping()
        except self._errors as exc:
            raise self._failed("PING", exc) from exc

    async def close(self) -> None:
        """Close the pooled connections."""
        try:
            await self.client.aclose()
            await self.pool.aclose()
        except Exception:  # closing after Redis went away must not fail a shutdown
            logger.debug("closing the Redis pool failed", exc_info=True)

    def stats(self) -> dict[str, Any]:
        """Hits, misses, hit rate and errors of this client."""
        return {
            "backend": "redis",
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": hit_rate(self.hits, self.misses),
            "errors": self.errors,
            "max_connections": self.max_connections,
        }

    # -- helpers -------------------------------------------------------------------------------

    def _loaded(self, key: str, raw: Any, decode: Callable[[bytes], Any] | None = None) -> Any:
        if raw is None:
            self.misses += 1
            return None
        try:
            value = (decode or self._decode)(raw)
        except msgspec.DecodeError:  # a ValidationError too
            logger.warning("cached value under %r cannot be read; ignoring it", key)
            self.misses += 1
            return None
        self.hits += 1
        return value

    def _failed(self, command: str, exc: Exception) -> CacheError:
        self.errors += 1
        detail = str(exc) or type(exc).__name__
        return CacheError(f"Redis {command} failed: {type(exc).__name__}: {detail}")


def _redact(url: str) -> str:
    """Hide a password in a Redis URL."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user + ':' if user else ''}***@{host}"
