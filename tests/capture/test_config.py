"""configure(): the application's one-call set-up; and the environment variables."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import lc_trace
from lc_trace import _env
from tests.conftest import flower_chain


@pytest.fixture
def fresh_global(monkeypatch):
    """Let a test set the global tracer and meter providers once, and restore the untouched globals after."""
    from opentelemetry.metrics import _internal as metrics_internal

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", trace.Once())
    monkeypatch.setattr(metrics_internal, "_METER_PROVIDER", None)
    monkeypatch.setattr(metrics_internal, "_METER_PROVIDER_SET_ONCE", trace.Once())


def test_configure_exports_through_its_provider(tmp_path, fresh_global):
    """configure() returns a handler whose spans reach the given exporter with service.name set."""
    exporter = InMemorySpanExporter()
    handler = lc_trace.configure("flower-shop", exporter=exporter, log_path=tmp_path / "t.jsonl")
    flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
    assert handler.close()
    spans = exporter.get_finished_spans()
    assert 4 == len(spans)
    assert "flower-shop" == spans[0].resource.attributes["service.name"]
    assert isinstance(handler, lc_trace.AsyncTraceHandler)
    assert "flower-shop" == handler.service_name


def test_configure_sets_the_global_provider_once(tmp_path, fresh_global, caplog):
    """The first configure() sets the global providers; a second one warns and keeps its own."""
    from opentelemetry import metrics

    first = lc_trace.configure("a", exporter="none", log_path=None)
    assert trace.get_tracer_provider() is first._spans.provider
    assert metrics.get_meter_provider() is first._metrics._provider
    with caplog.at_level(logging.WARNING, logger="lc_trace"):
        second = lc_trace.configure("b", exporter="none", log_path=None)
    assert trace.get_tracer_provider() is first._spans.provider
    assert "already set" in caplog.text
    first.close(), second.close()


def test_library_never_sets_the_global_by_itself(tmp_path, fresh_global):
    """Building handlers leaves the global provider as the app left it."""
    before = trace.get_tracer_provider()
    lc_trace.TraceHandler(log_path=None).close()
    lc_trace.configure("x", exporter="none", set_global=False, log_path=None).close()
    assert before is trace.get_tracer_provider()


def test_bad_exporter_and_protocol_are_refused(monkeypatch, fresh_global):
    """An unknown exporter name or OTLP protocol fails with a message listing the choices."""
    with pytest.raises(ValueError, match="'otlp', 'console', 'none'"):
        lc_trace.configure("x", exporter="jaeger", log_path=None)  # type: ignore[arg-type]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
    with pytest.raises(ValueError, match="grpc' or 'http/protobuf'"):
        lc_trace.configure("x", log_path=None)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_otlp_exporter_follows_the_protocol_variable(protocol, monkeypatch, fresh_global):
    """OTEL_EXPORTER_OTLP_PROTOCOL picks the gRPC or HTTP OTLP exporter."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    handler = lc_trace.configure("x", set_global=False, log_path=None)
    processor = handler._spans.provider._active_span_processor._span_processors[0]
    exporter = processor.span_exporter.inner  # inside lc_trace's GuardedSpanExporter
    assert ("grpc" if protocol == "grpc" else "http") in type(exporter).__module__
    handler.close()


class TestEnvironmentParsing:
    def test_bad_values_warn_and_fall_back(self, monkeypatch, caplog):
        """A malformed variable warns once and uses the default, it never crashes the app."""
        monkeypatch.setenv(_env.LC_TRACE_QUEUE_SIZE, "lots")
        monkeypatch.setenv(_env.LC_TRACE_LOG_TOKENS, "maybe")
        with caplog.at_level(logging.WARNING, logger="lc_trace"):
            assert 65_536 == _env.env_int(_env.LC_TRACE_QUEUE_SIZE, 65_536, minimum=1)
            assert False is _env.env_bool(_env.LC_TRACE_LOG_TOKENS, False)
        assert 2 == len(caplog.records)
        assert "LC_TRACE_QUEUE_SIZE='lots'" in caplog.records[0].message

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("NO_CONTENT", False),
            ("no_content", False),
            ("SPAN_ONLY", True),
            ("SPAN_AND_EVENT", True),
            ("true", True),
            ("false", False),
        ],
    )
    def test_otel_content_switch(self, value, expected, monkeypatch):
        """The OTel GenAI content variable is honoured, case-insensitively."""
        monkeypatch.delenv(_env.LC_TRACE_CAPTURE_CONTENT, raising=False)
        monkeypatch.setenv(_env.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, value)
        assert expected is _env.capture_content_from_env()


def test_configure_sends_metrics_to_the_reader(tmp_path, fresh_global):
    """configure(metric_reader=...) gets the GenAI metrics, under the service's resource."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    handler = lc_trace.configure("flower-shop", exporter="none", metric_reader=reader, log_path=None)
    flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
    handler.close()
    (resource_metrics,) = reader.get_metrics_data().resource_metrics
    assert "flower-shop" == resource_metrics.resource.attributes["service.name"]
    names = {m.name for scope in resource_metrics.scope_metrics for m in scope.metrics}
    assert {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"} == names


def test_configure_keeps_an_app_s_own_meter_provider(fresh_global, caplog):
    """An app that set its own global MeterProvider keeps it; configure() warns and uses a private one."""
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider

    apps = MeterProvider()
    metrics.set_meter_provider(apps)
    with caplog.at_level(logging.WARNING, logger="lc_trace"):
        handler = lc_trace.configure("x", exporter="none", log_path=None)
    assert metrics.get_meter_provider() is apps
    assert handler._metrics._provider is not apps
    assert "MeterProvider is already set" in caplog.text
    handler.close()
