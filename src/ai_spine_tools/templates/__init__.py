"""Project templates for ``ai-spine new``: real files, rendered by replacing the project's name."""
