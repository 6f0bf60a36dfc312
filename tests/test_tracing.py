"""Tracing with OpenTelemetry: one span per execution with its phases, continuing the caller's
trace; nothing imported or done when tracing is off."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the [otel] extra is not installed")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ai_spine_tools import Tool
from ai_spine_tools._settings import ServerSettings
from ai_spine_tools.exceptions import ServerConfigurationError
from ai_spine_tools.testing import AsyncToolTestClient
from tools import observed

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):  # set once per process
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


@pytest.fixture
def tool() -> Tool:
    return observed.make_tool()


def by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in finished}


async def test_an_execution_is_one_span_with_its_phases(
    spans: InMemorySpanExporter, tool: Tool
) -> None:
    async with AsyncToolTestClient(tool, ServerSettings(tracing=True)) as client:
        reply = await client.execute({"sleep_ms": 5}, headers={"x-request-id": "req-7"})
    found = by_name(spans.get_finished_spans())
    assert set(found) == {"POST /api/execute", "validate", "execute", "encode"}
    root = found["POST /api/execute"]
    assert root.kind == trace.SpanKind.SERVER
    assert root.attributes is not None
    assert root.attributes["ai_spine.tool"] == "observed"
    assert root.attributes["ai_spine.execution_id"] == reply.execution_id
    assert root.attributes["ai_spine.request_id"] == "req-7"
    assert root.attributes["ai_spine.status"] == "success"
    assert root.status.is_ok
    for phase in ("validate", "execute", "encode"):
        span = found[phase]
        assert span.parent is not None
        assert span.parent.span_id == root.context.span_id
        assert span.context.trace_id == root.context.trace_id
    assert found["validate"].end_time <= found["execute"].start_time  # type: ignore[operator]
    assert found["execute"].end_time <= found["encode"].start_time  # type: ignore[operator]
    execute = found["execute"]
    assert execute.end_time - execute.start_time >= 5_000_000  # type: ignore[operator]
    assert root.start_time <= found["validate"].start_time  # type: ignore[operator]
    assert root.end_time >= found["encode"].end_time  # type: ignore[operator]


async def test_an_incoming_traceparent_is_continued(
    spans: InMemorySpanExporter, tool: Tool
) -> None:
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    async with AsyncToolTestClient(tool, ServerSettings(tracing=True)) as client:
        await client.execute({}, headers={"traceparent": traceparent})
    root = by_name(spans.get_finished_spans())["POST /api/execute"]
    assert format(root.context.trace_id, "032x") == TRACE_ID
    assert root.parent is not None
    assert format(root.parent.span_id, "016x") == PARENT_ID
    assert root.parent.is_remote


async def test_spans_made_by_the_tool_nest_under_its_execute_phase(
    spans: InMemorySpanExporter,
) -> None:
    from ai_spine_tools import create_tool

    async def execute(input: dict[str, object]) -> dict[str, object]:
        with trace.get_tracer("tool").start_as_current_span("call upstream"):
            return {}

    traced = create_tool(
        metadata={"name": "t", "version": "1.0.0", "description": "x"}, execute=execute
    )
    async with AsyncToolTestClient(traced, ServerSettings(tracing=True)) as client:
        await client.execute({})
    found = by_name(spans.get_finished_spans())
    inner = found["call upstream"]
    assert inner.parent is not None
    assert inner.parent.span_id == found["execute"].context.span_id


async def test_an_outbound_call_is_a_client_span_and_carries_the_trace(
    spans: InMemorySpanExporter,
) -> None:
    from ai_spine_tools import ToolContext, create_tool
    from upstream import upstream_api

    async with upstream_api() as api:

        async def execute(
            input: dict[str, object], config: dict[str, object], context: ToolContext
        ) -> dict[str, object]:
            response = await context.http.get(f"{api.url}/json?key=secret", params={"q": "x"})
            return {"status": response.status_code}

        caller = create_tool(
            metadata={"name": "caller", "version": "1.0.0", "description": "x"}, execute=execute
        )
        async with AsyncToolTestClient(caller, ServerSettings(tracing=True)) as client:
            result = await client.execute({})
    assert result.output_data == {"status": 200}
    found = by_name(spans.get_finished_spans())
    call = found["GET"]
    assert call.kind == trace.SpanKind.CLIENT
    assert call.parent is not None
    assert call.parent.span_id == found["execute"].context.span_id
    assert call.attributes is not None
    assert call.attributes["http.response.status_code"] == 200
    assert call.attributes["url.full"] == f"{api.url}/json"  # no query: it may hold keys
    sent = api.seen_headers[-1]["traceparent"]
    trace_id = f"{call.context.trace_id:032x}"
    assert sent.startswith(f"00-{trace_id}-{call.context.span_id:016x}-")


@pytest.mark.parametrize(
    ("body", "code", "phases"),
    [
        ({"fail_code": "UPSTREAM_DOWN"}, "UPSTREAM_DOWN", {"validate", "execute"}),
        ({"rows": -1}, "VALIDATION_ERROR", {"validate"}),
    ],
)
async def test_a_failed_execution_marks_its_span(
    spans: InMemorySpanExporter, tool: Tool, body: dict[str, object], code: str, phases: set[str]
) -> None:
    async with AsyncToolTestClient(tool, ServerSettings(tracing=True)) as client:
        await client.execute(body)
    found = by_name(spans.get_finished_spans())
    root = found.pop("POST /api/execute")
    assert set(found) == phases
    assert root.attributes is not None
    assert root.attributes["ai_spine.error_code"] == code
    assert root.attributes["ai_spine.status"] == "error"
    assert root.status.status_code == trace.StatusCode.ERROR


async def test_no_spans_when_tracing_is_off(spans: InMemorySpanExporter, tool: Tool) -> None:
    async with AsyncToolTestClient(tool, ServerSettings()) as client:
        await client.execute({})
    assert spans.get_finished_spans() == ()


def test_tracing_on_without_opentelemetry_fails_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, tool: Tool
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "ai_spine_tools.observability._tracing", raising=False)
    from ai_spine_tools.server._app import ToolApp

    with pytest.raises(ServerConfigurationError, match=r"ai-spine-tools\[otel\]"):
        ToolApp(tool, ServerSettings(tracing=True))


def test_tracing_off_imports_nothing_of_opentelemetry() -> None:
    code = """
import asyncio, json, sys
sys.path.insert(0, "examples")
import weather
from ai_spine_tools.testing import ToolTestClient
with ToolTestClient(weather.tool) as client:
    assert client.execute({"city": "Oslo"}).status_code == 200
    assert client.get("/metrics").status_code == 200
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("opentelemetry", "prometheus")))))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout) == []
