"""What travels to a process-pool worker and back, run here as a worker would run it: messages
for what cannot be pickled, exceptions coming back with type, message and traceback, and tool
files loaded by path imported again under the same name."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_spine_tools import UnpicklableError
from ai_spine_tools.core._loader import load_tool
from ai_spine_tools.core._processcalls import _execute, pack_call, unpack_reply

ROLE = "context.to_process"


def add(a: int, b: int = 0) -> int:
    return a + b


def fail(message: str) -> None:
    raise ValueError(message)


def leave() -> None:
    raise SystemExit(3)


def numbers() -> Iterator[int]:
    return (n for n in range(3))


class StubbornError(Exception):
    """An exception that pickles but cannot be unpickled (its __init__ needs two arguments)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}/{b}")


def stubborn() -> None:
    raise StubbornError("x", "y")


def run_here(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A call as the pool makes it: pickled, run by the worker's code, answered, unpacked."""
    return unpack_reply(_execute(pack_call(fn, args, kwargs, role=ROLE)), name="f", pid=1)


def outer() -> Callable[[], int]:
    def inner() -> int:
        return 1

    return inner


@pytest.mark.parametrize(
    "fn",
    [lambda: 1, outer(), threading.Lock().acquire],
    ids=["lambda", "nested", "method-of-unpicklable"],
)
def test_an_unpicklable_function_says_it_must_be_defined_at_module_level(
    fn: Callable[..., Any],
) -> None:
    with pytest.raises(UnpicklableError) as caught:
        pack_call(fn, (), {}, role=ROLE)
    message = str(caught.value)
    assert message.startswith("context.to_process cannot send")
    assert "define it with def at the top level of a module" in message
    assert "not as a lambda, a closure or a function nested in another" in message


@pytest.mark.parametrize(
    ("args", "kwargs", "says"),
    [
        ((threading.Lock(),), {}, "argument 1 of test_processcalls.add (lock)"),
        ((1,), {"b": (n for n in range(3))}, "argument 'b' of test_processcalls.add (generator)"),
    ],
)
def test_an_unpicklable_argument_is_named_with_what_must_be_picklable(
    args: tuple[Any, ...], kwargs: dict[str, Any], says: str
) -> None:
    with pytest.raises(UnpicklableError) as caught:
        pack_call(add, args, kwargs, role=ROLE)
    assert says in str(caught.value)
    assert "Arguments and results must be picklable" in str(caught.value)


def test_a_result_and_keyword_arguments_come_back() -> None:
    assert run_here(add, 2, b=3) == 5


def test_an_exception_comes_back_with_its_type_message_and_the_workers_traceback() -> None:
    with pytest.raises(ValueError) as caught:
        run_here(fail, "bad input")
    assert str(caught.value) == "bad input"
    note = caught.value.__notes__[0]
    assert note.startswith("raised in worker process 1 running f:")
    assert "raise ValueError(message)" in note


@pytest.mark.parametrize(
    ("fn", "says"),
    [
        (stubborn, "test_processcalls.StubbornError: x/y"),
        (leave, "builtins.SystemExit: 3"),  # never raised as such in the server
    ],
)
def test_an_exception_that_cannot_come_back_as_itself_comes_back_in_words(
    fn: Callable[[], None], says: str
) -> None:
    with pytest.raises(RuntimeError, match=says) as caught:
        run_here(fn)
    assert "Traceback" in caught.value.__notes__[0]


def test_an_unpicklable_result_says_what_to_return() -> None:
    with pytest.raises(UnpicklableError, match="returned a generator, which cannot be pickled"):
        run_here(numbers)


def test_a_worker_imports_a_tool_file_loaded_by_path_under_the_same_name(tmp_path: Path) -> None:
    source = tmp_path / "my_tool.py"
    source.write_text(
        "from ai_spine_tools import create_tool\n\n"
        "def triple(x):\n    return 3 * x\n\n"
        "async def execute(input):\n    return {}\n\n"
        "tool = create_tool(metadata={'name': 'triple', 'version': '1.0.0', "
        "'description': 'x'}, execute=execute)\n"
    )
    tool = load_tool(str(source))
    name = next(n for n, m in sys.modules.items() if getattr(m, "tool", None) is tool)
    module = sys.modules[name]
    assert name.startswith("ai_spine_tool_file_")
    payload = pack_call(module.triple, (5,), {}, role=ROLE)
    del sys.modules[name]  # a fresh worker has never imported it
    try:
        assert unpack_reply(_execute(payload), name="triple", pid=1) == 15
        assert sys.modules[name] is not module  # imported again, under the same name
    finally:
        sys.modules[name] = module
