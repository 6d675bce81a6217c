"""
configure(): the one-call set-up for applications, and the only module that builds SDK
providers and exporters.

A library must not set global OpenTelemetry state behind the application's back (design
principle 8), so the handlers only ever *use* providers. An application that has no
OpenTelemetry set-up of its own calls ``configure()`` once.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Literal

from opentelemetry import metrics, trace
from opentelemetry.metrics._internal import _ProxyMeterProvider  # the API's stand-in until one is set (no public name)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from lc_trace._handlers import AsyncTraceHandler

__all__ = ["configure"]

_logger = logging.getLogger("lc_trace")

Exporter = Literal["otlp", "console", "none"]


def configure(
    service_name: str | None = None,
    *,
    exporter: Exporter | SpanExporter = "otlp",
    metric_reader: MetricReader | None = None,
    set_global: bool = True,
    **handler_options: Any,
) -> AsyncTraceHandler:
    """
    Set up tracing and GenAI metrics for an application and return a ready handler.

    Builds a ``TracerProvider`` whose Resource carries ``service.name``, with a
    ``BatchSpanProcessor`` feeding the exporter, and a ``MeterProvider`` for the GenAI client
    metrics, exported periodically (``OTEL_METRIC_EXPORT_INTERVAL``, default a minute) by the
    matching metric exporter. ``"otlp"`` is configured by the standard ``OTEL_EXPORTER_OTLP_*``
    variables (endpoint, headers, timeout; protocol ``grpc`` by default, ``http/protobuf`` when
    ``OTEL_EXPORTER_OTLP_PROTOCOL`` or ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` says so).
    ``"none"`` keeps spans and metrics in-process (the log file still gets every trace id).

    Args:
        service_name: ``service.name``; default ``$OTEL_SERVICE_NAME``, else ``lc_trace``.
        exporter: ``"otlp"``, ``"console"``, ``"none"`` or any ``SpanExporter``.
        metric_reader: where metrics go instead of the exporter's choice (an
            ``InMemoryMetricReader`` in tests, a Prometheus reader…).
        set_global: also make these the global providers, so other instrumentation (httpx,
            FastAPI…) shares them. Skipped, with a warning, for one that is already set.
        **handler_options: passed to :class:`AsyncTraceHandler` (``log_path``, ``capture_content``…).

    Returns:
        An AsyncTraceHandler (it works in sync code too) using the new providers.

    Raises:
        ValueError: an unknown exporter name or OTLP protocol.
    """
    name = service_name or os.environ.get("OTEL_SERVICE_NAME", "").strip() or "lc_trace"
    resource = Resource.create({SERVICE_NAME: name})
    tracer_provider = TracerProvider(resource=resource)
    span_exporter = _span_exporter(exporter)
    if span_exporter is not None:
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    reader = metric_reader if metric_reader is not None else _metric_reader(exporter)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader] if reader is not None else [])
    if set_global:
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(tracer_provider)
        else:
            _logger.warning("lc_trace.configure: a global TracerProvider is already set; the handler uses its own")
        if isinstance(metrics.get_meter_provider(), _ProxyMeterProvider):
            metrics.set_meter_provider(meter_provider)
        else:
            _logger.warning("lc_trace.configure: a global MeterProvider is already set; the handler uses its own")
    return AsyncTraceHandler(
        tracer_provider=tracer_provider, meter_provider=meter_provider, service_name=name, **handler_options
    )


def _otlp_protocol() -> str:
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    ).strip()
    if protocol not in ("grpc", "http/protobuf"):
        raise ValueError(f"OTLP protocol must be 'grpc' or 'http/protobuf', got {protocol!r}")
    return protocol


def _span_exporter(exporter: Exporter | SpanExporter) -> SpanExporter | None:
    if isinstance(exporter, SpanExporter):
        return exporter
    if exporter == "none":
        return None
    if exporter == "console":
        return ConsoleSpanExporter()
    if exporter != "otlp":
        raise ValueError(f"exporter must be 'otlp', 'console', 'none' or a SpanExporter, got {exporter!r}")
    if _otlp_protocol() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPSpanExporter

    return HTTPSpanExporter()


def _metric_reader(exporter: Exporter | SpanExporter) -> MetricReader | None:
    if exporter == "console":
        return PeriodicExportingMetricReader(ConsoleMetricExporter())
    if exporter != "otlp":
        return None
    if _otlp_protocol() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return PeriodicExportingMetricReader(OTLPMetricExporter())
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HTTPMetricExporter

    return PeriodicExportingMetricReader(HTTPMetricExporter())
