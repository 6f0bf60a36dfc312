"""``python -m ai_spine_tools``: the ``ai-spine`` command."""

from ai_spine_tools.cli import main

main()
