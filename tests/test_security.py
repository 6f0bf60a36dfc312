"""Security properties of every response: the security headers, a page policy for HTML, and no
stack traces or internal paths in error messages unless debug is on."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

import weather
from ai_spine_tools import create_tool
from ai_spine_tools._settings import PAGE_CSP, ServerSettings
from ai_spine_tools.server._app import ToolApp
from ai_spine_tools.server._wire import Request, Response
from ai_spine_tools.testing import AsyncToolTestClient, ToolResponse
from tools import slow

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}
KEY = "security-test-key-0123456789"


def assert_security_headers(response: ToolResponse, *, csp: str | None = None) -> None:
    for name, value in SECURITY_HEADERS.items():
        expected = csp if csp is not None and name == "content-security-policy" else value
        assert response.headers.get(name) == expected, (name, response)


CASES: list[tuple[str, str, dict[str, str], bytes | None, int]] = [
    ("POST", "/api/execute", {"X-API-Key": KEY}, b'{"input_data": {"city": "Oslo"}}', 200),
    ("POST", "/api/execute", {"X-API-Key": KEY}, b'{"input_data": {}}', 400),
    ("POST", "/api/execute", {"X-API-Key": KEY}, b"{not json", 400),
    ("POST", "/api/execute", {}, b"{}", 401),
    ("POST", "/api/execute", {"X-API-Key": KEY, "Content-Type": "text/plain"}, b"{}", 415),
    (
        "POST",
        "/api/execute",
        {"X-API-Key": KEY},
        b'{"input_data": {"city": "' + b"x" * 3000 + b'"}}',
        413,
    ),
    ("GET", "/health", {}, None, 200),
    ("HEAD", "/health", {}, None, 200),
    ("GET", "/ready", {}, None, 200),
    ("GET", "/schema", {"X-API-Key": KEY}, None, 200),
    ("GET", "/metrics", {"X-API-Key": KEY}, None, 200),
    ("GET", "/metrics", {}, None, 401),
    ("GET", "/", {}, None, 200),
    ("GET", "/nope/../../etc/passwd", {}, None, 404),
    ("DELETE", "/health", {}, None, 405),
    ("OPTIONS", "/api/execute", {}, None, 204),
]


@pytest.mark.parametrize(
    "middleware", [{}, {"compression": True, "cors_origins": ("https://a.example",)}]
)
@pytest.mark.parametrize(("method", "path", "headers", "body", "status"), CASES)
async def test_every_response_carries_the_security_headers(
    middleware: dict[str, Any],
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
) -> None:
    settings = ServerSettings(api_keys=(KEY,), max_body_bytes=2000, **middleware)
    sent = {"Content-Type": "application/json", "Accept-Encoding": "gzip", **headers}
    async with AsyncToolTestClient(weather.tool, settings) as client:
        response = await client.request(method, path, content=body, headers=sent)
    assert response.status_code == status
    assert_security_headers(response)


PAGE = b"""<!doctype html><title>live</title>
<style>body { color: #333 }</style>
<script src="/static/app.js"></script>
<script>document.title = "ready"</script>"""
SCRIPT_HASH = (
    "'sha256-"
    + base64.b64encode(hashlib.sha256(b'document.title = "ready"').digest()).decode()
    + "'"
)
STYLE_HASH = (
    "'sha256-" + base64.b64encode(hashlib.sha256(b"body { color: #333 }").digest()).decode() + "'"
)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            None,
            PAGE_CSP.replace("script-src 'self'", f"script-src 'self' {SCRIPT_HASH}").replace(
                "style-src 'self'", f"style-src 'self' {STYLE_HASH}"
            ),
        ),
        (
            "default-src 'self'; img-src https:",
            f"default-src 'self'; img-src https:; script-src 'self' {SCRIPT_HASH}; "
            f"style-src 'self' {STYLE_HASH}",
        ),
    ],
)
async def test_html_pages_get_the_page_policy_with_their_inline_blocks_hashed(
    policy: str | None, expected: str
) -> None:
    settings = (
        ServerSettings() if policy is None else ServerSettings(content_security_policy=policy)
    )
    app = ToolApp(weather.tool, settings)

    async def page(request: Request) -> Response:  # what a /dashboard handler answers
        return Response(200, PAGE, [], content_type=b"text/html; charset=utf-8")

    app.routes["/page"] = {"GET": page}
    async with AsyncToolTestClient(app) as client:
        html = await client.get("/page")
        api = await client.get("/health")
    assert_security_headers(html, csp=expected)
    assert "unsafe-inline" not in expected
    assert_security_headers(api)


def test_the_page_policy_is_a_setting() -> None:
    settings = ServerSettings.from_env({"AI_SPINE_CSP": "default-src 'self'"})
    assert settings.content_security_policy == "default-src 'self'"
    assert "frame-ancestors 'none'" in ServerSettings.from_env({}).content_security_policy


LEAKS = ("Traceback", 'File "', "/srv/app", ".py", "RuntimeError", "asked to fail")


async def test_errors_hold_no_stack_trace_or_internal_path_unless_debug() -> None:
    def broken_check() -> bool:
        raise OSError("cannot open /srv/app/secrets.db")

    checked = create_tool(
        metadata={"name": "checked", "version": "1.0.0", "description": "x"},
        execute=dict,
        health_check=broken_check,
    )
    for debug in (False, True):
        async with AsyncToolTestClient(slow.tool, ServerSettings(debug=debug)) as client:
            failed = await client.execute({"fail": "/srv/app/internal.py line 3"})
        async with AsyncToolTestClient(checked, ServerSettings(debug=debug)) as client:
            health = await client.get("/health")
        assert failed.status_code == 500
        assert health.json["status"] == "degraded"
        for response in (failed, health):
            assert "Traceback" not in response.text
            assert 'File "' not in response.text
            assert slow.__file__ not in response.text
        if debug:  # the exception's own text, but still no trace
            assert "asked to fail: /srv/app/internal.py" in (failed.error_message or "")
            assert "/srv/app/secrets.db" in health.text
        else:
            for leak in LEAKS:
                assert leak not in failed.text, leak
                assert leak not in health.text, leak


async def test_an_unexpected_server_error_is_a_bare_500(monkeypatch: pytest.MonkeyPatch) -> None:
    tool = create_tool(
        metadata={"name": "metered", "version": "1.0.0", "description": "x"}, execute=dict
    )

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"snapshot failed in {__file__}")

    monkeypatch.setattr(tool.metrics, "snapshot", broken)
    async with AsyncToolTestClient(tool, ServerSettings()) as client:
        response = await client.get("/metrics")
        assert (await client.get("/health")).status_code == 200
    assert response.status_code == 500
    assert response.error_message == "Internal server error"
    for leak in LEAKS:
        assert leak not in response.text
