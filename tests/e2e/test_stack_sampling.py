"""
Tail sampling and the scale-out tier, with the real collector and Jaeger (traces in the real Elasticsearch node).

The collectors run deploy/otel-collector/config.yaml with the overlay compose picks by
``LC_TRACE_COLLECTOR_MODE`` (``tail-sampling``, ``scale``); only addresses and the documented sampling
knobs (``LC_TRACE_SAMPLING_*``, shorter waits than a laptop's defaults) are set here. What the app sends
is lc_trace's own spans; what is kept is read back from Jaeger's API.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.error
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.runnables import RunnableLambda
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lc_trace import TraceHandler
from lc_trace.testing import FakeChatModel, read_log
from tests.conftest import flower_chain
from tests.stack import packaged, servers
from tests.stack.elasticsearch import ElasticsearchNode

pytestmark = pytest.mark.stack

DECISION_WAIT_S = 3
SLOW_S = 0.3  # a slow order's extra step; the latency threshold is below it, an ordinary order (ms) far below that
SAMPLING = {
    "LC_TRACE_SAMPLING_PERCENT": "25",
    "LC_TRACE_SAMPLING_SLOW_MS": "250",
    "LC_TRACE_SAMPLING_DECISION_WAIT": f"{DECISION_WAIT_S}s",
}


def _jaeger(elasticsearch: ElasticsearchNode, workdir: Path, prefix: str) -> servers.Server:
    arguments = packaged.compose_config()["services"]["jaeger-es-init"]["command"]
    servers.jaeger_es_init(arguments, elasticsearch.url, prefix)
    return servers.jaeger(workdir, elasticsearch.url, prefix).start()


@pytest.fixture(scope="module")
def jaeger(elasticsearch: ElasticsearchNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    server = _jaeger(elasticsearch, tmp_path_factory.mktemp("jaeger"), "lc-trace-sampling")
    yield server
    server.stop()


def _otlp(server: servers.Server) -> str:
    return f"127.0.0.1:{server.ports['otlp_grpc']}"


def _held(jaeger: servers.Server, service: str) -> dict[str, set[str]]:
    """Every trace of *service* Jaeger holds (its find API, the last hour): span ids by trace id."""
    now = dt.datetime.now(dt.UTC)
    query = urllib.parse.urlencode(
        {
            "query.service_name": service,
            "query.start_time_min": (now - dt.timedelta(hours=1)).isoformat(),
            "query.start_time_max": (now + dt.timedelta(minutes=1)).isoformat(),
            "query.num_traces": "1000",
        }
    )
    try:
        body = servers.get_json(f"http://127.0.0.1:{jaeger.ports['query_http']}/api/v3/traces?{query}", timeout=30)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return {}
        raise
    held: dict[str, set[str]] = {}
    for resource_spans in body["result"]["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                held.setdefault(span["traceId"], set()).add(span["spanId"])
    return held


def _settled(
    jaegers: list[servers.Server], service: str, traces: dict[str, set[str]], must_keep: set[str]
) -> list[dict[str, set[str]]]:
    """
    What each Jaeger holds of *service*, once every trace in *must_keep* is complete in one of them and
    nothing has changed for two decision waits (a decided trace is flushed within one).
    """
    deadline = time.monotonic() + 90
    last: list[dict[str, set[str]]] = []
    stable_since = time.monotonic()
    while True:
        now = [_held(jaeger, service) for jaeger in jaegers]
        complete = {t for held in now for t, spans in held.items() if spans == traces.get(t)}
        if now != last:
            last, stable_since = now, time.monotonic()
        elif must_keep <= complete and time.monotonic() - stable_since > 2 * DECISION_WAIT_S:
            return now
        assert time.monotonic() < deadline, f"not settled: {len(must_keep - complete)} required traces incomplete"
        time.sleep(0.5)


def _run_orders(processor: SpanProcessor, log_path: Path, service: str) -> tuple[dict[str, set[str]], dict[str, str]]:
    """
    200 orders traced by lc_trace: 20 fail, 10 are slow (:data:`SLOW_S`), 170 are ordinary. Returns the span ids
    of each trace as the app recorded them, and each trace's kind.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(processor)
    handler = TraceHandler(tracer_provider=provider, log_path=log_path)
    chain = flower_chain(FakeChatModel(responses=["Roses."]))

    def slow_down(text: str) -> str:
        time.sleep(SLOW_S)
        return text

    def refuse(text: str) -> str:
        raise RuntimeError("out of roses")

    slow, failing = chain | RunnableLambda(slow_down), chain | RunnableLambda(refuse)
    kinds: list[str] = []
    for i in range(200):
        config = {"callbacks": [handler], "metadata": {"order": i}}
        if i % 10 == 3:
            kinds.append("error")
            with pytest.raises(RuntimeError, match="out of roses"):
                failing.invoke({"who": f"customer {i}"}, config)
        elif i % 20 == 7:
            kinds.append("slow")
            slow.invoke({"who": f"customer {i}"}, config)
        else:
            kinds.append("ordinary")
            chain.invoke({"who": f"customer {i}"}, config)
    handler.close()
    assert provider.force_flush(30_000)
    provider.shutdown()
    traces: dict[str, set[str]] = {}
    first_seen: list[str] = []
    for span in sorted(memory.get_finished_spans(), key=lambda s: s.start_time or 0):
        trace_id = format(span.context.trace_id, "032x")
        if trace_id not in traces:
            first_seen.append(trace_id)
        traces.setdefault(trace_id, set()).add(format(span.context.span_id, "016x"))
    assert 200 == len(traces)
    # Every run is in the log file, sampled or not.
    assert set(traces) == {line["trace.id"] for line in read_log(log_path)}
    return traces, dict(zip(first_seen, kinds, strict=True))


def test_tail_sampling_keeps_every_error_and_slow_trace_and_a_share_of_the_rest(jaeger, tmp_path):
    collector = servers.collector(tmp_path, _otlp(jaeger), "tail-sampling", SAMPLING).start()
    try:
        exporter = OTLPSpanExporter(endpoint=_otlp(collector), insecure=True, timeout=5)
        processor = BatchSpanProcessor(exporter, schedule_delay_millis=200)
        traces, kinds = _run_orders(processor, tmp_path / "lc_trace.jsonl", "sampled-shop")
        must_keep = {t for t, kind in kinds.items() if kind != "ordinary"}
        assert (20, 10) == (sum(k == "error" for k in kinds.values()), sum(k == "slow" for k in kinds.values()))
        [held] = _settled([jaeger], "sampled-shop", traces, must_keep)
    finally:
        collector.stop()

    assert must_keep <= set(held)
    assert all(spans == traces[t] for t, spans in held.items()), "a kept trace is missing spans"
    ordinary_kept = len(set(held) - must_keep)
    # 25 % of 170 is 42.5 (binomial, sd 5.6): far outside [17, 68] would mean the share is not applied.
    assert 17 <= ordinary_kept <= 68, ordinary_kept


def test_scale_tier_routes_each_trace_whole_to_one_sampler(elasticsearch, tmp_path):
    """
    Three real collectors: the load-balancing one (mode ``scale``) in front of two samplers (mode
    ``tail-sampling``), each sampler writing to a Jaeger of its own, so a trace split between them
    would show up in both. The app exports span by span, so a trace reaches the front in pieces. The
    samplers keep everything here (100 %), so every trace must arrive, whole, in exactly one Jaeger.
    """
    keep_all = {**SAMPLING, "LC_TRACE_SAMPLING_PERCENT": "100"}
    workdirs = {name: tmp_path / name for name in ("jaeger-1", "jaeger-2", "collectors")}
    for folder in workdirs.values():
        folder.mkdir()
    jaegers = [
        _jaeger(elasticsearch, workdirs["jaeger-1"], "lc-trace-scale-1"),
        _jaeger(elasticsearch, workdirs["jaeger-2"], "lc-trace-scale-2"),
    ]
    started: list[servers.Server] = []
    try:
        for number, sink in enumerate(jaegers, 1):
            sampler = servers.collector(
                workdirs["collectors"], _otlp(sink), "tail-sampling", keep_all, name=f"sampler-{number}"
            )
            started.append(sampler.start())
        front = servers.collector(
            workdirs["collectors"],
            "127.0.0.1:1",  # the front sends traces only to the samplers
            "scale",
            {"LC_TRACE_SAMPLER_1": _otlp(started[0]), "LC_TRACE_SAMPLER_2": _otlp(started[1])},
            name="front",
        )
        started.append(front.start())
        exporter = OTLPSpanExporter(endpoint=_otlp(front), insecure=True, timeout=5)
        traces, _ = _run_orders(SimpleSpanProcessor(exporter), tmp_path / "lc_trace.jsonl", "scaled-shop")
        first, second = _settled(jaegers, "scaled-shop", traces, set(traces))
    finally:
        for server in (*started, *jaegers):
            server.stop()

    assert not set(first) & set(second), "a trace was split across the two samplers"
    assert first and second, "one sampler got no trace: the tier did not balance"
    assert {**first, **second} == traces
    assert 200 == len(first) + len(second)
