"""Security headers: a fixed set for JSON answers, and a Content-Security-Policy for HTML pages.

JSON answers load nothing, so they get the strictest policy there is. An HTML page (the
dashboard) gets the page policy (``AI_SPINE_CSP``), extended with the SHA-256 hash of each of its
own inline ``<script>`` and ``<style>`` blocks: a self-contained page works, while any script an
attacker manages to inject does not run (no ``'unsafe-inline'``). The hashes are computed once per
page body (cached).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re

__all__ = ["API_SECURITY_HEADERS", "page_security_headers", "policy_for_page"]

API_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
"""The headers of every answer that is not an HTML page."""

_INLINE = {
    "script-src": re.compile(rb"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.I | re.S),
    "style-src": re.compile(rb"<style[^>]*>(.*?)</style\s*>", re.I | re.S),
}


def policy_for_page(policy: str, html: bytes) -> str:
    """Return ``policy`` with the hashes of ``html``'s inline scripts and styles allowed."""
    directives = [part.strip() for part in policy.split(";") if part.strip()]
    for name, pattern in _INLINE.items():
        hashes = sorted(
            {
                "'sha256-" + base64.b64encode(hashlib.sha256(block).digest()).decode() + "'"
                for block in pattern.findall(html)
            }
        )
        if not hashes:
            continue
        for index, directive in enumerate(directives):
            parts = directive.split()
            if parts[0].lower() == name:
                kept = [part for part in parts if part != "'none'"]  # 'none' stands alone
                directives[index] = " ".join([*kept, *hashes])
                break
        else:  # the directive falls back on default-src: keep its sources, add the hashes
            fallback = next(
                (d.split(None, 1)[1] for d in directives if d.lower().startswith("default-src ")),
                "'self'",
            )
            sources = [] if fallback.strip() == "'none'" else [fallback]  # 'none' stands alone
            directives.append(" ".join([name, *sources, *hashes]))
    return "; ".join(directives)


@functools.lru_cache(maxsize=16)
def page_security_headers(policy: str, html: bytes) -> list[tuple[bytes, bytes]]:
    """Return the security headers of an HTML page (cached per policy and page)."""
    return [
        *API_SECURITY_HEADERS[:-1],
        (b"content-security-policy", policy_for_page(policy, html).encode()),
    ]
