"""A call sent to a process-pool worker: how it is pickled, run there, and answered.

A call travels as one pickle: the tool files loaded by path, then the function (by reference),
its arguments and keyword arguments (by value). The answer is ``(True, value)`` or the error's
pickle with its type name, message and formatted traceback, so an exception that cannot be
pickled still comes back in words. Pickling happens in the caller's thread, so a mistake (a
lambda, an open file as argument) raises at once with a message that says what must be
picklable.

A tool file loaded by path (``ai-spine serve tools/x.py``) is imported under a module name that
does not exist on disk (see ``_loader``), so a worker could not find its functions by name.
Unpickling a call first imports those files under the same names (``_ToolFiles`` reduces to that
import, and pickle runs it before it looks the function up), so a module-level function of the
tool's file works as written.
"""

from __future__ import annotations

import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from ai_spine_tools.exceptions import UnpicklableError

__all__ = ["describe", "forget_file", "pack_call", "remember_file", "serve", "unpack_reply"]

_FILES: dict[str, str] = {}  # module name -> path of each tool file imported by path
_PICKLE = pickle.HIGHEST_PROTOCOL


def remember_file(name: str, path: str) -> None:
    """Record that the tool file at ``path`` is imported as module ``name`` (by ``_loader``)."""
    _FILES[name] = path


def forget_file(name: str) -> None:
    """Forget a tool file whose import failed."""
    _FILES.pop(name, None)


class _ToolFiles:
    """Pickled first in every call: unpickling it imports the tool files loaded by path."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_import_files, (tuple(_FILES.items()),))


_TOOL_FILES = _ToolFiles()


def _import_files(files: tuple[tuple[str, str], ...]) -> None:
    for name, path in files:
        if name not in sys.modules:
            from ai_spine_tools.core._loader import import_file

            import_file(path, name)


# -- in the server process -------------------------------------------------------------------


def pack_call(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any], *, role: str
) -> bytes:
    """Pickle a call for a worker; ``UnpicklableError`` says which part cannot be pickled."""
    try:
        return pickle.dumps((_TOOL_FILES, fn, args, dict(kwargs)), _PICKLE)
    except Exception as exc:
        raise _unpicklable(fn, args, kwargs, role, exc) from exc


def _unpicklable(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    role: str,
    error: Exception,
) -> UnpicklableError:
    """Say which part of a call cannot be pickled, and what must be."""
    reason = f"{type(error).__name__}: {error}"
    name = describe(fn)
    if not _pickles(fn):
        return UnpicklableError(
            f"{role} cannot send {name} to a worker process ({reason}). The function must be "
            "picklable: define it with def at the top level of a module (the tool's own file "
            "will do), not as a lambda, a closure or a function nested in another"
        )
    positional = ((f"argument {i + 1}", value) for i, value in enumerate(args))
    keywords = ((f"argument {key!r}", value) for key, value in kwargs.items())
    for where, value in (*positional, *keywords):
        if not _pickles(value):
            return UnpicklableError(
                f"{role} cannot send {where} of {name} ({type(value).__name__}) to a worker "
                f"process ({reason}). Arguments and results must be picklable: plain data "
                "(str, bytes, numbers, lists, dicts) or objects of classes defined at module "
                "level, not open files, sockets, locks, clients or generators"
            )
    return UnpicklableError(f"{role} cannot pickle its call of {name} ({reason})")


def _pickles(value: Any) -> bool:
    try:
        pickle.dumps(value, _PICKLE)
    except Exception:
        return False
    return True


def unpack_reply(reply: bytes, *, name: str, pid: int) -> Any:
    """Return the call's result, or raise its exception with the worker's traceback as a note."""
    try:
        message = pickle.loads(reply)
    except Exception as exc:
        raise UnpicklableError(
            f"the result of {name} cannot be unpickled in the server process "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if message[0]:
        return message[1]
    _, raw, type_name, text, trace = message
    error: Any = None
    if raw is not None:
        try:
            error = pickle.loads(raw)
        except Exception:
            error = None
    if not isinstance(error, Exception):
        # Not picklable, or a BaseException (SystemExit, KeyboardInterrupt, CancelledError)
        # that would mean something else in the server: keep its type and message in words.
        error = RuntimeError(f"{type_name}: {text}")
    error.add_note(f"raised in worker process {pid} running {name}:\n{trace}")
    raise error


def describe(fn: Any) -> str:
    """``module.qualname`` of a function, for messages."""
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', None) or repr(fn)}"


# -- in a worker process ---------------------------------------------------------------------


def serve(conn: Any) -> None:
    """A worker's life: run the calls that arrive until the server closes the pipe."""
    # Ctrl-C reaches the whole process group; the server shuts the pool down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            conn.send_bytes(_execute(data))
        except OSError:
            return


def _execute(data: bytes) -> bytes:
    """Run one call and pickle its outcome."""
    name = "the function"
    try:
        _, fn, args, kwargs = pickle.loads(data)
        name = describe(fn)
        value = fn(*args, **kwargs)
    except BaseException as exc:
        return _pack_error(exc)
    try:
        return pickle.dumps((True, value), _PICKLE)
    except Exception as exc:
        return _pack_error(
            UnpicklableError(
                f"{name} returned a {type(value).__name__}, which cannot be pickled back to the "
                f"server process ({type(exc).__name__}: {exc}); return plain data (str, "
                "bytes, numbers, lists, dicts) or objects of classes defined at module level"
            )
        )


def _pack_error(error: BaseException) -> bytes:
    trace = "".join(traceback.format_exception(error)).rstrip()
    try:
        raw: bytes | None = pickle.dumps(error, _PICKLE)
    except Exception:
        raw = None
    kind = type(error)
    return pickle.dumps((False, raw, f"{kind.__module__}.{kind.__qualname__}", str(error), trace))
