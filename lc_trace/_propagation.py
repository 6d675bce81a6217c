"""
Traces that cross services: a W3C ``traceparent`` (and ``tracestate``) in a root run's metadata
makes the run continue that trace, and ``current_traceparent()`` gives the header to send on.

The metadata is where a LangGraph server or a queue consumer can put the request headers it
received (``config={"metadata": {"traceparent": ...}}``); LangChain hands it to every start
callback. Parsing is OpenTelemetry's own W3C propagator, so what is valid is what the spec says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from lc_trace._stats import Stats, report_once

__all__ = ["TRACEPARENT", "TRACESTATE", "current_traceparent", "remote_parent"]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_W3C = TraceContextTextMapPropagator()


def remote_parent(metadata: Mapping[str, Any], stats: Stats) -> Span | None:
    """
    The remote span named by ``metadata["traceparent"]``; None (with one warning per handler)
    when the header is not valid W3C trace context, and None when the current span is already in
    that trace (the request span of an instrumented server), so the run nests under that.
    """
    carrier = {TRACEPARENT: metadata[TRACEPARENT]}
    state = metadata.get(TRACESTATE)
    if state is not None:
        carrier[TRACESTATE] = state
    if not all(isinstance(value, str) for value in carrier.values()):
        context = None
    else:
        context = trace.get_current_span(_W3C.extract(carrier, context=Context())).get_span_context()
    if context is None or not context.is_valid:
        report_once(
            stats,
            "traceparent:invalid",
            "ignored a traceparent that is not W3C trace context (%r); the run starts its own trace",
            metadata[TRACEPARENT],
        )
        return None
    ambient = trace.get_current_span().get_span_context()
    if ambient.is_valid and ambient.trace_id == context.trace_id:
        return None  # already inside that trace (an instrumented server's span): nest under the nearer span
    return NonRecordingSpan(context)


def current_traceparent() -> str | None:
    """
    The W3C ``traceparent`` header of the current span (with ``lc_trace.instrument()``, the
    model, tool or retriever run whose code is running), to put on an outgoing call; None when
    no span is current. ``opentelemetry.propagate.inject(headers)`` gives it with ``tracestate``.
    """
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get(TRACEPARENT)
