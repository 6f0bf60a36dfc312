"""Secret values (``api_key_field``, ``secret_field``, API keys, signing secrets) never reach a
response, an error, a log line, the metrics, a trace or a ``repr``: a planted secret is swept for
in every output channel."""

from __future__ import annotations

import copy
import json
import logging
import pickle
from typing import Any

import msgspec
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ai_spine_tools import (
    ToolContext,
    api_key_field,
    array_field,
    create_tool,
    object_field,
    secret_field,
    sign_request,
    string_field,
)
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.core._config import ConfigResolver
from ai_spine_tools.exceptions import ServerConfigurationError
from ai_spine_tools.fields._schema import Schema
from ai_spine_tools.fields._secrets import REDACTED, secret_values_type
from ai_spine_tools.server._app import ToolApp
from ai_spine_tools.testing import AsyncToolTestClient

PLANTED = "Pl4nted-s3cret-value-7f3a9c"  # every secret below contains it
API_KEY = f"{PLANTED}-api-key"
SIGNING = f"{PLANTED}-signing"
SERVER_SIDE = f"{PLANTED}-server-side"


def test_secret_values_hide_only_the_secret_keys() -> None:
    values = secret_values_type(frozenset({"token"}))({"token": PLANTED, "city": "Oslo"})
    shown_by_logging = logging.LogRecord("t", 20, "", 0, "%s", (values,), None).getMessage()
    for shown in (repr(values), str(values), f"{values}", shown_by_logging, repr([values])):
        assert PLANTED not in shown
        assert REDACTED in shown
        assert "Oslo" in shown
    assert values["token"] == PLANTED  # the value itself is untouched
    assert json.loads(json.dumps(values))["token"] == PLANTED
    assert msgspec.json.decode(msgspec.json.encode(values))["token"] == PLANTED
    for copied in (copy.copy(values), copy.deepcopy(values), values.copy()):
        assert PLANTED not in repr(copied)
        assert copied == values
    assert PLANTED not in repr(pickle.loads(pickle.dumps(values)))


def test_a_none_secret_shows_as_none() -> None:
    values = secret_values_type(frozenset({"token"}))({"token": None})
    assert repr(values) == "{'token': None}"


def test_input_and_config_dicts_hide_secrets_and_plain_dicts_stay_plain() -> None:
    secret_schema = Schema(
        {"password": secret_field(), "user": string_field()}, subject="input", forbid_unknown=True
    )
    plain_schema = Schema({"user": string_field()}, subject="input", forbid_unknown=True)
    decoded = secret_schema.decode_json(msgspec.json.encode({"password": PLANTED, "user": "u"}))
    validated = secret_schema.validate({"password": PLANTED, "user": "u"})
    for values in (decoded, validated):
        assert values == {"password": PLANTED, "user": "u"}
        assert PLANTED not in repr(values)
    assert type(plain_schema.decode_json(b'{"user": "u"}')) is dict
    resolver = ConfigResolver({"token": api_key_field(), "region": string_field()})
    config = resolver.for_request({"token": PLANTED, "region": "eu"})
    assert config["token"] == PLANTED
    assert PLANTED not in repr(config)
    assert PLANTED not in repr(resolver.server_values())


def test_secrets_nested_in_objects_and_arrays_are_hidden_too() -> None:
    account = object_field(properties={"name": string_field(), "token": secret_field()})
    fields = {"user": string_field(), "accounts": array_field(items=account), "main": account}
    schema = Schema(fields, subject="input", forbid_unknown=True)
    sent = {
        "user": "u",
        "accounts": [{"name": "a", "token": PLANTED}, {"name": "b", "token": None}],
        "main": {"name": "m", "token": PLANTED},
    }
    decoded = schema.decode_json(msgspec.json.encode(sent))
    for values in (decoded, schema.validate(sent)):
        assert values == sent
        for part in (values, values["accounts"], values["accounts"][0], values["main"]):
            assert PLANTED not in repr(part)
        assert repr(values["main"]) == "{'name': 'm', 'token': '***'}"
        assert PLANTED not in repr(copy.deepcopy(values))
    assert (
        type(
            Schema({"o": object_field()}, subject="input", forbid_unknown=True).validate(
                {"o": {"token": "t"}}
            )
        )
        is dict
    )  # no secret anywhere: plain dicts
    resolver = ConfigResolver({"creds": object_field(properties={"key": api_key_field()})})
    config = resolver.for_request({"creds": {"key": PLANTED}})
    assert config["creds"]["key"] == PLANTED
    assert PLANTED not in repr(config)
    assert PLANTED not in repr(config["creds"])


def test_a_bad_server_side_secret_is_named_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWEEP_TOKEN", "short")
    resolver = ConfigResolver({"token": api_key_field(min_length=8, env="SWEEP_TOKEN")})
    with pytest.raises(ServerConfigurationError) as info:
        resolver.resolve()
    assert "SWEEP_TOKEN" in str(info.value)
    assert "short" not in str(info.value)


SEEN: dict[str, str] = {}


async def sweeping_execute(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> dict[str, Any]:
    """A careless tool: it logs and keeps the reprs of everything it was given."""
    logging.getLogger("sweep.tool").info("running with input=%s config=%r", input, config)
    SEEN.update(input=repr(input), config=str(config), context=repr(context))
    return {"user": input["user"], "has_password": input["password"] is not None}


def sweeping_tool(**options: Any) -> Any:
    return create_tool(
        metadata={"name": "sweep", "version": "1.0.0", "description": "holds secrets"},
        schema={
            "input": {
                "user": string_field(required=True, max_length=20),
                "password": secret_field(max_length=40, pattern=r"^[A-Za-z0-9-]+$"),
            },
            "config": {
                "token": api_key_field(required=True, min_length=12, max_length=60),
                "upstream": secret_field(env="SWEEP_UPSTREAM_SECRET"),
            },
        },
        execute=sweeping_execute,
        **options,
    )


def requests() -> list[tuple[str, str, Any, dict[str, str]]]:
    """(method, path, JSON body, headers): successes, every kind of error, every route."""
    key = {"X-API-Key": API_KEY}
    good = {"input_data": {"user": "ann", "password": "p4ss"}, "config": {"token": PLANTED}}

    def execute(body: Any, headers: dict[str, str] = key) -> tuple[str, str, Any, dict[str, str]]:
        return ("POST", "/api/execute", body, headers)

    return [
        execute(good),
        execute(good),  # a second time: a cache hit where caching is on
        execute({**good, "input_data": {"user": "ann", "password": PLANTED}}),  # valid secret
        execute({**good, "input_data": {"user": "ann", "password": PLANTED + "!"}}),  # pattern
        execute({**good, "input_data": {"user": "ann", "password": PLANTED * 3}}),  # too long
        execute({**good, "input_data": {"user": PLANTED, "password": 7}}),  # too long, wrong type
        execute({**good, "config": {"token": PLANTED[:5]}}),  # config too short
        execute({**good, "config": {"token": [PLANTED]}}),  # config of the wrong type
        execute({**good, "config": {"token": PLANTED, "upstream": PLANTED}}),  # not overridable
        execute({"input_data": {"user": "ann"}}),  # config missing
        execute({**good, "execution_id": ""}),  # a bad envelope
        execute(good, {"X-API-Key": PLANTED}),  # a wrong key that looks like the right one
        execute(good, {"Authorization": f"Bearer {API_KEY}x"}),
        execute(good, {"X-Signature-Timestamp": "1", "X-Signature": "v1=" + "0" * 64}),
        ("GET", "/metrics", None, key),
        ("GET", "/schema", None, key),
        ("GET", "/health", None, {}),
        ("GET", "/ready", None, {}),
        ("GET", "/", None, {}),
        ("GET", f"/{PLANTED}", None, {}),  # a 404 echoes the path, which the caller chose
        ("DELETE", "/api/execute", None, key),
    ]


@pytest.mark.parametrize("debug", [False, True], ids=["normal", "debug"])
@pytest.mark.parametrize("cache", [None, True], ids=["uncached", "cached"])
async def test_a_planted_secret_appears_in_no_output_channel(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, debug: bool, cache: Any
) -> None:
    monkeypatch.setenv("SWEEP_UPSTREAM_SECRET", SERVER_SIDE)
    caplog.set_level(logging.DEBUG)  # everything any logger says, access log included
    SEEN.clear()
    tool = sweeping_tool(cache=cache)
    settings = ServerSettings(
        api_keys=(API_KEY,), signing_secrets=(SIGNING,), debug=debug, tracing=True
    )
    app = ToolApp(tool, settings)
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    assert app.pipeline.tracing is not None
    app.pipeline.tracing._tracer = provider.get_tracer("sweep")  # this app's spans, captured here
    outputs: list[str] = []
    async with AsyncToolTestClient(app) as client:
        for method, path, body, headers in requests():
            response = await client.request(method, path, json=body, headers=headers)
            text = response.text
            if path == f"/{PLANTED}":  # the path is the caller's own: only the 404 may quote it
                assert response.status_code == 404
                text = text.replace(PLANTED, "")
            label = path.replace(PLANTED, "<planted>")
            outputs.append(
                f"{method} {label} -> {response.status_code} {response.headers!r} {text}"
            )
        body = b'{"input_data": {"user": "bo"}, "config": {"token": "' + PLANTED.encode() + b'"}}'
        signed = await client.post(
            "/api/execute", content=body, headers=sign_request(SIGNING, body)
        )
        outputs.append(signed.text)
        statuses = [line.split(" -> ")[1][:3] for line in outputs[:-1]]
    assert signed.status_code == 200
    assert statuses.count("200") >= 3
    assert {"400", "401", "404", "405"} <= set(statuses)
    assert SEEN, "the tool ran"
    assert REDACTED in SEEN["config"]
    assert "'password': '***'" in caplog.text
    outputs += [
        *SEEN.values(),
        caplog.text,
        *(repr(record.args) for record in caplog.records),
        repr(tool),
        repr(tool.config),
        repr(tool.config.server_values()),
        repr(tool.input_schema.fields),
        repr(tool.config_schema.fields),
        repr(settings),
        json.dumps(tool.get_metrics().to_dict(), default=str),
        json.dumps(tool.input_schema.json_schema(), default=str),
        json.dumps(tool.config_schema.json_schema(), default=str),
    ]
    for output in outputs:
        assert PLANTED not in output, output
    assert "sweep.tool" in caplog.text  # the logs were captured, and hid the secrets
    finished = spans.get_finished_spans()
    assert len(finished) > 10  # the traces were captured, too
    for span in finished:
        trace = json.dumps(
            [span.name, dict(span.attributes or {}), [e.attributes for e in span.events]],
            default=str,
        )
        assert PLANTED not in trace, trace
        assert PLANTED not in str(span.status.description)
