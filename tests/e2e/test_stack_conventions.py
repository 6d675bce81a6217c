"""
One app per GenAI conventions version through the whole stack, read back where a person looks.

The app (a LangGraph ``create_agent`` agent with a tool, a retriever, a streamed model call with ``top_k``
and cached tokens) runs with the default, v1.41.0, and with v0.1.0 chosen as users choose it
(``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``). Both runs go through one set of real servers
(module fixtures: one start for both versions in one process; an xdist worker that takes a single version starts
its own, in about a second, since ``xdist_group`` keeps no group together under pytest 9.2, pytest-xdist#1386):
lc_trace → OTLP → the collector (deploy/otel-collector/config.yaml) → Jaeger
(traces in the session's Elasticsearch node) and VictoriaMetrics (the compose service's flags); the log lines
go into Elasticsearch under deploy/'s index template. Per version: Jaeger has every span, the retrieval span
named and kinded as that version says; the store holds that version's metric names with the app's values;
every panel of deploy/victoriametrics/dashboards draws the app's lines; no log line is rejected. Lines of
both versions in one index: one type per field.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    MetricReader,
    PeriodicExportingMetricReader,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lc_trace import TraceHandler
from lc_trace._conventions import LATEST, OPT_IN, V1_41
from lc_trace._env import OTEL_SEMCONV_STABILITY_OPT_IN
from lc_trace.testing import FakeChatModel, in_memory_tracing, read_log
from tests.conftest import CONVENTIONS
from tests.e2e.test_e2e_jaeger import app_tracing, assert_same_trace, jaeger_trace
from tests.spans.test_spans import FlowerRetriever, flower_price
from tests.stack import packaged, servers
from tests.stack.cache import DEPLOY
from tests.stack.elasticsearch import ElasticsearchNode, install_log_template

pytestmark = pytest.mark.stack

JAEGER_PREFIX = "lc-trace-conventions"
LOG_INDEX = "lc-trace-logs-conventions"  # under the template's lc-trace-logs-* pattern
DASHBOARDS = DEPLOY / "victoriametrics" / "dashboards"
READ_TIMEOUT_S = 60.0
TOP_K = 40
USAGE = {
    "input_tokens": 12,
    "output_tokens": 4,
    "total_tokens": 16,
    "input_token_details": {"cache_read": 2, "cache_creation": 3},
}
USAGE_FIELDS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
)


def _histograms(*names: str) -> set[str]:
    """The three series names a histogram is stored under."""
    return {f"{name}_{part}" for name in names for part in ("bucket", "count", "sum")}


_AGENT_TOOL_RETRIEVAL = (
    "gen_ai_invoke_agent_duration_seconds",
    "gen_ai_invoke_agent_inference_calls",
    "gen_ai_invoke_agent_tool_calls",
    "gen_ai_execute_tool_duration_seconds",
    "gen_ai_retrieval_duration_seconds",
)
# What VictoriaMetrics holds of the app's metrics, per version (-opentelemetry.usePrometheusNaming).
STORED = {
    V1_41: _histograms(
        *_AGENT_TOOL_RETRIEVAL,
        "gen_ai_client_operation_duration_seconds",
        "gen_ai_client_operation_time_to_first_chunk_seconds",
        "gen_ai_client_operation_time_per_output_chunk_seconds",
        "gen_ai_client_token_usage",
    ),
    LATEST: _histograms(
        *_AGENT_TOOL_RETRIEVAL,
        "gen_ai_client_inference_duration_seconds",
        "gen_ai_client_inference_time_to_first_chunk_seconds",
        "gen_ai_client_inference_time_per_output_chunk_seconds",
        "gen_ai_client_inference_operation_input_tokens",
        "gen_ai_client_inference_operation_output_tokens",
    )
    | {
        "gen_ai_client_inference_usage_input_tokens_total",
        "gen_ai_client_inference_usage_output_tokens_total",
        "gen_ai_client_inference_usage_cache_read_input_tokens_total",
        "gen_ai_client_inference_usage_cache_write_input_tokens_total",
    },
}


def stored_name(metric: Metric) -> str:
    """
    The name VictoriaMetrics gives an OTel metric: dots become underscores, unit ``s`` adds ``_seconds``
    (``{token}`` and other annotations add nothing), a counter ends in ``_total``.
    """
    name = metric.name.replace(".", "_") + ("_seconds" if metric.unit == "s" else "")
    return name + "_total" if isinstance(metric.data, Sum) else name


# --- the servers, started once for both versions --------------------------------------------


@pytest.fixture(scope="module")
def jaeger(elasticsearch: ElasticsearchNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    """Jaeger as compose runs it, its traces in the session's node under this module's index prefix."""
    servers.jaeger_es_init(
        packaged.compose_config()["services"]["jaeger-es-init"]["command"], elasticsearch.url, JAEGER_PREFIX
    )
    server = servers.jaeger(tmp_path_factory.mktemp("jaeger"), elasticsearch.url, JAEGER_PREFIX).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def victoriametrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    server = servers.victoriametrics(tmp_path_factory.mktemp("victoriametrics")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def collector(
    jaeger: servers.Server, victoriametrics: servers.Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[servers.Server]:
    """The collector as compose runs it: traces to Jaeger, metrics to VictoriaMetrics."""
    server = servers.collector(
        tmp_path_factory.mktemp("collector"),
        f"127.0.0.1:{jaeger.ports['otlp_grpc']}",
        env={"VICTORIAMETRICS_OTLP_ENDPOINT": f"http://127.0.0.1:{victoriametrics.ports['http']}/opentelemetry"},
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def log_index(elasticsearch: ElasticsearchNode) -> ElasticsearchNode:
    """The node with deploy/setup/setup.sh's index template (the compose one-shot service's script, no Kibana)."""
    install_log_template(elasticsearch.url)
    status, body = elasticsearch.request("DELETE", f"/{LOG_INDEX}")
    assert status in (200, 404), body
    return elasticsearch


# --- the app ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shop:
    """The names one run of the app gives its service, model, agent and retriever, all ending in *tag*."""

    tag: str

    @property
    def service(self) -> str:
        return f"shop-{self.tag}"

    @property
    def model(self) -> str:
        return f"florist-{self.tag}"

    @property
    def agent(self) -> str:
        return f"clerk-{self.tag}"

    @property
    def shelf(self) -> str:
        """The retriever's name, and so its ``gen_ai.data_source.id``."""
        return f"shelf-{self.tag}"

    def order(self, question: str, config: RunnableConfig) -> str:
        """One order, one trace: the agent prices a rose with its tool, the retriever looks it up, a streamed answer."""
        calling = AIMessage("", tool_calls=[{"id": "call_1", "name": "flower_price", "args": {"flower": "rose"}}])
        model = FakeChatModel(model_name=self.model, responses=[calling, "A rose costs 3.50 euros."])
        agent = create_agent(model, [flower_price], name=self.agent)
        price = agent.invoke({"messages": [("human", question)]}, config)["messages"][-1].content
        FlowerRetriever(name=self.shelf).invoke("roses", config)
        writer = FakeChatModel(
            model_name=self.model, streaming=True, responses=[AIMessage("Roses mean love.", usage_metadata=USAGE)]
        )
        card = "".join(str(chunk.content) for chunk in writer.stream("A card for a rose?", config, top_k=TOP_K))
        return f"{price} {card}"


@dataclass
class Run:
    """One order, traced: the handler (closed), the spans and the metrics the app kept in memory."""

    handler: TraceHandler
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader


@pytest.fixture
def run_shop() -> Iterator[Callable[..., Run]]:
    """
    Runs one order of a :class:`Shop` under a handler of its own: spans and metrics over OTLP to the given
    collector (if any) and kept in memory. The providers are shut down after the test.
    """
    providers: list[TracerProvider | MeterProvider] = []

    def run(shop: Shop, log_path: Path, collector: servers.Server | None = None, **handler_options: Any) -> Run:
        if collector is None:
            provider, memory = in_memory_tracing()
            readers: list[MetricReader] = []
        else:
            provider, memory = app_tracing(collector, shop.service)
            exporter = OTLPMetricExporter(
                endpoint=f"127.0.0.1:{collector.ports['otlp_grpc']}", insecure=True, timeout=5
            )
            readers = [PeriodicExportingMetricReader(exporter, export_interval_millis=500)]
        local = InMemoryMetricReader()
        meters = MeterProvider(
            metric_readers=[*readers, local], resource=Resource.create({"service.name": shop.service})
        )
        providers.extend((provider, meters))
        handler = TraceHandler(
            tracer_provider=provider,
            meter_provider=meters,
            log_path=log_path,
            service_name=shop.service,
            **handler_options,
        )
        answer = RunnableLambda(shop.order, name="order").invoke("How much is a rose?", {"callbacks": [handler]})
        assert "A rose costs 3.50 euros. Roses mean love." == answer
        handler.close()
        assert provider.force_flush(30_000) and meters.force_flush(30_000)
        return Run(handler, memory, local)

    yield run
    for provider in providers:
        provider.shutdown()


# --- each version through the stack --------------------------------------------------------


@pytest.mark.parametrize("genai_conventions", CONVENTIONS, indirect=True)
def test_one_app_through_the_stack(
    genai_conventions, expected, collector, jaeger, victoriametrics, log_index, run_shop, tmp_path
):
    """
    The app in one version (v0.1.0 through the opt-in variable): the same trace in Jaeger, this version's
    metric names and values in VictoriaMetrics and on every dashboard panel, every log line indexed.
    """
    if genai_conventions == LATEST:
        assert OPT_IN == os.environ[OTEL_SEMCONV_STABILITY_OPT_IN]
    shop = Shop(genai_conventions)
    began = time.time()
    run = run_shop(shop, tmp_path / "lc_trace.jsonl", collector)

    # Jaeger: the trace span for span, with this version's retrieval span and the agent's.
    recorded = run.spans.get_finished_spans()
    (trace_id,) = {span.context.trace_id for span in recorded}
    stored = jaeger_trace(jaeger, format(trace_id, "032x"), len(recorded))
    assert_same_trace(list(recorded), stored, shop.service)
    kinds = {span["name"]: span["kind"] for span in stored.values()}
    retrieval = expected.retrieval_span(shop.shelf)
    assert expected.retrieval_kind.value + 1 == kinds[retrieval]  # OTLP JSON counts kinds from 1 (INTERNAL)
    assert {f"invoke_agent {shop.agent}", f"chat {shop.model}", "execute_tool flower_price", retrieval} <= set(kinds)

    # VictoriaMetrics: this version's names, each with the values the app recorded.
    recorded_values = _recorded_values(run.metrics)
    assert {name for name in STORED[genai_conventions] if not name.endswith("_bucket")} == set(recorded_values)
    same = pytest.approx(recorded_values, rel=1e-9)  # the store keeps ~15 significant digits of a double
    deadline = time.monotonic() + READ_TIMEOUT_S
    while (held := _held_values(victoriametrics, shop.service)) != same and time.monotonic() < deadline:
        time.sleep(0.5)
    assert same == held
    held_names = servers.victoriametrics_api(
        victoriametrics, "/api/v1/label/__name__/values", **{"match[]": f'{{service_name="{shop.service}"}}'}
    )["data"]
    assert STORED[genai_conventions] == set(held_names)

    # The dashboard vmui serves (the compose flag points at the same folder): each panel draws this app's lines.
    settings = servers.victoriametrics_api(victoriametrics, "/vmui/custom-dashboards")["dashboardsSettings"]
    committed = [json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))]
    assert [d["title"] for d in committed] == [d["title"] for d in settings]
    tokens = expected.tokens(run.metrics)
    assert _panel_lines(victoriametrics, committed, shop, began) == {
        "Token usage by model (tokens per 5 min)": {
            _line(gen_ai_request_model=shop.model, gen_ai_token_type=kind): float(tokens[kind][0])
            for kind in ("input", "output")
        },
        "Model calls by model (per 5 min)": {_line(gen_ai_request_model=shop.model): 3.0},
        "Model call duration p95 by model (s)": {_line(gen_ai_request_model=shop.model): POSITIVE},
        "Agent runs by agent (per 5 min)": {_line(gen_ai_agent_name=shop.agent): 1.0},
        "Agent duration p95 by agent (s)": {_line(gen_ai_agent_name=shop.agent): POSITIVE},
        "Model and tool calls per agent run (mean)": {
            _line(gen_ai_agent_name=shop.agent, calls="model"): 2.0,
            _line(gen_ai_agent_name=shop.agent, calls="tool"): 1.0,
        },
        "Tool duration p95 by tool and agent (s)": {
            _line(gen_ai_tool_name="flower_price", gen_ai_agent_name=shop.agent): POSITIVE
        },
        "Retrieval duration p95 by data source (s)": {_line(gen_ai_data_source_id=shop.shelf): POSITIVE},
    }

    # Elasticsearch: every line accepted by the template, this version's cache field and top_k searchable.
    lines = read_log(run.handler.log_path)
    assert [] == _rejected(log_index, lines)
    mine = {"term": {"service.name": shop.service}}
    assert len(lines) == _search(log_index, {"query": mine, "size": 0})["hits"]["total"]["value"]
    cached = _search(log_index, {"query": {"bool": {"filter": [mine, {"exists": {"field": expected.cache_write}}]}}})
    assert [3] == [hit["_source"][expected.cache_write] for hit in cached["hits"]["hits"]]
    top_k = _search(log_index, {"query": {"bool": {"filter": [mine, {"term": {"gen_ai.request.top_k": TOP_K}}]}}})
    assert {("llm_start", shop.model), ("llm_end", shop.model)} == {
        (hit["_source"]["event.action"], hit["_source"]["gen_ai.request.model"]) for hit in top_k["hits"]["hits"]
    }


def test_lines_of_both_versions_share_one_index(log_index, run_shop, tmp_path):
    """
    A v1.41.0 app and a v0.1.0 app log into one index: no line rejected, one type per field (top_k a double,
    written 40.0 by one and 40 by the other; every usage field a long), both cache-write names searchable.
    """
    shops = [Shop(f"mixed-{version}") for version in CONVENTIONS]
    lines = []
    for shop, version in zip(shops, CONVENTIONS, strict=True):
        lines += read_log(run_shop(shop, tmp_path / f"{version}.jsonl", genai_conventions=version).handler.log_path)
    assert [] == _rejected(log_index, lines)

    _, caps = log_index.request("GET", f"/{LOG_INDEX}/_field_caps?fields=gen_ai.request.top_k,gen_ai.usage.*")
    types = {field: sorted(by_type) for field, by_type in caps["fields"].items() if "object" not in by_type}
    assert set(USAGE_FIELDS) <= set(types)
    assert {"gen_ai.request.top_k": ["double"]} | {
        field: ["long"] for field in types if field != "gen_ai.request.top_k"
    } == types

    services = {"terms": {"service.name": [shop.service for shop in shops]}}
    top_k = _search(log_index, {"query": {"bool": {"filter": [services, {"term": {"gen_ai.request.top_k": TOP_K}}]}}})
    assert {(shops[0].service, "40.0"), (shops[1].service, "40")} == {
        (hit["_source"]["service.name"], json.dumps(hit["_source"]["gen_ai.request.top_k"]))
        for hit in top_k["hits"]["hits"]
    }
    # The tokens written to the cache: 3 in each app's lines, under its version's name.
    written = ["gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_write.input_tokens"]
    body = {
        "size": 0,
        "query": {"bool": {"filter": [services]}},
        "aggs": {name: {"sum": {"field": name}} for name in written},
    }
    sums = {name: value["value"] for name, value in _search(log_index, body)["aggregations"].items()}
    assert dict(zip(written, (3.0, 3.0), strict=True)) == sums


# --- reading back --------------------------------------------------------------------------


class _Positive:
    """Equal to any number above zero: a p95 of a few milliseconds' calls."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, float) and other > 0

    def __repr__(self) -> str:
        return "<a number > 0>"


POSITIVE: Any = _Positive()


def _line(**labels: str) -> frozenset[tuple[str, str]]:
    """A panel's line, by its labels."""
    return frozenset(labels.items())


def _panel_lines(
    victoriametrics: servers.Server, dashboards: list[dict[str, Any]], shop: Shop, began: float
) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    """
    Each panel's lines that name *shop*'s model, agent or retriever, with their highest value since *began*, as
    vmui draws them (a range query of each expression).
    """
    names = {shop.model, shop.agent, shop.shelf}
    drawn: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
    for panel in (p for dashboard in dashboards for row in dashboard["rows"] for p in row["panels"]):
        lines = drawn.setdefault(panel["title"], {})
        for expression in panel["expr"]:
            body = servers.victoriametrics_api(
                victoriametrics,
                "/api/v1/query_range",
                query=expression,
                start=str(int(began) - 60),
                end=str(int(time.time()) + 60),
                step="15s",
                nocache="1",
            )
            for series in body["data"]["result"]:
                if names & set(series["metric"].values()):
                    lines[frozenset(series["metric"].items())] = max(float(v) for _, v in series["values"])
    return drawn


def _recorded_values(reader: InMemoryMetricReader) -> dict[str, float]:
    """What the app recorded, by stored name: a counter's total, a histogram's count and sum."""
    data = reader.get_metrics_data()
    assert data is not None
    values: dict[str, float] = {}
    for metric in (m for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics):
        name = stored_name(metric)
        for point in metric.data.data_points:
            if isinstance(point, HistogramDataPoint):
                values[f"{name}_count"] = values.get(f"{name}_count", 0.0) + point.count
                values[f"{name}_sum"] = values.get(f"{name}_sum", 0.0) + point.sum
            else:
                values[name] = values.get(name, 0.0) + point.value
    return values


def _held_values(victoriametrics: servers.Server, service: str) -> dict[str, float]:
    """What the store holds of *service*'s metrics, by name (buckets left out), summed over attribute sets."""
    query = f'{{service_name="{service}", __name__!~".*_bucket"}}'
    result = servers.victoriametrics_api(victoriametrics, "/api/v1/query", query=query, nocache="1")["data"]["result"]
    values: dict[str, float] = {}
    for series in result:
        name = series["metric"]["__name__"]
        values[name] = values.get(name, 0.0) + float(series["value"][1])
    return values


def _rejected(node: ElasticsearchNode, lines: list[dict[str, Any]]) -> list[str]:
    """Index *lines* through ``_bulk`` (visible to search on return); the ones refused, with the reason."""
    actions: list[dict[str, Any]] = []
    for line in lines:
        actions += [{"index": {"_index": LOG_INDEX}}, line]
    status, response = node.request("POST", "/_bulk?refresh=wait_for", actions)
    assert 200 == status, response
    assert len(lines) == len(response["items"])
    return [
        f"{item['index']['error']['type']}: {item['index']['error']['reason']}"
        for item in response["items"]
        if "error" in item["index"]
    ]


def _search(node: ElasticsearchNode, body: dict[str, Any]) -> dict[str, Any]:
    status, response = node.request("POST", f"/{LOG_INDEX}/_search", body)
    assert 200 == status, response
    return dict(response)
