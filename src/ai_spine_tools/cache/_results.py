"""``ToolCache``: a tool's cache — the store its code uses and the server's result cache.

A result's key is ``result:<tool name>:<tool version>:<sha256>``, the hash taken over the
validated input (defaults applied, so equivalent requests share a key) and the config fields
declared to affect the output, encoded by msgspec with sorted keys. Secrets therefore only ever
appear hashed. Concurrent requests for a key that is being computed wait for that computation
instead of running the tool again (once per instance: "stampede protection").
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from ai_spine_tools.cache._bodies import RawBodies
from ai_spine_tools.cache._memory import MemoryCache, hit_rate
from ai_spine_tools.cache._multilevel import MultiLevelCache
from ai_spine_tools.cache._options import NO_FLAGS, CacheOptions, ExecutionFlags
from ai_spine_tools.exceptions import ToolDefinitionError, ToolError

if TYPE_CHECKING:
    from ai_spine_tools.cache import Cache

__all__ = ["CacheOutcome", "CachedTool", "ToolCache"]

_TOGGLES = ("cache_enabled", "cacheEnabled")
_NO_CACHE = ExecutionFlags(no_cache=True)
_NO_STORE = ExecutionFlags(no_cache=True, no_store=True)


class _Config(Protocol):
    @property
    def fields(self) -> Mapping[str, Any]: ...

    def for_request(self, config: Mapping[str, Any] | None) -> dict[str, Any]: ...


class _Validator(Protocol):
    def validate(self, value: Any) -> dict[str, Any]: ...


class CachedTool(Protocol):
    """What a ``ToolCache`` needs of its tool (a ``Tool`` has it): names for the keys, the
    input validator and config resolver the keys are computed from, and ``invoke``."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def config(self) -> _Config: ...

    @property
    def input_schema(self) -> _Validator: ...

    async def invoke(self, input: dict[str, Any], config: dict[str, Any], context: Any) -> Any: ...


class CacheOutcome(msgspec.Struct, kw_only=True):
    """What the result cache gave one request: a cached or fresh output, or a failure."""

    hit: bool
    key: str
    age_ms: float = 0.0
    output: Any = None  # msgspec.Raw (encoded once, when stored) or the decoded object
    metadata: dict[str, Any] | None = None
    failure: ToolError | None = None


class ToolCache:
    """A tool's cache: ``tool.cache`` and, in ``execute``, ``context.cache``.

    As a store it works like the performance guide's ``MultiLevelCache``: ``await
    cache.get(key)``, ``await cache.set(key, value, ttl)``, ``delete``, ``delete_prefix``,
    ``clear``. It is memory only until the server finds Redis configured (``REDIS_URL`` or
    ``REDIS_HOST``); then it is memory in front of Redis, shared by every instance.

    When the tool was made with ``cache=...`` the server also caches successful results here;
    ``invalidate(input)`` drops one, ``invalidate_all()`` all of this tool's, and
    ``invalidate_prefix(prefix)`` every key starting with ``prefix`` (results start with
    ``result:<tool>:``). Each clears this instance's memory and Redis; other instances' memory
    copies live at most ``l1_ttl`` seconds longer.
    """

    def __init__(
        self,
        tool: CachedTool,
        options: CacheOptions | None = None,
        *,
        encode: Callable[[Any], bytes],
    ) -> None:
        self._tool = tool
        self.options = options
        self.enabled = options is not None
        opts = options or CacheOptions()
        self.ttl: float | None = opts.ttl if opts.ttl is not None else 300.0
        self._explicit_ttl = opts.ttl is not None
        self.memory = MemoryCache(max_keys=opts.max_keys, default_ttl=self.ttl, clock=opts.clock)
        self.bodies = RawBodies()
        self.store: MemoryCache | MultiLevelCache = self.memory
        self.in_memory = True
        """Whether results are kept in this process's memory (not with Redis and ``l1_ttl=0``)."""
        self.prefix = f"result:{tool.name}:"
        self._version_prefix = f"{self.prefix}{tool.version}:"
        fields = tool.config.fields
        self.toggle = next((name for name in _TOGGLES if name in fields), None)
        if opts.vary_config is None:
            self.vary = tuple(sorted(name for name in fields if name != self.toggle))
        else:
            unknown = [name for name in opts.vary_config if name not in fields]
            if unknown:
                raise ToolDefinitionError(
                    f"cache['vary_config'] names unknown config field(s) "
                    f"{', '.join(map(repr, unknown))}; declared: {', '.join(fields) or 'none'}"
                )
            self.vary = tuple(sorted(set(opts.vary_config)))
        self._canonical = msgspec.json.Encoder(order="deterministic").encode
        self._encode = encode
        """Encodes an output once, raising a ``ToolError`` for what JSON cannot hold."""
        # An entry read from Redis keeps its output as the stored bytes (msgspec.Raw), sent as
        # they are: decoding it into a dict and encoding it again took 1.1 µs a hit, this 0.6.
        self._read_entry = msgspec.json.Decoder(tuple[float, msgspec.Raw, dict[str, Any] | None])
        self._inflight: dict[str, asyncio.Future[Sequence[Any] | ToolError]] = {}
        self.hits = self.misses = self.coalesced = self.bypassed = self.stored = 0

    def __repr__(self) -> str:
        return f"<ToolCache {self._tool.name} results={'on' if self.enabled else 'off'}>"

    # -- wiring (the server calls these) -------------------------------------------------------

    def use_defaults(self, ttl: float | None) -> None:
        """Take the server's default TTL (``AI_SPINE_CACHE_TTL``) unless ``cache=`` gave one."""
        if not self._explicit_ttl and ttl is not None:
            self.ttl = ttl or None
            self.memory.default_ttl = self.ttl

    def use_shared(self, l2: Cache | None) -> None:
        """Put ``l2`` (a ``RedisCache``) behind this process's memory, or go back to memory."""
        if l2 is None:
            self.store = self.memory
            self.in_memory = True
            return
        opts = self.options or CacheOptions()
        self.store = MultiLevelCache(
            self.memory, l2, l1_ttl=opts.l1_ttl, backfill_ttl=opts.l1_ttl, clock=opts.clock
        )
        self.in_memory = opts.l1_ttl > 0

    @property
    def shared(self) -> bool:
        """True when a shared level (Redis) is attached."""
        return isinstance(self.store, MultiLevelCache) and self.store.l2 is not None

    # -- the store (the Cache protocol) --------------------------------------------------------

    async def get(self, key: str) -> Any:
        """Return the value under ``key`` (memory first, then Redis), or ``None``."""
        return await self.store.get(key)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (``None``: the default TTL)."""
        await self.store.set(key, value, ttl)

    async def delete(self, key: str) -> bool:
        """Remove ``key`` (here and in Redis); say whether it was there."""
        return await self.store.delete(key)

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` (here and in Redis)."""
        return await self.store.delete_prefix(prefix)

    async def clear(self) -> None:
        """Remove every entry: this process's memory and, with Redis, every key under
        ``AI_SPINE_REDIS_PREFIX`` (which other tools sharing that prefix use too)."""
        await self.store.clear()

    def reset(self) -> None:
        """Forget this process's results and counters; Redis, shared with others, is left as is
        (``await clear()`` empties it too)."""
        self.memory.clear_nowait()
        self.bodies.clear()
        self.hits = self.misses = self.coalesced = self.bypassed = self.stored = 0

    async def close(self) -> None:
        """Close the shared level's connections."""
        await self.store.close()

    # -- results -------------------------------------------------------------------------------

    def key(
        self, input: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None
    ) -> str:
        """Return the result key of ``input`` (validated first, so defaults count) and
        ``config`` (as a request would send it)."""
        values = self._tool.input_schema.validate({} if input is None else input)
        return self.key_for(values, self._tool.config.for_request(config))

    def key_for(self, input: dict[str, Any], config: dict[str, Any]) -> str:
        """Return the result key of validated ``input`` and resolved ``config``."""
        if self.vary:
            payload = self._canonical((input, {name: config[name] for name in self.vary}))
        else:
            payload = self._canonical(input)
        return self._version_prefix + hashlib.sha256(payload).hexdigest()

    async def invalidate(
        self, input: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None
    ) -> bool:
        """Drop the cached result of ``input`` (and ``config``); say whether there was one."""
        return await self.store.delete(self.key(input, config))

    async def invalidate_prefix(self, prefix: str) -> int:
        """Drop every entry whose key starts with ``prefix``; return how many."""
        return await self.store.delete_prefix(prefix)

    async def invalidate_all(self) -> int:
        """Drop every cached result of this tool (all versions); return how many."""
        return await self.store.delete_prefix(self.prefix)

    def flags_for(
        self,
        config: Mapping[str, Any],
        headers: Iterable[tuple[bytes, bytes]],
        metadata: Mapping[str, Any] | None,
    ) -> ExecutionFlags | None:
        """Return how this request uses the result cache, or ``None`` when it must not.

        ``cache_enabled: false`` in the config (when the tool declares the field) turns caching
        off. ``Cache-Control: no-cache`` (or ``Pragma: no-cache``, or ``"cache_control":
        "no-cache"`` in the request's metadata) skips the lookup and stores the fresh result;
        ``no-store`` skips both.
        """
        if self.toggle is not None and config.get(self.toggle) is False:
            return None
        directives = ""
        for name, value in headers:
            if name == b"cache-control" or name == b"pragma":
                directives += value.decode("latin-1").lower() + ","
        if metadata:
            control = metadata.get("cache_control")
            if isinstance(control, str):
                directives += control.lower()
        if not directives:
            return NO_FLAGS
        tokens = {token.strip() for token in directives.split(",")}
        if "no-store" in tokens:
            return _NO_STORE
        if "no-cache" in tokens:
            return _NO_CACHE
        return NO_FLAGS

    def hit_for_body(self, body: bytes) -> tuple[CacheOutcome, str | None] | None:
        """Answer a body seen before straight from memory: the outcome and the execution id the
        body named, or ``None`` when that takes the normal path (always when results are not
        kept in memory: see ``shared_hit_for_body``)."""
        if not self.in_memory:
            return None
        remembered = self.bodies.lookup(body)
        if remembered is None:
            return None
        key, execution_id = remembered
        entry = self.memory.get_nowait(key)
        if not _valid(entry):
            self.bodies.forget(body)
            return None
        self.hits += 1
        return _hit(key, entry), execution_id

    async def shared_hit_for_body(self, body: bytes) -> tuple[CacheOutcome, str | None] | None:
        """Answer a body seen before from Redis, when results are not kept in memory: the
        body's key is remembered, so decoding, validation and hashing are skipped, but the
        result is read from Redis each time. ``None`` when that takes the normal path."""
        remembered = self.bodies.lookup(body)
        if remembered is None or not isinstance(self.store, MultiLevelCache):
            return None
        key, execution_id = remembered
        entry = await self.store.get_shared(key, decode=self._read_entry.decode, after_l1=False)
        if not _valid(entry):
            self.bodies.forget(body)  # gone: the normal path looks it up (and runs the tool)
            return None
        self.hits += 1
        return _hit(key, entry), execution_id

    async def fetch(
        self,
        input: dict[str, Any],
        config: dict[str, Any],
        context: Callable[[], Any],
        flags: ExecutionFlags = NO_FLAGS,
    ) -> CacheOutcome:
        """Answer from the cache, or run the tool once for all concurrent askers and cache a
        success. ``context`` makes the execution's context, only when the tool runs."""
        key = self.key_for(input, config)
        future: asyncio.Future[Sequence[Any] | ToolError] | None = None
        if flags.no_cache:
            self.bypassed += 1
        else:
            if self.in_memory:
                entry = self.memory.get_nowait(key)
                if _valid(entry):
                    self.hits += 1
                    return _hit(key, entry)
            while (pending := self._inflight.get(key)) is not None:
                try:
                    shared = await asyncio.shield(pending)
                except asyncio.CancelledError:
                    if pending.cancelled():
                        continue  # the computing request went away: compute it here
                    raise
                self.hits += 1
                self.coalesced += 1
                if isinstance(shared, ToolError):
                    return CacheOutcome(hit=False, key=key, failure=shared)
                return _hit(key, shared)
            # this request computes the key; the ones arriving meanwhile wait for it
            future = asyncio.get_running_loop().create_future()
            self._inflight[key] = future
        try:
            if future is not None and isinstance(self.store, MultiLevelCache):
                entry = await self.store.get_shared(
                    key, decode=self._read_entry.decode, after_l1=self.in_memory
                )
                if _valid(entry):
                    future.set_result(entry)
                    self.hits += 1
                    return _hit(key, entry)
            if future is not None:
                self.misses += 1
            outcome, entry = self._outcome(key, await self._tool.invoke(input, config, context()))
            if entry is None:  # a failure: every waiter gets it, nothing is cached
                if future is not None and outcome.failure is not None:
                    future.set_result(outcome.failure)
                return outcome
            if future is not None:
                future.set_result(entry)
            if not flags.no_store:
                await self.store.set(key, entry, self.ttl)
                self.stored += 1
            return outcome
        except BaseException:
            if future is not None and not future.done():
                future.cancel()
            raise
        finally:
            if future is not None and self._inflight.get(key) is future:
                del self._inflight[key]

    def _outcome(self, key: str, result: Any) -> tuple[CacheOutcome, list[Any] | None]:
        if result.failure is not None:
            return CacheOutcome(hit=False, key=key, failure=result.failure), None
        data = result.data
        output = data if isinstance(data, dict) else ({} if data is None else {"result": data})
        try:
            raw = msgspec.Raw(self._encode(output))
        except ToolError as exc:  # a value JSON cannot hold: nothing to cache
            return CacheOutcome(hit=False, key=key, failure=exc), None
        metadata = dict(result.metadata) if result.metadata else None
        return CacheOutcome(hit=False, key=key, output=raw, metadata=metadata), [
            time.time(),
            raw,
            metadata,
        ]

    # -- statistics and health -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Hits, misses and hit rate overall and per level, evictions, Redis errors, results."""
        store = self.store
        if isinstance(store, MultiLevelCache):
            out = store.stats()
        else:
            memory = store.stats()
            out = {
                "backend": "memory",
                "hits": memory["hits"],
                "misses": memory["misses"],
                "hit_rate": memory["hit_rate"],
                "evictions": memory["evictions"],
                "redis_errors": 0,
                "degraded": False,
                "l1": memory,
                "l2": None,
            }
        out["results"] = {
            "enabled": self.enabled,
            "ttl_seconds": self.ttl,
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": hit_rate(self.hits, self.misses),
            "coalesced": self.coalesced,
            "bypassed": self.bypassed,
            "stored": self.stored,
            "in_flight": len(self._inflight),
        }
        return out

    async def check(self) -> dict[str, Any] | None:
        """Probe the shared level: ``None`` without one, else its status and error count."""
        store = self.store
        if not isinstance(store, MultiLevelCache) or store.l2 is None:
            return None
        state = await store.check()
        report: dict[str, Any] = {"status": state, "backend": "memory+redis"}
        if state != "ok":
            report["redis_errors"] = store.l2_errors
            report["last_error"] = store.last_error
        return report


def _valid(entry: Any) -> bool:
    """True for a result entry ``[stored_at, output, metadata]`` (Redis may hold anything)."""
    return (
        (type(entry) is list or type(entry) is tuple)
        and len(entry) == 3
        and type(entry[0]) is float
    )


def _hit(key: str, entry: Sequence[Any]) -> CacheOutcome:
    age_ms = max(0.0, (time.time() - entry[0]) * 1000.0)
    return CacheOutcome(
        hit=True, key=key, age_ms=round(age_ms, 3), output=entry[1], metadata=entry[2]
    )
