"""
SpanSink: normalised records in, OpenTelemetry spans out, through the API only.

Parents are passed explicitly (``context=`` built from the parent run's span); nothing is ever
attached to the ambient context, so nothing can leak from one call into the next (design
principle 3). A root run passes no context, so it nests under whatever span is current when it
starts: the web request that caused it, for instance.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from lc_trace import _attributes as A
from lc_trace._flush import flush_provider
from lc_trace._mapping import FAILED, Start

__all__ = ["SpanSink"]

_VERSION = "0.1.0"


class SpanSink:
    """
    Starts and ends one span per run on a tracer from *tracer_provider* (default: global).
    """

    __slots__ = ("_provider", "_tracer")

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._provider = tracer_provider
        self._tracer = trace.get_tracer("lc_trace", _VERSION, tracer_provider=tracer_provider, schema_url=A.SCHEMA_URL)

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
            message = attributes.get(A.ERROR_MESSAGE, "")
            span.add_event(
                "exception",
                {
                    "exception.type": attributes.get(A.ERROR_TYPE, ""),
                    "exception.message": message,
                    "exception.stacktrace": attributes.get(A.ERROR_STACK_TRACE, ""),
                },
                timestamp=end_ns,
            )
            span.set_status(Status(StatusCode.ERROR, message[:1024]))
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
