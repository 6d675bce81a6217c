"""
The GenAI metrics where a person looks: lc_trace → OTLP → the real collector → VictoriaMetrics, read back.

VictoriaMetrics is built from its Go module (tests/stack/gobuild.py) and started with the compose
service's own flags (only its address, data folder and dashboards folder moved); the collector runs
deploy/otel-collector/config.yaml. Two models answer; the token totals per model and token type come
back from the store's PromQL API. The dashboard's panels are checked, in both GenAI conventions versions,
by test_stack_conventions.py.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from lc_trace import TraceHandler
from lc_trace.testing import FakeChatModel, in_memory_tracing
from tests.conftest import flower_chain
from tests.conventions import metrics
from tests.stack import servers
from tests.stack.cache import DEPLOY

DASHBOARDS = DEPLOY / "victoriametrics" / "dashboards"
READ_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def victoriametrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    """The store as compose runs it: the service's flags, with address and folders moved to this machine."""
    server = servers.victoriametrics(tmp_path_factory.mktemp("victoriametrics")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def collector(victoriametrics: servers.Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    endpoint = f"http://127.0.0.1:{victoriametrics.ports['http']}/opentelemetry"
    server = servers.collector(
        tmp_path_factory.mktemp("collector"),
        "127.0.0.1:1",  # no Jaeger here: this test sends metrics only
        env={"VICTORIAMETRICS_OTLP_ENDPOINT": endpoint},
    ).start()
    yield server
    server.stop()


def _totals(victoriametrics: servers.Server, expression: str) -> dict[tuple[str, str], float]:
    result = servers.victoriametrics_api(victoriametrics, "/api/v1/query", query=expression, nocache="1")["data"][
        "result"
    ]
    return {
        (series["metric"].get("gen_ai_request_model", ""), series["metric"].get("gen_ai_token_type", "")): float(
            series["value"][1]
        )
        for series in result
    }


def test_token_usage_by_model_is_stored(victoriametrics, collector, tmp_path):
    provider, _ = in_memory_tracing()
    exporter = OTLPMetricExporter(endpoint=f"127.0.0.1:{collector.ports['otlp_grpc']}", insecure=True, timeout=5)
    local = InMemoryMetricReader()
    meters = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=500), local],
        resource=Resource.create({"service.name": "metrics-shop"}),
    )
    handler = TraceHandler(tracer_provider=provider, meter_provider=meters, log_path=tmp_path / "lc_trace.jsonl")
    for model, orders in (("florist-small", 3), ("florist-large", 2)):
        chain = flower_chain(FakeChatModel(model_name=model, responses=["Three white lilies, please."]))
        for i in range(orders):
            chain.invoke({"who": f"customer {i}"}, {"callbacks": [handler]})
    handler.close()
    assert meters.force_flush(30_000)

    # What the app recorded, by model and token type: the numbers the store must give back.
    expected: Counter[tuple[str, str]] = Counter()
    for metric in metrics(local, "gen_ai.client.token.usage"):
        for point in metric.data.data_points:
            attributes = dict(point.attributes or {})
            expected[(str(attributes["gen_ai.request.model"]), str(attributes["gen_ai.token.type"]))] += point.sum
    meters.shutdown()
    assert {("florist-small", "input"), ("florist-small", "output"), ("florist-large", "output")} <= set(expected)

    query = "sum by (gen_ai_request_model, gen_ai_token_type) (gen_ai_client_token_usage_sum)"
    deadline = time.monotonic() + READ_TIMEOUT_S
    while (stored := _totals(victoriametrics, query)) != expected and time.monotonic() < deadline:
        time.sleep(1)
    assert dict(expected) == stored


def test_the_dashboard_files_are_vmui_dashboards():
    """Each file is what vmui's -vmui.customDashboardsPath reads: a title and rows of panels with expressions."""
    paths = sorted(DASHBOARDS.glob("*.json"))
    assert paths
    for path in paths:
        dashboard = json.loads(path.read_text())
        assert dashboard["title"] and dashboard["rows"], path.name
        for row in dashboard["rows"]:
            for panel in row["panels"]:
                assert panel["title"] and panel["expr"] and all(isinstance(e, str) for e in panel["expr"]), panel
