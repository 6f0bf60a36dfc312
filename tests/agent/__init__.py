"""A tool of its own folder: the MCP tests serve it (tests/tools holds a secrets.py, which
shadows the standard library module for whatever the tool server imports next)."""
