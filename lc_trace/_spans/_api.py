"""
The seam every span sink fills (:class:`SpanSink`) and the API path (:class:`ApiSpanSink`): a
live span per run through the OpenTelemetry API, started at the run's start and ended at its
end. Works with any provider.

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
from lc_trace._lifecycle._flush import flush_provider
from lc_trace._records import FAILED, Start
from lc_trace._version import SCOPE_NAME, VERSION

__all__ = ["ApiSpanSink", "SpanHandle", "SpanSink", "exception_attributes", "lc_trace_tracer", "now_ns"]


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
    return trace.get_tracer(SCOPE_NAME, VERSION, tracer_provider=tracer_provider, schema_url=A.SCHEMA_URL)


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


def now_ns() -> int:
    """
    Wall-clock nanoseconds, the clock OTel spans and ECS timestamps share.
    """
    return time.time_ns()
