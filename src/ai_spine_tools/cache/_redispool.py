"""``WaitingPool``: redis-py's blocking connection pool, which waits only when it has to.

Imported by ``RedisCache`` when it is made, never by ``import ai_spine_tools`` (it imports redis).
It leans on redis-py's ``can_get_connection`` and the blocking pool's ``_condition``;
``pool_class()`` checks they are there and falls back, with a warning, to the blocking pool.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from redis.asyncio.connection import AbstractConnection, BlockingConnectionPool, ConnectionPool
from redis.exceptions import MaxConnectionsError

__all__ = ["WaitingPool", "pool_class"]

logger = logging.getLogger("ai_spine_tools.cache")


@functools.cache
def pool_class() -> type[BlockingConnectionPool]:
    """``WaitingPool``, or redis-py's ``BlockingConnectionPool`` when this redis-py lacks what
    ``WaitingPool`` builds on (said once, as a warning)."""
    if hasattr(ConnectionPool, "can_get_connection") and "_condition" in vars(
        BlockingConnectionPool(max_connections=1)
    ):
        return WaitingPool
    logger.warning(
        "this redis-py has no ConnectionPool.can_get_connection or BlockingConnectionPool."
        "_condition: Redis commands use the blocking pool, about 20%% more CPU per command"
    )
    return BlockingConnectionPool


class WaitingPool(BlockingConnectionPool):
    """At most ``max_connections`` connections; a command finding them all in use waits for
    one, up to ``timeout`` seconds, first come first served, as in ``BlockingConnectionPool``.

    ``BlockingConnectionPool`` takes a lock and arms a timeout for every command, waiting or not:
    under valgrind a ``GET`` took 300,000 instructions with it against 230,000 with redis-py's
    plain pool. Here a free (or not yet opened) connection, with nobody queued before the
    caller, is taken as the plain pool takes it, and given back the same way while nobody
    waits (245,000): only callers that have to wait, and the releases that wake them, go through
    the blocking pool's condition and timeout.
    """

    _waiting = 0  # callers queued in the blocking pool's wait

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        """Return a connected connection, waiting for one only when all are in use."""
        if not self._waiting and self.can_get_connection():
            try:
                connection: AbstractConnection = await ConnectionPool.get_connection(self)  # type: ignore[no-untyped-call]
                return connection
            except MaxConnectionsError:
                pass  # taken while the plain pool waited for its lock: queue like the others
        self._waiting += 1
        try:
            waited: AbstractConnection = await super().get_connection()  # type: ignore[no-untyped-call]
            return waited
        finally:
            self._waiting -= 1

    async def release(self, connection: AbstractConnection) -> None:
        """Put ``connection`` back, waking the first caller waiting for one."""
        if self._waiting:
            await super().release(connection)
            return
        await ConnectionPool.release(self, connection)
        if self._waiting:  # a caller queued while the release was under way
            async with self._condition:
                self._condition.notify()
