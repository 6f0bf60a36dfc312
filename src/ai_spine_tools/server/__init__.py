"""The HTTP server: the ASGI app, the connection protocol and its fast path, probes, MCP."""
