"""The start-up check of every uvicorn hook ``_protocol`` relies on, and the protocol to serve with.

``GuardedHTTPProtocol`` extends uvicorn's httptools protocol through names uvicorn keeps private:
methods it overrides or calls, attributes of the protocol and of its request cycles, the flow
control its cycles call, and what some methods do (``on_headers_complete`` queues a pipelined
request, ``on_response_complete`` starts the next one). ``problems`` reads the installed uvicorn
(its signatures, and the source of its protocol as a syntax tree, so formatting and comments do
not matter) and names each hook that is missing or changed. ``http_protocol`` then picks what
``ai-spine serve`` runs: the guarded protocol when nothing is amiss; otherwise uvicorn's own h11
protocol, with one warning that names the problems and what is lost. Served that way, every
route still answers through the plain ASGI app, heads stay bounded
(``h11_max_incomplete_event_size``, answered 400), idle connections close and the connection
limit holds (uvicorn's plain 503); the execute fast path, the read deadline, the pipelining
bounds and the JSON 503 are off. Never a silent downgrade, and never a protocol that answers
400 to everything.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import logging
from collections.abc import Iterator
from typing import Any

__all__ = ["http_protocol", "problems"]

logger = logging.getLogger("ai_spine_tools.server")

_IMPL = "uvicorn.protocols.http.httptools_impl"
_FLOW = "uvicorn.protocols.http.flow_control"

# The methods of HttpToolsProtocol used, with their parameters after ``self``.
_METHODS: dict[str, tuple[str, ...]] = {
    "__init__": ("config", "server_state", "app_state", "_loop"),
    "connection_made": ("transport",),
    "connection_lost": ("exc",),
    "data_received": ("data",),
    "on_message_begin": (),
    "on_url": ("url",),
    "on_header": ("name", "value"),
    "on_headers_complete": (),
    "on_body": ("body",),
    "on_message_complete": (),
    "on_response_complete": (),
    "_start_asgi_task": ("cycle", "app"),
    "_unset_keepalive_if_required": (),
    "_should_upgrade": (),
    "handle_websocket_upgrade": (),
    "_unsupported_upgrade_warning": (),
    "pause_writing": (),
    "resume_writing": (),
    "shutdown": (),
}
# Attributes of the protocol that are read or set (uvicorn assigns each in some method).
_PROTOCOL_ATTRIBUTES = frozenset(
    [
        "app",
        "config",
        "connections",
        "cycle",
        "expect_100_continue",
        "flow",
        "headers",
        "limit_concurrency",
        "logger",
        "loop",
        "parser",
        "pipeline",
        "root_path",
        "scope",
        "server_state",
        "tasks",
        "timeout_keep_alive_task",
        "transport",
        "url",
    ]
)
# Attributes of a request cycle that are read or set.
_CYCLE_ATTRIBUTES = frozenset(
    [
        "body",
        "disconnected",
        "keep_alive",
        "message_event",
        "more_body",
        "response_complete",
        "response_started",
        "scope",
    ]
)
# What the flow control offers uvicorn's protocol (``_flow.Flow``, standing in for it).
_FLOW_INTERFACE = frozenset(
    [
        "drain",
        "pause_reading",
        "pause_writing",
        "read_paused",
        "resume_reading",
        "resume_writing",
        "write_paused",
    ]
)
# What some methods must still do, as names they use.
_USES: dict[str, frozenset[str]] = {
    "on_headers_complete": frozenset(
        {
            "self._start_asgi_task",
            "self.pipeline.appendleft",
            "self.flow.pause_reading",
            "service_unavailable",
            "self.cycle",
        }
    ),
    "on_response_complete": frozenset(
        {"self.pipeline.pop", "self._start_asgi_task", "self.flow.resume_reading"}
    ),
    "on_body": frozenset({"self.cycle.body"}),
    "on_message_complete": frozenset({"self.cycle.more_body", "self.cycle.message_event.set"}),
    "connection_lost": frozenset({"self.cycle.disconnected", "self.connections.discard"}),
    "connection_made": frozenset({"self.connections.add", "FlowControl"}),
}
# Replaced whole by GuardedHTTPProtocol (it parses in slices): any change to uvicorn's own
# must be looked at. The digest of its syntax tree in uvicorn 0.54 and 0.55 (``_canonical``: the
# same on Python 3.11, 3.12 and 3.13).
_REPLACED = {"data_received": "cb935656344dd15a"}
# Parser callbacks httptools looks up on the protocol; GuardedHTTPProtocol defines them alone.
_OWN_CALLBACKS = ("on_chunk_header", "on_chunk_complete")


def problems() -> list[str]:
    """Each hook of uvicorn's that ``GuardedHTTPProtocol`` relies on and that the installed
    uvicorn (or httptools) lacks or has changed; empty when all are as expected."""
    try:
        importlib.import_module("httptools")
        impl = importlib.import_module(_IMPL)
        flow = importlib.import_module(_FLOW)
        config = importlib.import_module("uvicorn.config")
    except ImportError as exc:
        return [f"cannot import {exc.name}"]
    found: list[str] = []
    protocol = getattr(impl, "HttpToolsProtocol", None)
    if not isinstance(protocol, type):
        return [f"{_IMPL}.HttpToolsProtocol is gone"]
    for name, parameters in _METHODS.items():
        found += _signature_problems(protocol, name, parameters)
    for module, name, kind in [
        (flow, "HIGH_WATER_LIMIT", int),
        (flow, "service_unavailable", None),
        (flow, "FlowControl", type),
        (impl, "RequestResponseCycle", type),
    ]:
        value = getattr(module, name, None)
        if value is None or (kind is not None and not isinstance(value, kind)):
            found.append(f"{module.__name__}.{name} is gone or changed")
    fields = inspect.signature(config.Config.__init__).parameters
    for option in ("h11_max_incomplete_event_size", "reset_contextvars", "access_log"):
        if option not in fields:
            found.append(f"Config has no {option!r}")
    for name in _OWN_CALLBACKS:
        if hasattr(protocol, name):
            found.append(f"HttpToolsProtocol now has {name}")
    try:
        tree = ast.parse(inspect.getsource(impl))
    except (OSError, TypeError, SyntaxError):
        return [*found, f"the source of {_IMPL} cannot be read"]
    found += _source_problems(tree, getattr(flow, "FlowControl", None))
    return found


def _signature_problems(protocol: type, name: str, parameters: tuple[str, ...]) -> list[str]:
    method = getattr(protocol, name, None)
    if not callable(method):
        return [f"HttpToolsProtocol.{name} is gone"]
    try:
        names = tuple(inspect.signature(method).parameters)[1:]
    except (TypeError, ValueError):
        return [f"HttpToolsProtocol.{name} has no readable signature"]
    if names != parameters:
        return [f"HttpToolsProtocol.{name}{names} is not {name}{parameters}"]
    return []


def _source_problems(tree: ast.Module, flow_control: Any) -> list[str]:
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    protocol, cycle = classes.get("HttpToolsProtocol"), classes.get("RequestResponseCycle")
    if protocol is None or cycle is None:
        return ["HttpToolsProtocol or RequestResponseCycle is not defined in its module"]
    found = []
    missing = _PROTOCOL_ATTRIBUTES - _assigned(protocol)
    if missing:
        found.append(f"HttpToolsProtocol no longer sets {', '.join(sorted(missing))}")
    missing = _CYCLE_ATTRIBUTES - _assigned(cycle)
    if missing:
        found.append(f"RequestResponseCycle no longer sets {', '.join(sorted(missing))}")
    used = {name.split(".")[2] for name in _dotted(tree) if name.startswith("self.flow.")}
    if flow_control is not None:
        used |= {name for name in vars(flow_control) if not name.startswith("_")}
        used |= set(vars(flow_control(_NoTransport())))
    extra = {name for name in used if not name.startswith("_")} - _FLOW_INTERFACE
    if extra:
        found.append(f"uvicorn's flow control now has {', '.join(sorted(extra))}")
    methods = {n.name: n for n in protocol.body if isinstance(n, ast.FunctionDef)}
    for name, uses in _USES.items():
        method = methods.get(name)
        lacking = uses - set(_dotted(method)) if method is not None else uses
        if lacking:
            found.append(f"HttpToolsProtocol.{name} no longer uses {', '.join(sorted(lacking))}")
    for name, digest in _REPLACED.items():
        method = methods.get(name)
        if method is None or _digest(method) != digest:
            found.append(f"HttpToolsProtocol.{name} changed")
    return found


class _NoTransport:
    """Enough of a transport to build uvicorn's ``FlowControl`` and list what it sets."""


def _assigned(node: ast.ClassDef) -> set[str]:
    """The ``self.<name>`` attributes assigned anywhere in a class."""
    names = set()
    for child in ast.walk(node):
        targets: list[ast.expr] = []
        if isinstance(child, ast.Assign):
            targets = child.targets
        elif isinstance(child, ast.AnnAssign | ast.AugAssign):
            targets = [child.target]
        for target in targets:
            for element in ast.walk(target):
                if (
                    isinstance(element, ast.Attribute)
                    and isinstance(element.value, ast.Name)
                    and element.value.id == "self"
                ):
                    names.add(element.attr)
    return names


def _dotted(node: ast.AST) -> Iterator[str]:
    """Every name and dotted name (``self.pipeline.pop``) used under ``node``."""
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            yield child.id
        elif isinstance(child, ast.Attribute):
            parts = [child.attr]
            value = child.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                parts.append(value.id)
                yield ".".join(reversed(parts))


def _digest(method: ast.FunctionDef) -> str:
    return hashlib.sha256(_canonical(method).encode()).hexdigest()[:16]


def _canonical(node: Any) -> str:
    """A syntax tree as text that every Python reads alike: ``ast.dump`` differs between
    versions (3.13 leaves out empty fields, 3.12 added ``type_params``), so fields that are
    empty or ``None`` are left out here on every version."""
    if isinstance(node, ast.AST):
        fields = ",".join(
            f"{name}={_canonical(value)}"
            for name, value in ast.iter_fields(node)
            if value is not None and value != []
        )
        return f"{type(node).__name__}({fields})"
    if isinstance(node, list):
        return "[" + ",".join(_canonical(item) for item in node) + "]"
    return repr(node)


def http_protocol() -> Any:
    """The HTTP protocol ``ai-spine serve`` runs uvicorn with: ``GuardedHTTPProtocol``, or,
    when the installed uvicorn does not offer every hook it relies on, uvicorn's own ``"h11"``
    with one warning naming what is missing and what is lost."""
    found = problems()
    if not found:
        try:
            from ai_spine_tools.server._protocol import GuardedHTTPProtocol
        except ImportError as exc:
            found = [f"cannot import {exc.name} ({exc})"]
        else:
            return GuardedHTTPProtocol
    logger.warning(
        "uvicorn %s lacks or has changed what ai-spine-tools' HTTP protocol relies on (%s). "
        "Serving with uvicorn's own h11 protocol instead: every route answers as usual, heads "
        "stay bounded and the connection limit holds, but the execute fast path, the read "
        "deadline (408), pipelining bounds and the JSON 503 are off. Install a uvicorn "
        "version that ai-spine-tools supports to have them back.",
        _version(),
        "; ".join(found),
    )
    return "h11"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("uvicorn")
    except Exception:  # any failure to read the version must not stop start-up
        return "(unknown version)"
