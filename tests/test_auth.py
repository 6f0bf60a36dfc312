"""Authentication: API keys from the environment and a key file (rotation, revocation), signed
requests, key ids in place of keys, which routes need auth, and timing that reveals nothing."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

import weather
from ai_spine_tools import sign_request
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.exceptions import AuthenticationError, ServerConfigurationError
from ai_spine_tools.security._auth import APIKeyAuth, SignatureAuth, key_id, read_key_file
from ai_spine_tools.testing import AsyncToolTestClient, assert_success
from serverproc import EXAMPLES, running_server
from tools import guarded

OLD = "old-key-0123456789abcdef"
NEW = "new-key-fedcba9876543210"
SECRET = "signing-secret-0123456789"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str) -> None:
    """Replace the file atomically, as a deploy tool would."""
    partial = path.with_suffix(".tmp")
    partial.write_text(text)
    os.replace(partial, path)


# -- key files ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("", ()),
        ("k1\n", ("k1",)),
        ("k1\nk2\n\n", ("k1", "k2")),
        ("# the partner keys\nk1\n  # indented comment\n\tk2\t\n", ("k1", "k2")),
        ("k1  # rotated in on 2026-11-01\nk2\t# trailing\n", ("k1", "k2")),
        ("k#1\n", ("k#1",)),
        ("k1\r\nk2\r\n", ("k1", "k2")),
    ],
)
def test_read_key_file(tmp_path: Path, text: str, keys: tuple[str, ...]) -> None:
    path = tmp_path / "keys"
    path.write_text(text)
    assert read_key_file(path) == keys


def test_key_ids_are_stable_short_and_not_the_key() -> None:
    first, again, other = key_id(OLD), key_id(OLD), key_id(NEW)
    assert first == again != other
    assert first.startswith("key_")
    assert len(first) == 16
    assert OLD not in first
    assert first[4:] not in hashlib.sha256(OLD.encode()).hexdigest()  # not a plain digest
    assert key_id(SECRET, prefix="sig_").startswith("sig_")


def test_keys_from_the_environment_and_the_file_are_all_accepted(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{NEW}\n")
    auth = APIKeyAuth([OLD], key_file=str(path))
    assert auth.identify(OLD.encode(), None) == key_id(OLD)
    assert auth.identify(None, f"Bearer {NEW}".encode()) == key_id(NEW)
    assert auth.identify(b"nope", None) is None
    assert auth.identify(None, b"Basic " + NEW.encode()) is None
    assert set(auth.key_ids) == {key_id(OLD), key_id(NEW)}


def test_a_changed_key_file_rotates_and_revokes_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{OLD}\n")
    clock = Clock()
    auth = APIKeyAuth(key_file=str(path), clock=clock)
    write(path, f"{OLD}\n{NEW}\n")  # rotation: the new key is added first
    assert auth.identify(NEW.encode(), None) is None  # not looked at again within a second
    clock.now += 1.5
    assert auth.identify(NEW.encode(), None) == key_id(NEW)
    assert auth.identify(OLD.encode(), None) == key_id(OLD)
    write(path, f"{NEW}\n")  # then the old one is revoked
    clock.now += 1.5
    assert auth.identify(OLD.encode(), None) is None
    assert auth.identify(NEW.encode(), None) == key_id(NEW)


@pytest.mark.parametrize("how", ["deleted", "emptied", "unreadable"])
def test_a_key_file_that_goes_bad_revokes_its_keys(tmp_path: Path, how: str) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{NEW}\n")
    clock = Clock()
    auth = APIKeyAuth([OLD], key_file=str(path), clock=clock)
    if how == "deleted":
        path.unlink()
    elif how == "emptied":
        write(path, "# no keys left\n")
    else:
        write(path, "\xff\xfe")
        path.write_bytes(b"\xff\xfe\x00")
    clock.now += 1.5
    assert auth.identify(NEW.encode(), None) is None  # fails closed, never open
    assert auth.identify(OLD.encode(), None) == key_id(OLD)  # the environment's key stays


def test_an_unreadable_key_file_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ServerConfigurationError, match="AI_SPINE_API_KEYS_FILE"):
        APIKeyAuth(key_file=str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("# nothing yet\n")
    with pytest.raises(ServerConfigurationError, match="at least one key"):
        APIKeyAuth(key_file=str(tmp_path / "empty"))


# -- signed requests ----------------------------------------------------------------------------


def signer(clock: Clock, *secrets: str) -> SignatureAuth:
    return SignatureAuth(secrets or (SECRET,), tolerance_s=300, clock=clock)


def verify(
    auth: SignatureAuth, headers: dict[str, str], body: bytes, path: str = "/api/execute"
) -> str:
    return auth.verify(
        headers["X-Signature-Timestamp"].encode(),
        headers["X-Signature"].encode(),
        "POST",
        path,
        body,
    )


def test_a_signed_request_is_accepted_once() -> None:
    clock = Clock(1_767_225_600)
    auth = signer(clock)
    body = b'{"input_data": {"city": "Oslo"}}'
    headers = sign_request(SECRET, body, timestamp=1_767_225_600)
    assert verify(auth, headers, body) == key_id(SECRET, prefix="sig_")
    with pytest.raises(AuthenticationError, match="already received"):
        verify(auth, headers, body)
    clock.now += 1  # the same request signed a second later is a new request
    assert verify(auth, sign_request(SECRET, body, timestamp=1_767_225_601), body)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": b'{"input_data": {"city": "Lima"}}'}, "does not match"),
        ({"path": "/metrics"}, "does not match"),
        ({"secret": "another-secret-0123456789"}, "does not match"),
        ({"timestamp": 1_767_225_600 - 301}, "outside the accepted window"),
        ({"timestamp": 1_767_225_600 + 301}, "outside the accepted window"),
        ({"header": "sha256=abc"}, "must be 'v1='"),
        ({"header": "v1=" + "zz" * 32}, "must be 'v1='"),
        ({"stamp": "yesterday"}, "Unix time"),
    ],
)
def test_a_bad_signature_is_refused(change: dict[str, Any], message: str) -> None:
    auth = signer(Clock(1_767_225_600))
    body = b'{"input_data": {"city": "Oslo"}}'
    headers = sign_request(
        change.get("secret", SECRET), body, timestamp=change.get("timestamp", 1_767_225_600)
    )
    if "header" in change:
        headers["X-Signature"] = change["header"]
    if "stamp" in change:
        headers["X-Signature-Timestamp"] = change["stamp"]
    with pytest.raises(AuthenticationError, match=message):
        verify(auth, headers, change.get("body", body), change.get("path", "/api/execute"))


def test_every_signing_secret_is_accepted_during_rotation() -> None:
    second = "second-secret-9876543210"
    auth = signer(Clock(1_767_225_600), SECRET, second)
    for secret in (SECRET, second):
        headers = sign_request(secret, b"{}", timestamp=1_767_225_600)
        assert verify(auth, headers, b"{}") == key_id(secret, prefix="sig_")


# -- in the app ---------------------------------------------------------------------------------


async def test_keys_missing_wrong_and_rotated_over_the_app() -> None:
    async with AsyncToolTestClient(guarded.tool, ServerSettings(api_keys=(OLD, NEW))) as client:
        missing = await client.execute({})
        wrong = await client.execute({}, headers={"X-API-Key": OLD[:-1] + "x"})
        old = await client.execute({}, headers={"X-API-Key": OLD})
        new = await client.execute({}, headers={"Authorization": f"Bearer {NEW}"})
    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert refused.error_code == "AUTHENTICATION_REQUIRED"
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert assert_success(old)["key_id"] == key_id(OLD)
    assert assert_success(new)["key_id"] == key_id(NEW)


async def test_signed_requests_over_the_app() -> None:
    settings = ServerSettings(signing_secrets=(SECRET,))
    body = msgspec.json.encode({"input_data": {"name": "signed"}})
    async with AsyncToolTestClient(guarded.tool, settings) as client:
        ok = await client.post("/api/execute", content=body, headers=sign_request(SECRET, body))
        replayed = await client.post(
            "/api/execute", content=body, headers=sign_request(SECRET, body)
        )
        tampered = await client.post(
            "/api/execute",
            content=body.replace(b"signed", b"forged"),
            headers=sign_request(SECRET, body, timestamp=int(time.time()) - 1),
        )
        stale = await client.post(
            "/api/execute",
            content=body,
            headers=sign_request(SECRET, body, timestamp=int(time.time()) - 3600),
        )
        unsigned = await client.post("/api/execute", content=body)
        metrics = await client.get(
            "/metrics", headers=sign_request(SECRET, method="GET", path="/metrics")
        )
    assert assert_success(ok)["key_id"] == key_id(SECRET, prefix="sig_")
    for refused, reason in (
        (replayed, "already received"),
        (tampered, "does not match"),
        (stale, "outside the accepted window"),
        (unsigned, "A signed request is required"),
    ):
        assert refused.status_code == 401, refused.json
        assert reason in (refused.error_message or "")
    assert metrics.status_code == 200


async def test_keys_and_signatures_together_accept_either() -> None:
    settings = ServerSettings(api_keys=(OLD,), signing_secrets=(SECRET,))
    body = msgspec.json.encode({"input_data": {}})
    async with AsyncToolTestClient(guarded.tool, settings) as client:
        by_key = await client.post("/api/execute", content=body, headers={"X-API-Key": OLD})
        signed = await client.post("/api/execute", content=body, headers=sign_request(SECRET, body))
        neither = await client.post("/api/execute", content=body)
    assert (by_key.status_code, signed.status_code, neither.status_code) == (200, 200, 401)
    assert "X-API-Key" in (neither.error_message or "")
    assert "X-Signature" in (neither.error_message or "")


async def test_metrics_count_callers_by_key_id_never_by_key() -> None:
    async with AsyncToolTestClient(weather.tool, ServerSettings(api_keys=(OLD, NEW))) as client:
        for key in (OLD, OLD, NEW, "wrong-key-000000"):
            await client.execute({"city": "Oslo"}, headers={"X-API-Key": key})
        metrics = await client.get("/metrics", headers={"X-API-Key": NEW})
    auth = metrics.json["auth"]
    assert auth["api_keys_active"] == 2
    assert auth["rejected"] == 1
    assert auth["requests_by_key"] == {key_id(OLD): 2, key_id(NEW): 2}  # /metrics counts too
    assert OLD not in metrics.text
    assert NEW not in metrics.text


ROUTES = ["/api/execute", "/metrics", "/schema", "/health", "/ready", "/"]


@pytest.mark.parametrize(
    ("settings", "open_routes"),
    [
        (ServerSettings(), set(ROUTES)),
        (ServerSettings(api_keys=(OLD,)), {"/health", "/ready", "/"}),
        (
            ServerSettings(api_keys=(OLD,), public_routes=("/metrics",)),
            {"/health", "/ready", "/", "/metrics"},
        ),
        (
            ServerSettings(api_keys=(OLD,), public_routes=("/metrics", "/schema")),
            {"/health", "/ready", "/", "/metrics", "/schema"},
        ),
        (ServerSettings(signing_secrets=(SECRET,)), {"/health", "/ready", "/"}),
    ],
)
async def test_which_routes_need_auth(settings: ServerSettings, open_routes: set[str]) -> None:
    async with AsyncToolTestClient(weather.tool, settings) as client:
        for route in ROUTES:
            if route == "/api/execute":
                response = await client.execute({"city": "Oslo"})
            else:
                response = await client.get(route)
            assert (response.status_code != 401) is (route in open_routes), route


@pytest.mark.parametrize(
    ("raw", "routes"),
    [
        ("/metrics", ("/metrics",)),
        ("metrics, /schema/", ("/metrics", "/schema")),
        ("/dashboard", ("/dashboard",)),
    ],
)
def test_public_routes_setting(raw: str, routes: tuple[str, ...]) -> None:
    assert ServerSettings.from_env({"AI_SPINE_PUBLIC_ROUTES": raw}).public_routes == routes


@pytest.mark.parametrize("raw", ["/api/execute", "/health", "everything"])
def test_public_routes_cannot_open_execute_or_name_unknown_routes(raw: str) -> None:
    with pytest.raises(ServerConfigurationError, match="AI_SPINE_PUBLIC_ROUTES"):
        ServerSettings.from_env({"AI_SPINE_PUBLIC_ROUTES": raw})


# -- timing -------------------------------------------------------------------------------------


def relative_gap(call: Callable[[bytes], object], a: bytes, b: bytes) -> float:
    """How much slower the slower of ``call(a)`` and ``call(b)`` is, as a fraction.

    Batches of each alternate (so drift in the machine's speed hits both alike) and the median
    batch of each is compared: bounded at 2 x 25 batches of 400 calls.
    """
    timings: dict[bytes, list[float]] = {a: [], b: []}
    for _ in range(25):
        for value in (a, b):
            started = time.perf_counter()
            for _ in range(400):
                call(value)
            timings[value].append(time.perf_counter() - started)
    first, second = (sorted(timings[v])[len(timings[v]) // 2] for v in (a, b))
    return abs(first - second) / min(first, second)


def test_a_wrong_keys_timing_does_not_depend_on_its_matching_prefix() -> None:
    real = b"k" * 63 + b"1"
    auth = APIKeyAuth([real.decode(), NEW])
    nothing_alike = b"x" * 64
    all_but_last = real[:-1] + b"2"

    def leaky(presented: bytes) -> object:
        # A comparison that stops at the first difference: what the test must be able to see.
        auth.identify(presented, None)
        for mine, theirs in zip(real, presented, strict=True):
            if mine != theirs:
                break
        return None

    assert relative_gap(leaky, nothing_alike, all_but_last) > 0.5  # the test can see a leak
    assert relative_gap(lambda key: auth.identify(key, None), nothing_alike, all_but_last) < 0.15


# -- over a real server -------------------------------------------------------------------------


@pytest.mark.slow
def test_key_file_rotation_and_revocation_on_a_running_server(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# deployed keys\n{OLD}\n")
    env = {"AI_SPINE_API_KEYS_FILE": str(path)}
    with running_server(EXAMPLES / "weather.py", env=env) as server:

        def status(key: str) -> int:
            reply = httpx.post(
                f"{server.url}/api/execute",
                json={"input_data": {"city": "Oslo"}},
                headers={"X-API-Key": key},
            )
            assert OLD not in reply.text
            assert NEW not in reply.text
            return reply.status_code

        def settle(expected: dict[str, int]) -> None:
            deadline = time.monotonic() + 10
            while {key: status(key) for key in expected} != expected:
                assert time.monotonic() < deadline, "the key file was not picked up"
                time.sleep(0.2)

        assert (status(OLD), status(NEW)) == (200, 401)
        write(path, f"{OLD}\n{NEW}\n")
        settle({OLD: 200, NEW: 200})
        write(path, f"{NEW}\n")
        settle({OLD: 401, NEW: 200})
        path.unlink()
        settle({OLD: 401, NEW: 401})
        assert httpx.get(f"{server.url}/health").status_code == 200
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        server.stop()
        output = server.output()
    assert OLD not in output
    assert NEW not in output
    assert f"revoked ['{key_id(OLD)}']" in output  # the reload's log names keys by their ids
