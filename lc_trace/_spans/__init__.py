"""
The span layer: normalised records in, OpenTelemetry spans out. One seam (``SpanSink``), two
implementations, chosen once per tracer provider by :func:`span_sink` (the recorder does not
know which):

* ``ApiSpanSink`` (``_api``): a live span per run through the OpenTelemetry API. Works with any
  provider.
* ``FinishedSpanSink`` (``_finished``): where it can stand in for the SDK's span (the SDK's own
  provider, tracer, sampler and processors, unpatched), the run's span context is made at its
  start and one finished ``ReadableSpan`` is handed to the processors at its end; where anything
  asks for the span object, it becomes the SDK's own span.

Nothing here imports LangChain: runs arrive as ``lc_trace._records.Start`` and attribute dicts.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Span, TracerProvider

from lc_trace._records import Start
from lc_trace._spans._api import ApiSpanSink, SpanHandle, SpanSink, lc_trace_tracer, now_ns
from lc_trace._spans._finished import FinishedSpanSink, selectable

__all__ = ["SpanHandle", "SpanSink", "now_ns", "span_sink"]


def span_sink(tracer_provider: TracerProvider | None = None, *, finished_spans: bool = True) -> SpanSink:
    """
    The finished-span path where it can stand in for the SDK's span, else the API path;
    ``finished_spans=False`` always the API path (a tracer patched in a way no check sees).
    """
    if tracer_provider is None and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return _UntilGlobalIsSet(finished_spans=finished_spans)
    tracer = lc_trace_tracer(tracer_provider)
    if finished_spans and selectable(tracer, tracer_provider):
        return FinishedSpanSink(tracer, tracer_provider)
    return ApiSpanSink(tracer_provider, tracer)


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
