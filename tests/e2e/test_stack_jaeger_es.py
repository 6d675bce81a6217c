"""
Traces kept in Elasticsearch: Jaeger v2 with deploy/jaeger/config.yaml against the suite's real node.

The indices, templates and aliases are made by Jaeger's own ``es-rollover init`` run with the compose
``jaeger-es-init`` service's arguments (``--es.use-ilm`` off: the OSS 7.10.2 node has no ILM). Traces are
written by lc_trace through OTLP, Jaeger is stopped and started again, and the same traces, span for span,
come back from ``GET /api/v3/traces/{id}``; the spans are also read straight from Jaeger's index, where the
log lines' ``trace.id`` finds them.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lc_trace import TraceHandler
from lc_trace.testing import FakeChatModel, read_log
from tests.conftest import flower_chain
from tests.e2e.test_e2e_jaeger import jaeger_trace
from tests.stack import packaged, servers
from tests.stack.elasticsearch import ElasticsearchNode

pytestmark = pytest.mark.stack

PREFIX = "lc-trace-restart"


@pytest.fixture(scope="module")
def init_arguments() -> list[str]:
    """The compose ``jaeger-es-init`` service's command, as Compose resolves it."""
    return list(packaged.compose_config()["services"]["jaeger-es-init"]["command"])


def test_compose_initialises_the_trace_indices_with_the_lifecycle_policy(init_arguments):
    """What the test turns off (ILM) is on in compose, with the policy the setup service installs."""
    assert "init" == init_arguments[0]
    assert {"--es.use-ilm=true", "--es.ilm-policy-name=lc-trace-traces", "--index-prefix=lc-trace"} <= set(
        init_arguments
    )
    setup = (servers.DEPLOY / "setup" / "setup.sh").read_text()
    assert "lc-trace-traces" in setup


@pytest.fixture(scope="module")
def initialised(elasticsearch: ElasticsearchNode, init_arguments: list[str]) -> str:
    """The node with Jaeger's templates, first indices and aliases for :data:`PREFIX`."""
    servers.jaeger_es_init(init_arguments, elasticsearch.url, PREFIX)
    return PREFIX


def _send(jaeger: servers.Server, log_path) -> dict[str, set[str]]:
    """Five orders traced by lc_trace straight into Jaeger's OTLP port; span ids by trace id."""
    provider = TracerProvider(resource=Resource.create({"service.name": "es-restart"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    otlp = OTLPSpanExporter(endpoint=f"127.0.0.1:{jaeger.ports['otlp_grpc']}", insecure=True, timeout=5)
    provider.add_span_processor(SimpleSpanProcessor(otlp))
    handler = TraceHandler(tracer_provider=provider, log_path=log_path)
    chain = flower_chain(FakeChatModel(responses=["Tulips."]))
    for who in ("Ada", "Grace", "Linus", "Barbara", "Ken"):
        chain.invoke({"who": who}, {"callbacks": [handler]})
    handler.close()
    provider.shutdown()
    traces: dict[str, set[str]] = {}
    for span in memory.get_finished_spans():
        traces.setdefault(format(span.context.trace_id, "032x"), set()).add(format(span.context.span_id, "016x"))
    return traces


def _read_all(jaeger: servers.Server, traces: dict[str, set[str]]) -> dict[str, dict[str, dict[str, Any]]]:
    return {trace_id: jaeger_trace(jaeger, trace_id, len(span_ids)) for trace_id, span_ids in traces.items()}


def test_traces_survive_a_jaeger_restart(elasticsearch, initialised, tmp_path):
    first = servers.jaeger(tmp_path / "first", elasticsearch.url, initialised)
    (tmp_path / "first").mkdir()
    first.start()
    try:
        traces = _send(first, tmp_path / "lc_trace.jsonl")
        before = _read_all(first, traces)
    finally:
        first.stop()
    assert 5 == len(traces)
    assert {t: set(spans) for t, spans in before.items()} == traces

    (tmp_path / "second").mkdir()
    second = servers.jaeger(tmp_path / "second", elasticsearch.url, initialised).start()
    try:
        after = _read_all(second, traces)
    finally:
        second.stop()
    assert before == after

    # Where they are: Jaeger's own span index, behind its read alias; the log lines name the same traces.
    status, body = elasticsearch.request("GET", f"/{initialised}-jaeger-span-read/_alias")
    assert 200 == status and [f"{initialised}-jaeger-span-000001"] == sorted(body)
    logged = {line["trace.id"] for line in read_log(tmp_path / "lc_trace.jsonl")}
    assert set(traces) == logged
    for trace_id, span_ids in traces.items():
        status, found = elasticsearch.request(
            "POST", f"/{initialised}-jaeger-span-read/_search", {"query": {"term": {"traceID": trace_id}}, "size": 100}
        )
        assert 200 == status
        assert span_ids == {hit["_source"]["spanID"] for hit in found["hits"]["hits"]}


def test_a_trace_in_jaeger_links_to_its_log_lines_in_kibana(elasticsearch, initialised, tmp_path):
    """The UI config Jaeger serves (through its page's JAEGER_CONFIG) links each trace to Kibana's saved search."""
    server = servers.jaeger(tmp_path, elasticsearch.url, initialised).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.ports['query_http']}/", timeout=10) as response:
            page = response.read().decode()
    finally:
        server.stop()
    served = re.search(r"JAEGER_CONFIG = (\{.*?\});", page, re.S)
    assert served, "Jaeger did not inject the UI config"
    [link] = json.loads(served.group(1))["linkPatterns"]
    assert "traces" == link["type"]
    kibana = packaged.compose_config()["services"]["kibana"]
    port = next(int(p["published"]) for p in kibana["ports"])
    view = re.fullmatch(rf"http://localhost:{port}/app/discover#/view/([\w-]+)\?.*", link["url"])
    assert view, link["url"]
    saved = [json.loads(line) for line in (servers.DEPLOY / "kibana" / "saved-objects.ndjson").read_text().splitlines()]
    assert ("search", view.group(1)) in {(o["type"], o["id"]) for o in saved}
    assert "query:'trace.id:\"#{trace.traceID}\"'" in link["url"]
