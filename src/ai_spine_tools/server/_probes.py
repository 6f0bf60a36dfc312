"""The routes besides execute: health, readiness, schema, metrics, dashboard and info."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ai_spine_tools._version import __version__
from ai_spine_tools.interop._openapi import openapi_document
from ai_spine_tools.observability import _dashboard
from ai_spine_tools.server._wire import Request, Response, Scope, _now_iso

if TYPE_CHECKING:
    from ai_spine_tools.server._app import ToolApp

_HEALTH_CHECK_TIMEOUT_S = 5.0


async def health(app: ToolApp, request: Request) -> Response:
    """``GET /health``: liveness and a summary; 503 only when the tool cannot serve."""
    state, checks = await check_tool(app)
    cache = await app.tool.cache.check()
    if cache is not None:
        checks["cache"] = cache  # a failing Redis degrades the tool; it still serves
        if cache["status"] != "ok" and state == "healthy":
            state = "degraded"
    if app.diagnostics is not None:
        checks["memory"] = memory = app.diagnostics.memory_check()
        if memory["status"] != "ok" and state == "healthy":
            state = "degraded"  # a steady leak: restart before it runs out, and fix it
    if app.limiter is not None and app.limiter.distributed:
        checks["rate_limit"] = app.limiter.status()
        if app.limiter.degraded and state == "healthy":
            state = "degraded"
    checks["executor"] = executor = app.tool.threads.check()
    snapshot = app.tool.metrics
    body = {
        "status": state,
        "tool": app.tool.name,
        "version": app.tool.version,
        "uptime_seconds": round(time.monotonic() - app.started_at, 3),
        "timestamp": _now_iso(),
        "checks": checks,
        "requests": {
            "total": snapshot.total,
            "errors": snapshot.errors,
            "in_flight": app.admission.in_flight,
            "queued": len(app.admission.queue),
            "max_concurrent": app.admission.limit,
            "rejected_overloaded": app.admission.rejected,
        },
    }
    breakers = app.tool.breakers.stats()
    if app.instance is not None:  # several workers: report the instance
        merged, figures, body["workers"] = app.instance.collect()
        concurrency = figures.get("concurrency") or {}
        body["uptime_seconds"] = round(merged.uptime_seconds(), 3)
        body["requests"] = {
            "total": merged.total,
            "errors": merged.errors,
            "in_flight": concurrency.get("in_flight", 0),
            "queued": concurrency.get("queued", 0),
            "max_concurrent": app.admission.limit,
            "rejected_overloaded": concurrency.get("rejected", 0),
        }
        breakers = figures.get("breakers") or {}
        executor = _executor_check(concurrency.get("executor") or {}, executor)
        checks["executor"] = executor
    if executor["status"] != "ok" and state == "healthy":
        state = body["status"] = "degraded"  # every thread held: sync executions wait or time out
    if breakers:
        body["breakers"] = breakers
        if state == "healthy" and any(b["state"] != "closed" for b in breakers.values()):
            body["status"] = "degraded"  # a dependency is failing; the tool still answers
    return Response(503 if state == "unhealthy" else 200, app.encoder.encode(body), [])


async def ready(app: ToolApp, request: Request) -> Response:
    """``GET /ready``: 200 once setup is done, while not draining and while the health check
    does not report ``"ready": False`` (a dependency down); else 503 with the reason."""
    reason = None
    if app.draining:
        reason = "draining"
    elif app.unavailable is not None:
        reason = f"setup failed: {app.unavailable}"
    elif not app.tool.started:
        reason = "starting"
    else:
        state, checks = await check_tool(app)
        outcome = checks.get("tool")
        if state == "unhealthy":
            reason = "unhealthy"
        elif isinstance(outcome, dict) and outcome.get("ready") is False:
            reason = "dependencies unavailable"  # the health check said so (a database down)
    body = {"ready": reason is None, "tool": app.tool.name, "timestamp": _now_iso()}
    if reason is not None:
        body["reason"] = reason
    return Response(200 if reason is None else 503, app.encoder.encode(body), [])


async def schema(app: ToolApp, request: Request) -> Response:
    """``GET /schema``: the OpenAPI 3.1 document of this tool."""
    if app.openapi is None:
        app.openapi = app.encoder.encode(openapi_document(app.tool, auth=app.gate.on))
    return Response(200, app.openapi, [])


async def metrics(app: ToolApp, request: Request) -> Response:
    """``GET /metrics``: the metrics snapshot as JSON (with an ``auth`` block when auth is
    on: callers by key id, never by key), or Prometheus text when the ``Accept`` header asks
    for it (``text/plain`` or ``application/openmetrics-text``, as a scraper does) or
    ``?format=prometheus``. With several workers, the figures of the whole instance."""
    accept = exposition(request.scope)
    if app.instance is None and accept is None:  # one worker: what tool.get_metrics() says
        body = app.tool.get_metrics().to_dict()
        auth = app.gate.figures()
    else:
        if accept is not None:
            from ai_spine_tools.observability._prometheus import render

            text, content_type = render(exposition_part(app), accept=accept)
            return Response(200, text, [], content_type=content_type.encode())
        metrics, figures, workers = _figures(app)
        body = metrics.snapshot(figures, workers=workers).to_dict()
        auth = figures.get("auth")
    if auth is not None:
        body["auth"] = auth
    return Response(200, app.encoder.encode(body), [])


def exposition_part(app: ToolApp) -> dict[str, Any]:
    """What the Prometheus exposition of ``app``'s tool is written from (``_prometheus``)."""
    metrics, figures, workers = _figures(app)
    return {
        "metrics": metrics,
        "figures": figures,
        "tool": app.tool.name,
        "version": app.tool.version,
        "sdk": f"ai-spine-tools/{__version__}",
        "workers": workers,
    }


def _figures(app: ToolApp) -> tuple[Any, dict[str, Any], int]:
    """The metrics, figures and worker count of this worker or, with several, the instance."""
    if app.instance is None:
        return app.tool.metrics, instance_figures(app), 1
    return app.instance.collect()


def instance_figures(app: ToolApp) -> dict[str, Any]:
    """This worker's figures of the moment: the tool's, and who called when auth is on."""
    return {**app.tool.metrics.figures(), "auth": app.gate.figures()}


async def dashboard(app: ToolApp, request: Request) -> Response:
    """``GET /dashboard``: the live metrics page (``AI_SPINE_DASHBOARD=true``)."""
    if request.scope["path"] != _dashboard.PAGE:  # /dashboard/: its relative links need this
        location = request.scope.get("root_path", "") + _dashboard.PAGE
        return Response(308, b"", [(b"location", location.encode())])
    headers = [(b"cache-control", b"no-cache")]
    return Response(200, _dashboard.page(), headers, content_type=_dashboard.HTML)


async def info(app: ToolApp, request: Request) -> Response:
    """``GET /``: what this tool is and which endpoints it serves."""
    body = {
        **app.tool.metadata.to_dict(),
        "sdk": f"ai-spine-tools/{__version__}",
        "endpoints": endpoints(app),
    }
    return Response(200, app.encoder.encode(body), [])


def endpoints(app: ToolApp) -> list[str]:
    """Return ``"METHOD /path"`` for each route."""
    routes = [f"{method} {path}" for path, route in app.routes.items() for method in route]
    return routes if app.mcp is None else [*routes, "POST /mcp"]


async def check_tool(app: ToolApp) -> tuple[str, dict[str, Any]]:
    if app.unavailable is not None:
        return "unhealthy", {"setup": "failed", "error": app.unavailable}
    if not app.tool.started:
        return "unhealthy", {"setup": "not done"}
    try:
        async with asyncio.timeout(_HEALTH_CHECK_TIMEOUT_S):
            outcome = await app.tool.check_health()
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}" if app.settings.debug else type(exc).__name__
        return "degraded", {"setup": "ok", "tool": {"status": "failing", "error": detail}}
    if outcome is True or outcome is None:
        return "healthy", {"setup": "ok", "tool": "ok"}
    if outcome is False:
        return "degraded", {"setup": "ok", "tool": "failing"}
    if isinstance(outcome, dict):
        state = str(outcome.get("status", "healthy"))
        if state not in ("healthy", "degraded", "unhealthy"):
            state = "degraded"
        return state, {"setup": "ok", "tool": outcome}
    return "healthy", {"setup": "ok", "tool": str(outcome)}


def _executor_check(figures: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """The ``executor`` check of an instance, from its workers' pools added up."""
    if "max" not in figures:
        return own
    busy, most = figures.get("busy", 0), figures["max"]
    out: dict[str, Any] = {
        "status": "degraded" if busy >= most else "ok",
        "busy": busy,
        "max": most,
    }
    if figures.get("overdue"):
        out["overdue"] = figures["overdue"]
    return out


def exposition(scope: Scope) -> str | None:
    """The Prometheus format a ``/metrics`` request asks for (an ``Accept`` value), or ``None``
    for JSON. JSON wins when the client accepts it (browsers, axios); ``?format=`` wins over
    all."""
    query = scope.get("query_string") or b""
    if b"format=" in query:
        if b"format=prometheus" in query:
            return "text/plain"
        if b"format=openmetrics" in query:
            return "application/openmetrics-text"
        return None
    accept = next((value for name, value in scope["headers"] if name == b"accept"), b"")
    if b"application/json" in accept:
        return None
    if b"application/openmetrics-text" in accept or b"text/plain" in accept:
        return accept.decode("latin-1")
    return None
