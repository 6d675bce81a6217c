"""
The span sink: normalised records in, OpenTelemetry spans out. One seam, two implementations,
chosen once per tracer provider by :func:`span_sink` (the Recorder does not know which):

* :class:`ApiSpanSink` (here): a live span per run through the OpenTelemetry API, started at
  the run's start and ended at its end. Works with any provider.
* ``FinishedSpanSink`` (``_finished_spans``): where it can stand in for the SDK's span (the
  SDK's own provider, tracer, sampler and processors, unpatched), the run's span context is made
  at its start and one finished ``ReadableSpan`` is handed to the processors at its end; where
  anything asks for the span object, it becomes the SDK's own span.

Parents are passed explicitly (``context=`` built from the parent run's span); nothing is ever
attached to the ambient context, so nothing can leak from one call into the next (design
principle 3). A root run passes no context, so it nests under whatever span is current when it
starts: the web request that caused it, for instance.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, TracerProvider

from lc_trace import _attributes as A
from lc_trace._flush import flush_provider
from lc_trace._mapping import FAILED, Start

__all__ = ["ApiSpanSink", "SpanHandle", "SpanSink", "exception_attributes", "span_sink"]

_VERSION = "0.1.0"


class SpanHandle(Protocol):
    """
    What a sink gives the Recorder for an open run: a live span, or the finished-span path's
    pending record. The Recorder only reads its context (ids for the log lines).
    """

    def get_span_context(self) -> SpanContext: ...


class SpanSink(Protocol):
    """
    The seam between the Recorder and OpenTelemetry.
    """

    @property
    def provider(self) -> TracerProvider | None:
        """
        The provider this sink was given (None: the global one).
        """

    def start(self, record: Start, parent: Any, start_ns: int) -> Any:
        """
        Open the span of a run (*parent* is the parent run's handle, or None for a root).
        """

    def end(self, span: Any, attributes: Mapping[str, Any], reason: str | None, end_ns: int) -> None:
        """
        Close it with the end attributes; ``reason`` as in :meth:`ApiSpanSink.end`. The sink
        keeps no reference to *attributes*: the caller reuses the dict.
        """

    def event(self, span: Any, name: str, attributes: Mapping[str, Any], timestamp_ns: int) -> None:
        """
        A point-in-time event on an open span.
        """

    def rename(self, span: Any, name: str, attributes: Mapping[str, Any]) -> None:
        """
        A new name and attributes for an open span.
        """

    def as_span(self, span: Any) -> Span:
        """
        An API ``Span`` carrying the run's span context, to be a parent or the current span.
        """

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """
        Hand every ended span on to export; False on timeout.
        """


def lc_trace_tracer(tracer_provider: TracerProvider | None) -> trace.Tracer:
    """
    lc_trace's tracer on *tracer_provider* (default: the global one).
    """
    return trace.get_tracer("lc_trace", _VERSION, tracer_provider=tracer_provider, schema_url=A.SCHEMA_URL)


def span_sink(tracer_provider: TracerProvider | None = None, *, finished_spans: bool = True) -> SpanSink:
    """
    The finished-span path where it can stand in for the SDK's span, else the API path;
    ``finished_spans=False`` always the API path (a tracer patched in a way no check sees).
    """
    from lc_trace._finished_spans import FinishedSpanSink, selectable

    if tracer_provider is None and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return _UntilGlobalIsSet(finished_spans=finished_spans)
    tracer = lc_trace_tracer(tracer_provider)
    if finished_spans and selectable(tracer, tracer_provider):
        return FinishedSpanSink(tracer, tracer_provider)
    return ApiSpanSink(tracer_provider, tracer)


def exception_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """
    The ``exception`` event of a failed run, from its already redacted error fields.
    """
    return {
        "exception.type": attributes.get(A.ERROR_TYPE, ""),
        "exception.message": attributes.get(A.ERROR_MESSAGE, ""),
        "exception.stacktrace": attributes.get(A.ERROR_STACK_TRACE, ""),
    }


class ApiSpanSink:
    """
    Starts and ends one span per run on a tracer from *tracer_provider* (default: global).
    """

    __slots__ = ("_provider", "_tracer")

    def __init__(self, tracer_provider: TracerProvider | None = None, tracer: trace.Tracer | None = None) -> None:
        self._provider = tracer_provider
        self._tracer = tracer or lc_trace_tracer(tracer_provider)

    @property
    def provider(self) -> TracerProvider | None:
        """
        The provider this sink was given (None: the global one).
        """
        return self._provider

    def start(self, record: Start, parent: Span | None, start_ns: int) -> Span:
        """
        A started span: name, kind and every attribute known at the start given at creation,
        where samplers can see them.
        """
        context = trace.set_span_in_context(parent) if parent is not None else None
        attributes = record.attributes
        if record.content:
            attributes = {**attributes, **record.content}
        return self._tracer.start_span(
            record.span_name,
            context=context,
            kind=SpanKind.CLIENT if record.client else SpanKind.INTERNAL,
            attributes=attributes,
            start_time=start_ns,
        )

    @staticmethod
    def end(span: Span, attributes: Mapping[str, Any], reason: str | None, end_ns: int) -> None:
        """
        End *span* with the end attributes. ``reason`` is None for success, ``failed`` for an
        error (status ERROR and an exception event, from the already redacted error fields), or
        why a run stopped without failing (cancelled, stream_closed, interrupted…), which is
        recorded as ``langchain.run.end_reason`` and leaves the status unset.
        """
        if attributes:
            span.set_attributes(attributes)
        if reason == FAILED:
            span.add_event("exception", exception_attributes(attributes), timestamp=end_ns)
            span.set_status(Status(StatusCode.ERROR, attributes.get(A.ERROR_MESSAGE, "")[:1024]))
        span.end(end_time=end_ns)

    @staticmethod
    def event(span: Span, name: str, attributes: Mapping[str, Any], timestamp_ns: int) -> None:
        """
        A point-in-time event on an open span (custom events, agent actions, retries).
        """
        span.add_event(name, attributes, timestamp=timestamp_ns)

    @staticmethod
    def rename(span: Span, name: str, attributes: Mapping[str, Any]) -> None:
        """
        Give an open span a new name and attributes (a chain found to be an agent).
        """
        span.update_name(name)
        span.set_attributes(attributes)

    @staticmethod
    def as_span(span: Span) -> Span:
        """
        The live span itself.
        """
        return span

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """
        Ask the provider (the given one, else the current global one) to export ended spans.
        """
        return flush_provider(self._provider or trace.get_tracer_provider(), timeout_millis)


class _UntilGlobalIsSet(ApiSpanSink):
    """
    A handler built before the app set its global provider: the API path (the proxy tracer
    hands out no-op spans) until the first run after the provider is set, then the sink that
    provider gets, its methods bound in place of these. A span begun on the API path ends on
    it: the finished-span sink hands live spans to the API path.
    """

    __slots__ = ("__dict__",)

    def __init__(self, *, finished_spans: bool) -> None:
        super().__init__(None)
        self._finished_spans = finished_spans

    def start(self, record: Start, parent: Span | None, start_ns: int) -> Span:
        """
        Start on the API path, or switch to the real sink once the global provider exists.
        """
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            sink = span_sink(None, finished_spans=self._finished_spans)
            for name in ("start", "end", "event", "rename", "as_span"):
                setattr(self, name, getattr(sink, name))
            return sink.start(record, parent, start_ns)  # type: ignore[no-any-return]
        return super().start(record, parent, start_ns)


def now_ns() -> int:
    """
    Wall-clock nanoseconds, the clock OTel spans and ECS timestamps share.
    """
    return time.time_ns()
