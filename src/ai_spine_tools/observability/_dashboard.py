"""The live dashboard at ``GET /dashboard`` (``AI_SPINE_DASHBOARD=true``).

One small self-contained page from the package's data (no build step): request rate, p50 and p99
latency, error rate and cache hit rate over the last five minutes, drawn on canvases from
``metrics`` and ``health`` polled every two seconds (the whole instance, when it runs several
workers). Its inline script and style run under the strict page Content-Security-Policy through
their hashes (see ``_headers``), with no ``'unsafe-inline'``.

When auth is on, the page needs the same key as ``/api/execute``; a browser cannot send
``X-API-Key`` when navigating, so HTTP Basic auth is accepted too, the key as the password (any
user name), and a refusal of the page asks for it (``WWW-Authenticate: Basic``). The browser then
sends the same credentials with the page's own requests for ``metrics`` and ``health``.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

__all__ = ["BASIC_CHALLENGE", "HTML", "PAGE", "page"]

PAGE = "/dashboard"
HTML = b"text/html; charset=utf-8"
BASIC_CHALLENGE = (b"www-authenticate", b'Basic realm="ai-spine-tool", charset="UTF-8"')


@cache
def page() -> bytes:
    """Return the page (read once from ``ai_spine_tools/static/dashboard.html``)."""
    return files("ai_spine_tools").joinpath("static", "dashboard.html").read_bytes()
