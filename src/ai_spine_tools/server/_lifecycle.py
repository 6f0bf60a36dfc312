"""The app's lifespan: start-up, draining on a shutdown signal, cleanup."""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

from ai_spine_tools.core._processes import configure_processes
from ai_spine_tools.outbound._http import configure_http
from ai_spine_tools.server._wire import Receive, Send

if TYPE_CHECKING:
    from ai_spine_tools.server._app import ToolApp

logger = logging.getLogger("ai_spine_tools.server")


async def lifespan(app: ToolApp, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            configure_http(max_connections=app.settings.max_connections)
            configure_processes(workers=app.settings.process_workers)
            try:
                await app.tool.start()
                if app.mcp is not None:
                    await app.mcp.start()
            except Exception as exc:
                logger.exception("start-up of tool %s failed", app.tool.name)
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            app.started_at = time.monotonic()
            watch_shutdown_signals(app)
            pipeline = app.pipeline
            pipeline.log_requests = logger.isEnabledFor(pipeline.log_level)  # logging is set
            if app.instance is not None:
                app.instance.start()
            if app.diagnostics is not None:
                if app.owns_diagnostics:
                    app.diagnostics.start()
                app.tool.metrics.diagnostics = app.diagnostics.figures
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            app.draining = True
            restore_signals(app)
            if app.mcp is not None:
                await app.mcp.stop()
            try:
                await app.tool.stop()
            except Exception:
                logger.exception("cleanup of tool %s failed", app.tool.name)
            if app.redis is not None:
                if app.tool.cache.store is not app.tool.cache.memory:
                    app.tool.cache.use_shared(None)
                if app.owns_redis:  # a suite's tools share one, closed by the suite
                    await app.redis.close()
            if app.instance is not None:
                await app.instance.stop()  # a last write: this worker's counts outlive it
            if app.diagnostics is not None:
                if app.owns_diagnostics:
                    await app.diagnostics.stop()
                if app.tool.metrics.diagnostics == app.diagnostics.figures:
                    app.tool.metrics.diagnostics = None
            await send({"type": "lifespan.shutdown.complete"})
            return


def watch_shutdown_signals(app: ToolApp) -> None:
    """Mark the app draining the moment the server is told to stop, before it drains."""
    for number in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(number)
        if not callable(previous):
            continue

        def handler(sig: int, frame: FrameType | None, previous: Any = previous) -> None:
            app.draining = True
            previous(sig, frame)

        try:
            signal.signal(number, handler)
        except ValueError:  # not the main thread: the host owns signals
            return
        app.wrapped_signals.append((number, handler, previous))


def restore_signals(app: ToolApp) -> None:
    """Put back the handlers ``_watch_shutdown_signals`` wrapped, if still ours."""
    while app.wrapped_signals:
        number, handler, previous = app.wrapped_signals.pop()
        with contextlib.suppress(ValueError):
            if signal.getsignal(number) is handler:
                signal.signal(number, previous)
