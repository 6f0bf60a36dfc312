"""The ``ai-spine`` command (``main``), with one module per group of commands:

- running a tool (``_serving``): ``serve``, ``dev``, ``call``, ``mcp``;
- its project and definition (``_project``): ``new``, ``check``, ``schema``;
- putting it under load (``_loading``): ``load``, ``profile``, ``doctor``.

A command that fails prints one line saying why (``file:line`` for an error while importing the
tool) and exits non-zero: 1, or 2 for a near miss of a security setting (see ``_startup``).
``ai-spine --debug COMMAND`` shows the traceback instead. ``create-ai-spine-tool NAME`` is
``ai-spine new NAME``.
"""

from __future__ import annotations

from ai_spine_tools.cli._group import main
from ai_spine_tools.cli._loading import doctor, load, profile
from ai_spine_tools.cli._project import check, new, schema
from ai_spine_tools.cli._serving import call, dev, mcp, serve

__all__ = ["create_main", "main"]

for _command in (serve, call, load, new, dev, check, schema, mcp, profile, doctor):
    main.add_command(_command)


def create_main() -> None:
    """``create-ai-spine-tool NAME``: the same as ``ai-spine new NAME``."""
    new.main(prog_name="create-ai-spine-tool")
