"""Security headers, and the page policy that admits a page's own inline blocks by hash."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ai_spine_tools.security._headers import (
    API_SECURITY_HEADERS,
    page_security_headers,
    policy_for_page,
)


def sha(block: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(block).digest()).decode() + "'"


@pytest.mark.parametrize(
    ("policy", "html", "expected"),
    [
        ("default-src 'self'", b"<p>no scripts</p>", "default-src 'self'"),
        (
            "default-src 'self'; script-src 'self'",
            b"<script>go()</script>",
            f"default-src 'self'; script-src 'self' {sha(b'go()')}",
        ),
        (
            "script-src 'self'",
            b'<script src="/app.js"></script><SCRIPT type="module">x</SCRIPT >',
            f"script-src 'self' {sha(b'x')}",
        ),
        (
            "default-src 'none'",
            b"<style>p{}</style>",
            f"default-src 'none'; style-src {sha(b'p{}')}",
        ),
        ("script-src 'none'", b"<script>y</script>", f"script-src {sha(b'y')}"),
        (
            "default-src 'self'",
            b"<script>a</script><script>a</script>",
            f"default-src 'self'; script-src 'self' {sha(b'a')}",
        ),
    ],
)
def test_policy_for_page(policy: str, html: bytes, expected: str) -> None:
    assert policy_for_page(policy, html) == expected


def test_page_headers_keep_the_other_security_headers() -> None:
    headers = dict(page_security_headers("default-src 'self'", b"<p>x</p>"))
    assert headers[b"content-security-policy"] == b"default-src 'self'"
    for name, value in API_SECURITY_HEADERS[:-1]:
        assert headers[name] == value
