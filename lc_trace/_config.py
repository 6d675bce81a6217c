"""
configure(): the one-call set-up for applications, and the only module that builds SDK
providers and exporters.

A library must not set global OpenTelemetry state behind the application's back (design
principle 8), so the handlers only ever *use* a provider. An application that has no
OpenTelemetry set-up of its own calls ``configure()`` once.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Literal

from opentelemetry import trace
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
    set_global: bool = True,
    **handler_options: Any,
) -> AsyncTraceHandler:
    """
    Set up tracing for an application and return a ready handler.

    Builds a ``TracerProvider`` whose Resource carries ``service.name``, with a
    ``BatchSpanProcessor`` feeding the exporter. ``"otlp"`` is configured by the standard
    ``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers, timeout; protocol ``grpc`` by
    default, ``http/protobuf`` when ``OTEL_EXPORTER_OTLP_PROTOCOL`` or
    ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` says so). ``"none"`` keeps spans in-process
    (the log file still gets every trace id).

    Args:
        service_name: ``service.name``; default ``$OTEL_SERVICE_NAME``, else ``lc_trace``.
        exporter: ``"otlp"``, ``"console"``, ``"none"`` or any ``SpanExporter``.
        set_global: also make this the global provider, so other instrumentation (httpx,
            FastAPI…) shares the traces. Ignored, with a warning, if one is already set.
        **handler_options: passed to :class:`AsyncTraceHandler` (``log_path``, ``capture_content``…).

    Returns:
        An AsyncTraceHandler (it works in sync code too) using the new provider.

    Raises:
        ValueError: an unknown exporter name or OTLP protocol.
    """
    name = service_name or os.environ.get("OTEL_SERVICE_NAME", "").strip() or "lc_trace"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    span_exporter = _exporter(exporter)
    if span_exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(span_exporter))
    if set_global:
        current = trace.get_tracer_provider()
        if isinstance(current, trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)
        else:
            _logger.warning(
                "lc_trace.configure: a global TracerProvider is already set; lc_trace's handler uses its own"
            )
    return AsyncTraceHandler(tracer_provider=provider, service_name=name, **handler_options)


def _exporter(exporter: Exporter | SpanExporter) -> SpanExporter | None:
    if isinstance(exporter, SpanExporter):
        return exporter
    if exporter == "none":
        return None
    if exporter == "console":
        return ConsoleSpanExporter()
    if exporter != "otlp":
        raise ValueError(f"exporter must be 'otlp', 'console', 'none' or a SpanExporter, got {exporter!r}")
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    ).strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPExporter

        return HTTPExporter()
    raise ValueError(f"OTLP protocol must be 'grpc' or 'http/protobuf', got {protocol!r}")
