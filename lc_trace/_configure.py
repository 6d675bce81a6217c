"""
configure(): the one-call set-up for applications, and the only module that builds SDK
providers and exporters.

A library must not set global OpenTelemetry state behind the application's back (design
principle 8), so the handlers only ever *use* providers. An application that has no
OpenTelemetry set-up of its own calls ``configure()`` once.

Timeouts are chosen so that a collector that is down costs the app nothing and holds its exit
for at most a few seconds (docs/reliability.md, *The collector down*); each one yields to its standard
``OTEL_*`` variable.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
from typing import Any, Literal

from opentelemetry import metrics, trace
from opentelemetry.metrics._internal import _ProxyMeterProvider  # the API's stand-in until one is set (no public name)
from opentelemetry.sdk.environment_variables import (
    OTEL_BSP_EXPORT_TIMEOUT,
    OTEL_BSP_SCHEDULE_DELAY,
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_TIMEOUT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
    OTEL_METRIC_EXPORT_TIMEOUT,
    OTEL_SERVICE_NAME,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from lc_trace import _env
from lc_trace._env import env_int
from lc_trace._handlers import AsyncTraceHandler
from lc_trace._lifecycle import _shutdown
from lc_trace._logs._shaper import process_instance_id
from lc_trace._otlp import CountingBatchSpanProcessor, GuardedMetricExporter, GuardedSpanExporter, Outage

__all__ = ["configure"]

_logger = logging.getLogger("lc_trace")

Exporter = Literal["otlp", "console", "none"]

_DEFAULT_OTLP_TIMEOUT_S = 2.0
"""
One OTLP export, its retries included (the SDK's default: 10 s). Enough for a collector on the
same host or network; ``OTEL_EXPORTER_OTLP_TIMEOUT`` (seconds, as the Python SDK reads it) or
the per-signal ``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT``/``..._METRICS_TIMEOUT`` set another.
"""

_DEFAULT_EXPORT_TIMEOUT_MS = 3_000
"""
How long exit waits for the metric reader's last export (``OTEL_METRIC_EXPORT_TIMEOUT``), and
the span processor's export timeout (``OTEL_BSP_EXPORT_TIMEOUT``, which the SDK records but, up
to 1.45.2, does not enforce: the OTLP timeout bounds a span export). The SDK's default: 30 s.
"""

_DEFAULT_SCHEDULE_DELAY_MS = 5_000
"""
The SDK's ``OTEL_BSP_SCHEDULE_DELAY``, which also spaces the tries while the collector is down.
"""


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

    A collector that is down costs the app nothing: the first failed export marks it
    unreachable, later batches are dropped at once and counted in ``handler.stats``
    (``spans_dropped_*``, ``metric_points_dropped_*``), one export is tried every
    ``OTEL_BSP_SCHEDULE_DELAY`` (5 s), the first that gets through resumes export, and the
    outage is reported when it starts and when it ends. At exit a collector known down is not
    tried again; one not yet tried costs one OTLP timeout. Defaults that differ from the SDK's,
    each overridden by its variable: one OTLP export, retries included, 2 s
    (``OTEL_EXPORTER_OTLP_TIMEOUT``, in seconds as the Python SDK reads it); the metric
    reader's last export at exit and the span processor's export timeout, 3 s
    (``OTEL_METRIC_EXPORT_TIMEOUT``, ``OTEL_BSP_EXPORT_TIMEOUT``, in ms).

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
    name = service_name or os.environ.get(OTEL_SERVICE_NAME, "").strip() or _env.DEFAULT_SERVICE_NAME
    resource = Resource.create({SERVICE_NAME: name})
    if SERVICE_INSTANCE_ID not in resource.attributes:  # an SDK that adds none: the one lc_trace's log lines carry
        resource = resource.merge(Resource({SERVICE_INSTANCE_ID: process_instance_id()}))
    retry_interval_s = env_int(OTEL_BSP_SCHEDULE_DELAY, _DEFAULT_SCHEDULE_DELAY_MS, minimum=1) / 1000
    span_outage = Outage(retry_interval_s)
    shared = isinstance(exporter, str) and _same_collector()
    metric_outage = span_outage if shared else Outage(retry_interval_s)
    # Shut down by _shutdown_at_exit below, not by the providers' own atexit hooks.
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    span_exporter = _span_exporter(exporter)
    if span_exporter is not None:
        tracer_provider.add_span_processor(
            CountingBatchSpanProcessor(
                GuardedSpanExporter(span_exporter, span_outage),
                export_timeout_millis=_unless_set(OTEL_BSP_EXPORT_TIMEOUT, _DEFAULT_EXPORT_TIMEOUT_MS),
            )
        )
    reader = metric_reader if metric_reader is not None else _metric_reader(exporter, metric_outage)
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[reader] if reader is not None else [], shutdown_on_exit=False
    )
    atexit.register(_shutdown_at_exit, tracer_provider, meter_provider, (span_outage, metric_outage))
    # SIGTERM, a server's re-raise after its drain, Celery's os._exit: flushed there too (_shutdown.py).
    _shutdown.register_providers(tracer_provider, meter_provider, _flush_bound_s())
    if set_global:
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(tracer_provider)
        else:
            _logger.warning("lc_trace.configure: a global TracerProvider is already set; the handler uses its own")
        if isinstance(metrics.get_meter_provider(), _ProxyMeterProvider):
            metrics.set_meter_provider(meter_provider)
        else:
            _logger.warning("lc_trace.configure: a global MeterProvider is already set; the handler uses its own")
    handler = AsyncTraceHandler(
        tracer_provider=tracer_provider, meter_provider=meter_provider, service_name=name, **handler_options
    )
    span_outage.stats = metric_outage.stats = handler.stats
    return handler


def _shutdown_at_exit(
    tracer_provider: TracerProvider, meter_provider: MeterProvider, outages: tuple[Outage, ...]
) -> None:
    """
    Shut both providers down at exit, spans first, without waiting again on a collector found
    unreachable: its last batches are dropped and counted, and the loss is reported once.
    """
    started = time.monotonic()
    for outage in outages:
        outage.closing = True
    tracer_provider.shutdown()  # the processor's last export: one try at most, bounded by the OTLP timeout
    if not getattr(meter_provider, "_shutdown", False):  # the SDK warns on a second shutdown
        try:  # the SDK raises when a reader failed or ran out of time; exit must go on
            meter_provider.shutdown(
                timeout_millis=env_int(OTEL_METRIC_EXPORT_TIMEOUT, _DEFAULT_EXPORT_TIMEOUT_MS, minimum=1)
            )
        except Exception as exc:
            _logger.warning("lc_trace: the meter provider did not shut down cleanly: %s", exc)
    for outage in dict.fromkeys(outages):
        outage.report_at_exit()
    _logger.debug("lc_trace: providers shut down in %.2f s", time.monotonic() - started)


def _flush_bound_s() -> float:
    """
    The longest a flush at SIGTERM may take: one OTLP export (its retries included), or the
    metric reader's export timeout, whichever is longer, as set by their variables.
    """
    otlp = _DEFAULT_OTLP_TIMEOUT_S
    for variable in (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, OTEL_EXPORTER_OTLP_METRICS_TIMEOUT, OTEL_EXPORTER_OTLP_TIMEOUT):
        try:
            otlp = max(otlp, float(os.environ.get(variable, "").strip() or 0))
        except ValueError:
            pass
    return max(otlp, env_int(OTEL_METRIC_EXPORT_TIMEOUT, _DEFAULT_EXPORT_TIMEOUT_MS, minimum=1) / 1000)


def _unless_set(variable: str, default: int) -> int | None:
    """
    *default*, or None (the SDK then reads *variable*) when the environment sets *variable*.
    """
    return None if os.environ.get(variable, "").strip() else default


def _otlp_timeout_s(signal_variable: str) -> float | None:
    """
    lc_trace's OTLP timeout, or None (the exporter reads the variables) when one is set.
    """
    if os.environ.get(signal_variable, "").strip() or os.environ.get(OTEL_EXPORTER_OTLP_TIMEOUT, "").strip():
        return None
    return _DEFAULT_OTLP_TIMEOUT_S


def _same_collector() -> bool:
    """
    Whether the span and metric exporters send to one address (no per-signal endpoint differs).
    """
    general = os.environ.get(OTEL_EXPORTER_OTLP_ENDPOINT, "").strip()
    traces = os.environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "").strip() or general
    metrics = os.environ.get(OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, "").strip() or general
    return traces.rstrip("/").removesuffix("/v1/traces") == metrics.rstrip("/").removesuffix("/v1/metrics")


def _otlp_protocol() -> str:
    protocol = (
        os.environ.get(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) or os.environ.get(OTEL_EXPORTER_OTLP_PROTOCOL) or "grpc"
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
    timeout = _otlp_timeout_s(OTEL_EXPORTER_OTLP_TRACES_TIMEOUT)
    if _otlp_protocol() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPSpanExporter

    return HTTPSpanExporter(timeout=timeout)


def _metric_reader(exporter: Exporter | SpanExporter, outage: Outage) -> MetricReader | None:
    inner: MetricExporter
    if exporter == "console":
        inner = ConsoleMetricExporter()
    elif exporter != "otlp":
        return None
    elif _otlp_protocol() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        inner = OTLPMetricExporter(timeout=_otlp_timeout_s(OTEL_EXPORTER_OTLP_METRICS_TIMEOUT))
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HTTPMetricExporter

        inner = HTTPMetricExporter(timeout=_otlp_timeout_s(OTEL_EXPORTER_OTLP_METRICS_TIMEOUT))
    return PeriodicExportingMetricReader(
        GuardedMetricExporter(inner, outage),
        export_timeout_millis=_unless_set(OTEL_METRIC_EXPORT_TIMEOUT, _DEFAULT_EXPORT_TIMEOUT_MS),
    )
