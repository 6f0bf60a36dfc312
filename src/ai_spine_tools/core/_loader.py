"""Find the tools to serve from a target: ``path/to/tool.py[:attr]``, ``module[:attr]``, a
module exposing ``tools = [...]``, or a folder of tool files."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import sysconfig
import traceback
from pathlib import Path
from types import ModuleType

from ai_spine_tools.core._processcalls import forget_file, remember_file
from ai_spine_tools.core._tool import Tool
from ai_spine_tools.exceptions import ToolDefinitionError, ToolError

__all__ = ["import_failure", "import_file", "load_tool", "load_tools", "locate"]


def load_tool(target: str) -> Tool:
    """Import ``target`` and return its tool: the named attribute, a module-level ``tool``, or the
    module's only ``Tool``.

    Any error while importing it becomes a ``ToolDefinitionError`` whose message starts with
    the ``file:line`` where it happened (the error itself is its ``__cause__``)."""
    spec, _, attr = target.partition(":")
    if not spec:
        raise ToolDefinitionError(
            f"no tool given in {target!r}; use path/to/tool.py or module:attr"
        )
    module = _import(spec)
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, Tool):
            raise ToolDefinitionError(f"{spec} has no Tool named {attr!r}")
        return found
    named = getattr(module, "tool", None)
    if isinstance(named, Tool):
        return named
    tools = [value for value in vars(module).values() if isinstance(value, Tool)]
    if len(tools) == 1:
        return tools[0]
    if not tools:
        raise ToolDefinitionError(f"{spec} defines no Tool; expose one as a module-level 'tool'")
    names = sorted(name for name, value in vars(module).items() if isinstance(value, Tool))
    raise ToolDefinitionError(
        f"{spec} defines several tools ({', '.join(names)}); name one: {spec}:NAME"
    )


def load_tools(target: str) -> list[Tool]:
    """Return the tools ``target`` holds: every tool file of a folder (``tools/``: each ``.py``
    not starting with ``_`` or ``test``, in name order, files that define no tool skipped), a
    module's ``tools`` list (``module`` or ``module:attr`` naming a list), or the one tool
    ``load_tool`` finds."""
    path = Path(target)
    if path.is_dir():
        tools: list[Tool] = []
        for file in sorted(path.glob("*.py")):
            if file.name.startswith(("_", "test")):
                continue
            module = _import(str(file))
            tools.extend(_module_tools(module) or [])
        if not tools:
            raise ToolDefinitionError(f"the folder {target} holds no tool file")
        return tools
    spec, _, attr = target.partition(":")
    if spec:
        module = _import(spec)
        listed = getattr(module, attr or "tools", None)
        if isinstance(listed, list | tuple):
            if not listed or not all(isinstance(item, Tool) for item in listed):
                raise ToolDefinitionError(f"{spec}:{attr or 'tools'} must be a list of tools")
            return list(listed)
    return [load_tool(target)]


def _module_tools(module: ModuleType) -> list[Tool] | None:
    """A tool file's tools: its ``tools`` list, else its ``tool``, else every ``Tool`` in it."""
    listed = getattr(module, "tools", None)
    if isinstance(listed, list | tuple) and all(isinstance(item, Tool) for item in listed):
        return list(listed)
    named = getattr(module, "tool", None)
    if isinstance(named, Tool):
        return [named]
    found = [value for value in vars(module).values() if isinstance(value, Tool)]
    return found or None


def locate(tool: Tool) -> str | None:
    """Return a target string that loads ``tool`` again in another process, if one exists."""
    for name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if not namespace:
            continue
        for attr, value in list(namespace.items()):
            if value is tool:
                filename = getattr(module, "__file__", None)
                if name == "__main__" or name.startswith("ai_spine_tool_file_"):
                    return f"{filename}:{attr}" if filename else None
                return f"{name}:{attr}"
    return None


def _import(spec: str) -> ModuleType:
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise ToolDefinitionError(f"tool file {spec} does not exist")
        resolved = path.resolve()
        name = "ai_spine_tool_file_" + hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
        return import_file(str(resolved), name)
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (spec + ".").startswith(exc.name + "."):  # the target's own
            raise ToolDefinitionError(f"cannot import {spec!r}: {exc}") from None
        raise ToolDefinitionError(import_failure(exc)) from exc
    except Exception as exc:
        raise ToolDefinitionError(import_failure(exc)) from exc


def import_file(path: str, name: str) -> ModuleType:
    """Import the tool file at ``path`` as module ``name`` (once), with its folder on the path.

    Process-pool workers import it again under the same name (see ``_processes``), so that the
    functions of a tool file can be pickled by reference.
    """
    if name in sys.modules:
        return sys.modules[name]
    directory = str(Path(path).parent)
    if directory not in sys.path:
        # Last, not first: a tool's neighbour named like a standard module (secrets.py,
        # logging.py) must not replace it for the SDK and its libraries.
        sys.path.append(directory)
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ToolDefinitionError(f"cannot import {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    remember_file(name, path)
    try:
        module_spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        forget_file(name)
        if isinstance(exc, Exception):
            raise ToolDefinitionError(import_failure(exc)) from exc
        raise
    return module


def import_failure(exc: Exception) -> str:
    """One line for an error raised while importing a tool: where (``file:line``, in the
    deepest frame of the user's own code) and what."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:  # where the parser stopped
        return f"{_shown(exc.filename)}:{exc.lineno}: SyntaxError: {exc.msg}"
    frames = traceback.extract_tb(exc.__traceback__)
    own = [frame for frame in frames if _is_users(frame.filename)]
    where = f"{_shown(own[-1].filename)}:{own[-1].lineno}: " if own else ""
    what = exc.message if isinstance(exc, ToolError) else f"{type(exc).__name__}: {exc}"
    return where + what


_NOT_USERS = tuple(
    str(Path(path).resolve())
    for path in {
        str(Path(__file__).parent.parent),
        *(sysconfig.get_paths().get(key, "") for key in ("stdlib", "platstdlib")),
        *(sysconfig.get_paths().get(key, "") for key in ("purelib", "platlib")),
    }
    if path
)


def _is_users(filename: str) -> bool:
    """True for a file of the user's code: not the SDK's, the standard library's, an
    installed package's, nor the import machinery's (``<frozen ...>``)."""
    if filename.startswith("<"):
        return False
    return not str(Path(filename).resolve()).startswith(_NOT_USERS)


def _shown(filename: str) -> str:
    """``filename`` relative to the working directory when it is inside it."""
    relative = os.path.relpath(filename)
    return filename if relative.startswith("..") else relative
