"""Run a tool server on uvicorn: one process or several sharing the port, shut down gracefully.

On SIGTERM or SIGINT the app is marked draining (``/ready`` answers 503), the listening socket
closes, in-flight requests finish (up to the grace period), then ``cleanup`` runs.
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import uvicorn

from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.core._loader import load_tools, locate
from ai_spine_tools.core._tool import Tool
from ai_spine_tools.exceptions import MissingExtraError, ToolDefinitionError
from ai_spine_tools.observability._instance import METRICS_DIR_VARIABLE
from ai_spine_tools.observability._logging import log_config
from ai_spine_tools.server._app import ToolApp, with_middleware
from ai_spine_tools.server._gctuning import tune_gc
from ai_spine_tools.server._startup import announce, check_tool_environment
from ai_spine_tools.server._suite import SuiteApp, check_names, tool_keys_variable
from ai_spine_tools.server._wire import ASGIApp

__all__ = ["app_from_env", "build_app", "instance_directory", "serve"]

TARGET_VARIABLE = "AI_SPINE_TOOL"
_STARTUP_FAILURE = 3


def app_from_env() -> ASGIApp:
    """Build the app for the tools named by ``AI_SPINE_TOOL`` (how worker processes find them:
    one target a line)."""
    targets = [line.strip() for line in os.environ.get(TARGET_VARIABLE, "").splitlines()]
    targets = [target for target in targets if target]
    if not targets:
        raise ToolDefinitionError(f"{TARGET_VARIABLE} names no tool to serve")
    settings = ServerSettings.from_env()
    app = build_app([tool for target in targets for tool in load_tools(target)], settings)
    if settings.gc_tuning:
        tune_gc()
    return app


def build_app(
    tools: Sequence[Tool],
    settings: ServerSettings,
    *,
    api_keys: Mapping[str, Sequence[str]] | None = None,
) -> ASGIApp:
    """The app serving ``tools``: one tool's ``ToolApp`` at the root, or several in a
    ``SuiteApp`` (each under its name), in the wrappers the settings ask for."""
    if len(tools) == 1:
        (tool,) = tools
        keys = (api_keys or {}).get(tool.name)
        own = settings if keys is None else settings.replace(api_keys=tuple(keys))
        return with_middleware(ToolApp(tool, own), own)
    suite = SuiteApp(tools, settings, api_keys=api_keys, strict_startup=settings.strict_startup)
    return with_middleware(suite, settings)


def serve(
    tool: Tool | str | Sequence[Tool | str],
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    reload: bool = False,
    log_level: str | None = None,
    settings: ServerSettings | None = None,
    server: Literal["uvicorn", "granian"] = "uvicorn",
    api_keys: Mapping[str, Sequence[str]] | None = None,
    strict_startup: bool | None = None,
) -> None:
    """Serve ``tool`` (a ``Tool`` or a target such as ``tools/weather.py``), or several (a list
    of them, a folder of tool files, a module's ``tools`` list), until stopped.

    Settings come from the environment (see ``ServerSettings``); arguments given here win. With
    ``workers`` above 1, or ``reload``, each process loads the tools again from their targets.
    ``server="granian"`` runs it on granian (the ``[granian]`` extra) instead of uvicorn.
    Several tools are served as a suite (``_suite``): each under ``/<name>``; ``api_keys`` gives
    tools keys of their own, ``strict_startup`` makes a tool's failed setup fail the start-up.

    Before it listens, the environment is checked for variables that look like settings but are
    none (see ``_startup``): a near miss of a security setting raises ``UnknownSettingError``;
    the others are logged as warnings, followed by one line of security posture.
    """
    settings = (settings or ServerSettings.from_env()).replace(
        host=host, port=port, workers=workers, log_level=log_level, strict_startup=strict_startup
    )
    given = [tool] if isinstance(tool, Tool | str) else list(tool)
    loaded = [one for item in given for one in _tools_of(item)]
    if len(loaded) > 1:
        check_names(loaded)
    problems = check_tool_environment(loaded)
    own_keys = [
        one.name
        for one in loaded
        if (api_keys or {}).get(one.name) or os.environ.get(tool_keys_variable(one.name))
    ]
    multi = settings.workers > 1 or reload or server == "granian"
    app: Any
    if multi:
        targets = [item if isinstance(item, str) else locate(item) for item in given]
        if None in targets:
            raise ToolDefinitionError(
                "several workers (or reload) need each tool importable by name: serve it with "
                "'ai-spine serve path/to/tool.py' or pass the target string"
            )
        os.environ[TARGET_VARIABLE] = "\n".join(str(target) for target in targets)
        for name, keys in (api_keys or {}).items():  # where the worker processes read them
            os.environ[tool_keys_variable(name)] = ",".join(keys)
        _export(settings)
        app = "ai_spine_tools.server._server:app_from_env"
        if server == "granian":
            logging.config.dictConfig(_log_config(settings))
            announce(problems, settings, own_keys=own_keys)
            _serve_granian(app, settings, reload=reload)
            return
    else:
        app = build_app(loaded, settings, api_keys=api_keys)
    config = _Config(
        app,
        factory=multi,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        reload=reload,
        reload_dirs=_watched(given) if reload else None,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        lifespan="on",
        ws="none",  # the tool contract is plain HTTP: no WebSocket upgrade, whatever is installed
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) or None,
        server_header=False,
        log_config=_log_config(settings),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_keep_alive=settings.keep_alive_s,
        limit_concurrency=settings.max_client_connections,
    )
    # The limits of a server on an open network (see _protocol): head size, keep-alive,
    # connections; the read deadline rides on the config to reach worker processes. Chosen once
    # the config has set up logging, so that a warning about uvicorn's hooks is seen.
    config.http = _http_protocol()
    config.ai_spine_read_timeout = settings.read_timeout_s or None
    announce(problems, settings, own_keys=own_keys)  # uvicorn's config has set up logging by now
    runner = _GracefulServer(config)
    if reload:
        from uvicorn.supervisors import ChangeReload

        ChangeReload(config, target=runner.run, sockets=[config.bind_socket()]).run()
    elif settings.workers > 1:
        from uvicorn.supervisors import Multiprocess

        with instance_directory():
            Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        if settings.gc_tuning:
            tune_gc()
        runner.run()
        if not runner.started:  # uvicorn logged why; exit as its own CLI does
            sys.exit(_STARTUP_FAILURE)


def _tools_of(item: Tool | str) -> list[Tool]:
    return load_tools(item) if isinstance(item, str) else [item]


def _watched(given: Sequence[Tool | str]) -> list[str] | None:
    """The folders ``--reload`` watches: each target's (a folder target, itself)."""
    folders = []
    for item in given:
        if isinstance(item, str):
            path = Path(item.split(":", 1)[0]).resolve()
            folders.append(str(path if path.is_dir() else path.parent))
    return sorted(set(folders)) or None


def _serve_granian(target: str, settings: ServerSettings, *, reload: bool) -> None:
    try:
        from granian import Granian
        from granian.http import HTTP1Settings
    except ImportError:
        raise MissingExtraError("--server granian", "granian", "granian") from None
    server = Granian(
        target,
        address=settings.host,
        port=settings.port,
        interface="asgi",  # type: ignore[arg-type]
        workers=settings.workers,
        factory=True,
        reload=reload,
        websockets=False,
        log_level=settings.log_level,  # type: ignore[arg-type]
        workers_kill_timeout=int(settings.shutdown_grace_s) or None,
        backpressure=settings.max_client_connections,
        http1_settings=HTTP1Settings(
            header_read_timeout=int(settings.read_timeout_s * 1000) or 30_000,
            max_buffer_size=max(settings.max_header_bytes, 8192),
        ),
    )
    with instance_directory() if settings.workers > 1 else contextlib.nullcontext(""):
        server.serve()


class _Config(uvicorn.Config):
    """uvicorn's config, carrying the read deadline to ``GuardedHTTPProtocol`` (in every worker:
    a config is pickled to worker processes whole)."""

    ai_spine_read_timeout: float | None = None


def _log_config(settings: ServerSettings) -> dict[str, Any]:
    """uvicorn's logging, with the SDK's own loggers (``ai_spine_tools.*``) on the same handler,
    as text or JSON (``AI_SPINE_LOG_FORMAT``)."""
    return log_config(settings.log_level, settings.log_format)


@contextlib.contextmanager
def instance_directory() -> Iterator[str]:
    """A fresh directory where the workers of this instance share their metrics (see
    ``_instance``), named to them in ``AI_SPINE_METRICS_DIR``; removed when they are done."""
    directory = tempfile.mkdtemp(prefix="ai-spine-metrics-")
    previous = os.environ.get(METRICS_DIR_VARIABLE)
    os.environ[METRICS_DIR_VARIABLE] = directory
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(METRICS_DIR_VARIABLE, None)
        else:
            os.environ[METRICS_DIR_VARIABLE] = previous
        shutil.rmtree(directory, ignore_errors=True)


def _http_protocol() -> Any:
    """The guarded httptools protocol, or uvicorn's h11 with a warning when the installed
    uvicorn lacks a hook it relies on (see ``_uvicorn_hooks``)."""
    from ai_spine_tools.server._uvicorn_hooks import http_protocol

    return http_protocol()


class _GracefulServer(uvicorn.Server):
    """uvicorn's server, exiting 0 after a graceful shutdown rather than re-raising the signal."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()


def _export(settings: ServerSettings) -> None:
    """Put explicit settings into the environment, where worker processes read them."""
    os.environ["HOST"] = settings.host
    os.environ["PORT"] = str(settings.port)
    os.environ["AI_SPINE_WORKERS"] = str(settings.workers)
    os.environ["AI_SPINE_LOG_LEVEL"] = settings.log_level
    if settings.strict_startup:
        os.environ["AI_SPINE_STRICT_STARTUP"] = "true"


logging.getLogger("ai_spine_tools").addHandler(logging.NullHandler())
