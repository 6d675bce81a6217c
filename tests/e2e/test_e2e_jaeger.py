"""
End to end through the real stack: lc_trace → OTLP → OpenTelemetry Collector → Jaeger v2 → Elasticsearch.

The collector and Jaeger are the real programs (built from Go modules, tests/stack/gobuild.py),
run with ``deploy/otel-collector/config.yaml`` and ``deploy/jaeger/config.yaml`` as committed,
only their addresses moved to free loopback ports. Traces are read back from Jaeger's stable
query API, ``GET /api/v3/traces/{trace_id}``, and compared span by span with what the same
process recorded in memory.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from lc_trace import TraceHandler
from lc_trace.testing import FakeChatModel, read_log
from tests.conftest import flower_chain
from tests.stack import packaged, servers
from tests.stack.elasticsearch import ElasticsearchNode

pytestmark = pytest.mark.stack

READ_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def jaeger(elasticsearch: ElasticsearchNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    """Jaeger as compose runs it: traces in Elasticsearch (the session's node, indices of this module's own)."""
    arguments = packaged.compose_config()["services"]["jaeger-es-init"]["command"]
    servers.jaeger_es_init(arguments, elasticsearch.url, "lc-trace-e2e")
    server = servers.jaeger(tmp_path_factory.mktemp("jaeger"), elasticsearch.url, "lc-trace-e2e").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def collector(jaeger: servers.Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    server = servers.collector(tmp_path_factory.mktemp("collector"), _jaeger_otlp(jaeger)).start()
    yield server
    server.stop()


def _jaeger_otlp(jaeger: servers.Server) -> str:
    return f"127.0.0.1:{jaeger.ports['otlp_grpc']}"


def app_tracing(
    collector: servers.Server, service: str, *, keep_copy: bool = True, queue: int = 512
) -> tuple[TracerProvider, InMemorySpanExporter]:
    """The app's provider: OTLP to the collector, plus (*keep_copy*) an in-memory copy to compare against."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    memory = InMemorySpanExporter()
    if keep_copy:
        provider.add_span_processor(SimpleSpanProcessor(memory))
    otlp = OTLPSpanExporter(endpoint=f"127.0.0.1:{collector.ports['otlp_grpc']}", insecure=True, timeout=5)
    provider.add_span_processor(
        BatchSpanProcessor(otlp, schedule_delay_millis=200, max_queue_size=queue, max_export_batch_size=queue // 2)
    )
    return provider, memory


def jaeger_trace(jaeger: servers.Server, trace_id: str, expect_spans: int) -> dict[str, dict[str, Any]]:
    """
    The trace's spans as Jaeger returns them (OTLP JSON), by span id; waits until all
    *expect_spans* have arrived (the collector batches for up to a second).
    """
    url = f"http://127.0.0.1:{jaeger.ports['query_http']}/api/v3/traces/{trace_id}"
    deadline = time.monotonic() + READ_TIMEOUT_S
    spans: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        try:
            body = servers.get_json(url)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
        else:
            spans = {
                span["spanId"]: {**span, "service": _service(resource_spans)}
                for resource_spans in body["result"]["resourceSpans"]
                for scope_spans in resource_spans["scopeSpans"]
                for span in scope_spans["spans"]
            }
            if len(spans) >= expect_spans:
                return spans
        time.sleep(0.2)
    raise AssertionError(
        f"Jaeger has {len(spans)} of {expect_spans} spans of trace {trace_id} after {READ_TIMEOUT_S} s"
    )


def _service(resource_spans: dict[str, Any]) -> str | None:
    attributes = _attributes(resource_spans.get("resource", {}).get("attributes", []))
    return attributes.get("service.name")


def _attributes(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    return {pair["key"]: _value(pair["value"]) for pair in pairs}


def _value(value: dict[str, Any]) -> Any:
    """An OTLP JSON AnyValue as the Python value the SDK was given."""
    if "arrayValue" in value:
        return tuple(_value(v) for v in value["arrayValue"].get("values", []))
    ((kind, raw),) = value.items()
    return {"intValue": int, "doubleValue": float}.get(kind, lambda v: v)(raw)


def _hex(number: int, width: int) -> str:
    return format(number, f"0{width}x")


def assert_same_trace(recorded: list[ReadableSpan], stored: dict[str, dict[str, Any]], service: str) -> None:
    """Every recorded span is in Jaeger with its parent, name, kind, status, attributes and events."""
    assert sorted(_hex(s.context.span_id, 16) for s in recorded) == sorted(stored)
    for span in recorded:
        got = stored[_hex(span.context.span_id, 16)]
        parent = _hex(span.parent.span_id, 16) if span.parent else ""
        assert (span.name, parent, span.kind.value + 1, service) == (
            got["name"],
            got.get("parentSpanId", ""),
            got["kind"],
            got["service"],
        ), span.name
        attributes = _attributes(got.get("attributes", []))
        # Jaeger's Elasticsearch model keeps an array attribute as its JSON text: compare it decoded.
        expected = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in dict(span.attributes or {}).items()}
        kept = {
            k: json.loads(attributes[k]) if isinstance(expected[k], list) else attributes[k]
            for k in expected
            if k in attributes
        }
        assert expected == kept, span.name
        status = got.get("status", {}).get("code", 0)
        assert {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}[span.status.status_code] == status
        assert [e.name for e in span.events] == [e["name"] for e in got.get("events", [])], span.name


@tool
def flower_price(flower: str) -> str:
    """Price of one stem of a flower, in euros."""
    return {"rose": "3.50", "tulip": "1.20"}.get(flower, "unknown")


@tool
def broken_vase(size: str) -> str:
    """A tool that always fails."""
    raise RuntimeError(f"vase of size {size} is broken")


def test_agent_and_failing_tool_arrive_in_jaeger_span_for_span(jaeger, collector, tmp_path):
    """A real agent loop and a failing tool, traced by lc_trace, read back from Jaeger's API."""
    from langchain.agents import create_agent

    provider, memory = app_tracing(collector, "e2e-florist")
    handler = TraceHandler(tracer_provider=provider, log_path=tmp_path / "lc_trace.jsonl", capture_content=True)
    model = FakeChatModel(
        responses=[
            AIMessage(content="", tool_calls=[{"id": "call_1", "name": "flower_price", "args": {"flower": "rose"}}]),
            "A rose costs 3.50 euros.",
        ]
    )
    agent = create_agent(model, [flower_price], name="florist")
    answer = agent.invoke({"messages": [("human", "How much is a rose?")]}, {"callbacks": [handler]})
    assert "A rose costs 3.50 euros." == answer["messages"][-1].content
    arrange = RunnableLambda(lambda order: {"size": order["vase"]}, name="arrange") | broken_vase
    with pytest.raises(RuntimeError, match="vase of size XL is broken"):
        arrange.invoke({"vase": "XL"}, {"callbacks": [handler]})
    handler.close()
    provider.force_flush()

    by_trace: dict[int, list[ReadableSpan]] = {}
    for span in memory.get_finished_spans():
        by_trace.setdefault(span.context.trace_id, []).append(span)
    assert 2 == len(by_trace)
    for trace_id, recorded in by_trace.items():
        stored = jaeger_trace(jaeger, _hex(trace_id, 32), len(recorded))
        assert_same_trace(recorded, stored, "e2e-florist")

    names = {
        span["name"]: span for trace_id in by_trace for span in jaeger_trace(jaeger, _hex(trace_id, 32), 1).values()
    }
    assert {"invoke_agent florist", "chat fake-chat-1", "execute_tool flower_price", "execute_tool broken_vase"} <= set(
        names
    )
    failed = _attributes(names["execute_tool broken_vase"]["attributes"])
    assert ("RuntimeError", 2) == (failed["error.type"], names["execute_tool broken_vase"]["status"]["code"])
    assert ["exception"] == [e["name"] for e in names["execute_tool broken_vase"]["events"]]
    chat = _attributes(names["chat fake-chat-1"]["attributes"])
    assert ("chat", "fake", "fake-chat-1") == (
        chat["gen_ai.operation.name"],
        chat["gen_ai.provider.name"],
        chat["gen_ai.request.model"],
    )
    assert chat["gen_ai.usage.input_tokens"] > 0 and chat["gen_ai.usage.output_tokens"] > 0

    # The log file names the same traces and spans: a user can jump from a line to Jaeger.
    lines = read_log(tmp_path / "lc_trace.jsonl")
    assert {_hex(t, 32) for t in by_trace} == {line["trace.id"] for line in lines}
    assert {_hex(s.context.span_id, 16) for s in memory.get_finished_spans()} == {line["span.id"] for line in lines}


def test_lc_trace_demo_command_reaches_jaeger(jaeger, collector, tmp_path):
    """`lc-trace demo` with OTEL_EXPORTER_OTLP_ENDPOINT set, as the compose demo service runs it."""
    log_path = tmp_path / "demo.jsonl"
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.ports['otlp_grpc']}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
    }
    done = subprocess.run(
        [sys.executable, "-m", "lc_trace", "demo", "--log-path", str(log_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    assert "sent over OTLP" in done.stdout
    lines = read_log(log_path)
    spans_per_trace: dict[str, set[str]] = {}
    for line in lines:
        spans_per_trace.setdefault(line["trace.id"], set()).add(line["span.id"])
    assert len(spans_per_trace) >= 3
    for trace_id, span_ids in spans_per_trace.items():
        stored = jaeger_trace(jaeger, trace_id, len(span_ids))
        assert span_ids == set(stored)
        assert {"flower-shop"} == {span["service"] for span in stored.values()}
    # Jaeger writes the service name to its own index, refreshed apart from the spans': wait for it too.
    url = f"http://127.0.0.1:{jaeger.ports['query_http']}/api/v3/services"
    deadline = time.monotonic() + READ_TIMEOUT_S
    while "flower-shop" not in (services := servers.get_json(url)["services"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "flower-shop" in services


def test_collector_down_mid_run_app_carries_on_bounded_then_recovers(jaeger, tmp_path):
    """
    The collector dies mid-run: every call still answers, lc_trace keeps logging, memory stays
    flat (the SDK's span queue is bounded and lc_trace holds no finished run); once a collector
    is back on the same address, new traces reach Jaeger again.
    """
    collector = servers.collector(tmp_path, _jaeger_otlp(jaeger)).start()
    provider, _ = app_tracing(collector, "e2e-outage", keep_copy=False, queue=256)
    handler = TraceHandler(tracer_provider=provider, log_path=tmp_path / "lc_trace.jsonl")
    chain = flower_chain()

    def run(n: int) -> None:
        for i in range(n):
            assert "A red rose." == chain.invoke({"who": f"customer {i}"}, {"callbacks": [handler]})

    try:
        run(20)
        handler.flush()
        assert provider.force_flush(30_000)
        jaeger_trace(jaeger, read_log(tmp_path / "lc_trace.jsonl")[0]["trace.id"], 4)

        collector.stop()
        tracemalloc.start()
        run(300)  # fills the SDK's 256-span queue: past this, spans are dropped, not kept
        handler.flush()
        gc.collect()  # spans die in reference cycles: count what is still reachable, not what awaits the GC
        before, _ = tracemalloc.get_traced_memory()
        run(1500)
        handler.flush()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # 1,500 more runs are 6,000 more spans (~7 MB if kept, measured). A bounded pipeline varies only
        # by what its queue and the batch being retried hold at either instant (<= 384 spans, ~0.5 MB).
        assert after - before < 2_000_000, f"memory grew by {after - before} bytes with the collector down"
        handler.flush()
        # Every run is still logged: 1,820 calls of 4 runs, a start and an end line each.
        assert 8 * 1820 == len(read_log(tmp_path / "lc_trace.jsonl"))
        assert 0 == handler.stats.dropped

        collector.start()  # same address: the exporter reconnects
        chain.invoke({"who": "the last customer"}, {"callbacks": [handler]})
        handler.flush()
        assert provider.force_flush(30_000)
        jaeger_trace(jaeger, read_log(tmp_path / "lc_trace.jsonl")[-1]["trace.id"], 4)
    finally:
        tracemalloc.stop()
        handler.close()
        provider.shutdown()
        collector.stop()


def test_two_processes_one_trace(jaeger, collector):
    """A tool in one process calls another service over HTTP with lc_trace.current_traceparent(); that service's LangChain run continues the trace: one trace in Jaeger, two services, the remote root a child of the tool."""
    import requests

    import lc_trace

    provider, memory = app_tracing(collector, "e2e-shop")
    handler = TraceHandler(tracer_provider=provider, log_path=None)
    command = [sys.executable, "-m", "tests.warehouse_service", f"127.0.0.1:{collector.ports['otlp_grpc']}"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as warehouse:
        try:
            assert warehouse.stdout is not None
            port = int(warehouse.stdout.readline())

            @tool
            def ask_warehouse(flower: str) -> str:
                """Asks the warehouse service how many are in stock."""
                header = lc_trace.current_traceparent()
                assert header is not None
                url = f"http://127.0.0.1:{port}/stock"
                reply = requests.post(url, json={"flower": flower}, headers={"traceparent": header}, timeout=30)
                return str(reply.json()["answer"])

            lc_trace.instrument()
            try:
                assert "12 roses in stock." == ask_warehouse.invoke("rose", {"callbacks": [handler]})
            finally:
                lc_trace.uninstrument()
            assert 0 == warehouse.wait(timeout=60)
        finally:
            if warehouse.poll() is None:
                warehouse.kill()
    handler.close()
    provider.force_flush()

    (tool_span,) = memory.get_finished_spans()
    stored = jaeger_trace(jaeger, _hex(tool_span.context.trace_id, 32), 2)
    assert 2 == len(stored)
    by_service = {span["service"]: span for span in stored.values()}
    assert {"e2e-shop", "e2e-warehouse"} == set(by_service)
    remote = by_service["e2e-warehouse"]
    assert "chat fake-chat-1" == remote["name"]
    assert _hex(tool_span.context.span_id, 16) == remote["parentSpanId"]
    assert "execute_tool ask_warehouse" == by_service["e2e-shop"]["name"]


def test_genai_metrics_reach_the_collector(collector):
    """A streamed model call's four GenAI metrics (duration, token usage, time to first chunk, time per chunk) reach the real collector over OTLP: its metrics pipeline reports them."""
    import re

    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    logged_before = collector.log_path.stat().st_size  # what earlier tests (the demo's metrics) left there
    exporter = OTLPMetricExporter(endpoint=f"127.0.0.1:{collector.ports['otlp_grpc']}", insecure=True, timeout=5)
    meters = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)],
        resource=Resource.create({"service.name": "e2e-metrics"}),
    )
    handler = TraceHandler(tracer_provider=TracerProvider(), meter_provider=meters, log_path=None)
    chunks = list(FakeChatModel(responses=["Roses are red."]).stream("poem", {"callbacks": [handler]}))
    assert len(chunks) > 2
    handler.close()
    assert meters.force_flush(10_000)
    meters.shutdown()

    deadline = time.monotonic() + READ_TIMEOUT_S
    seen: list[tuple[int, int]] = []
    pattern = r'"resource metrics": (\d+), "metrics": (\d+), "data points": (\d+)'
    while time.monotonic() < deadline and not seen:
        with open(collector.log_path, "rb") as log:
            log.seek(logged_before)
            text = log.read().decode(errors="replace")
        # Each export (close, force_flush, shutdown) sends the cumulative state again: per resource
        seen = [(int(m) // int(r), int(p) // int(r)) for r, m, p in re.findall(pattern, text)]
        time.sleep(0.2)
    # duration, token usage (input and output: two points), time to first chunk, time per chunk
    assert seen and {(4, 5)} == set(seen), text[-3000:]
