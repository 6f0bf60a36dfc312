"""Find the tool to serve from a target: ``path/to/tool.py[:attr]`` or ``module[:attr]``."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ai_spine_tools._processcalls import forget_file, remember_file
from ai_spine_tools._tool import Tool
from ai_spine_tools.exceptions import ToolDefinitionError

__all__ = ["import_file", "load_tool", "locate"]


def load_tool(target: str) -> Tool:
    """Import ``target`` and return its tool: the named attribute, a module-level ``tool``, or the
    module's only ``Tool``."""
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
        raise ToolDefinitionError(f"cannot import {spec!r}: {exc}") from None


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
    except BaseException:
        del sys.modules[name]
        forget_file(name)
        raise
    return module
