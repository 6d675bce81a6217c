"""
FinishedSpanSink: a run's span made once, finished, at the run's end.

The SDK's live ``Span`` costs most of a traced run (a lock, ``BoundedAttributes`` cleaning every
value in Python, start and end bookkeeping: ~27-38 us for an empty one, 51-65 us with lc_trace's
attributes, against 6-9 us to build a finished ``ReadableSpan`` and hand it to the processors).
lc_trace keeps its own run table and takes parents from run ids, so nothing needs a live span
while a run is open. At the start this sink does what ``Tracer.start_span`` does up to the span
object: the ids from the provider's id generator, the sampler asked with the same arguments, its
decision, attributes and trace state honoured. At the end it builds the ``ReadableSpan`` the live
span would have produced and gives it to the processors.

It is taken only where that is exactly equivalent (:meth:`FinishedSpanSink.supports`, and per
span the cheap checks in :meth:`FinishedSpanSink.start`); anywhere else the API path runs, span
by span. What it relies on in the SDK is listed in docs/decisions.md, and
tests/test_finished_spans.py compares both paths' OTLP output on the pinned and the newest SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    Event,
    ReadableSpan,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    Tracer,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from lc_trace import _attributes as A
from lc_trace._mapping import FAILED, Start
from lc_trace._span_sink import ApiSpanSink, exception_attributes

try:  # the SDK's own span metrics (OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED), SDK >= 1.39
    from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
except ImportError:  # pragma: no cover - older SDKs have no such metrics
    NoOpTracerMetrics = None  # type: ignore[assignment,misc]

__all__ = ["FinishedSpanSink"]

# Processors known to do nothing at a span's start (and while it ends): the SDK's own.
_QUIET = (SpanProcessor, BatchSpanProcessor, SimpleSpanProcessor)
_NO_OP_ON_START = frozenset(kind.__dict__["on_start"] for kind in _QUIET if "on_start" in kind.__dict__)
_NO_OP_ON_ENDING = frozenset(kind.__dict__["_on_ending"] for kind in _QUIET if "_on_ending" in kind.__dict__)
_UNSET = Status(StatusCode.UNSET)
_MULTI = (SynchronousMultiSpanProcessor, ConcurrentMultiSpanProcessor)
_RANDOM = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)  # W3C level 2 flag, set by SDK >= 1.39
_FLAGS = {
    (sampled, random): TraceFlags((TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT) | (_RANDOM if random else 0))
    for sampled in (False, True)
    for random in (False, True)
}


_OWN_SAMPLERS = (StaticSampler, TraceIdRatioBased)
_PARENT_BASED = (ParentBased, ParentBasedTraceIdRatio)
_DELEGATES = (
    "_root",
    "_remote_parent_sampled",
    "_remote_parent_not_sampled",
    "_local_parent_sampled",
    "_local_parent_not_sampled",
)


def _passes_attributes_through(sampler: Sampler) -> bool:
    """
    True for the SDK's samplers, which give a recorded span exactly the attributes they were
    asked with (a custom sampler may add or change some: those spans replay the SDK's cleaning).
    """
    if type(sampler) in _OWN_SAMPLERS:
        return True
    if type(sampler) in _PARENT_BASED:
        return all(_passes_attributes_through(getattr(sampler, name, None)) for name in _DELEGATES)  # type: ignore[arg-type]
    return False


def _fixed_decisions(sampler: Sampler) -> tuple[Decision, ...] | None:
    """
    For the SDK's fixed-decision samplers (``ALWAYS_ON``, ``ALWAYS_OFF``, and ``ParentBased``
    over those: the default ``parentbased_always_on``), the decision for a root, a remote parent
    sampled or not, a local parent sampled or not. Their answer depends on nothing else, and
    their trace state is the parent's: computing it skips the calls and the context they need.
    """
    if type(sampler).should_sample is StaticSampler.should_sample:
        decision = getattr(sampler, "_decision", None)
        return (decision,) * 5 if isinstance(decision, Decision) else None
    if type(sampler).should_sample is ParentBased.should_sample:
        delegates = [_fixed_decisions(getattr(sampler, name, None)) for name in _DELEGATES]  # type: ignore[arg-type]
        if all(d is not None for d in delegates):
            return tuple(d[0] for d in delegates)  # type: ignore[index]
    return None


def _quiet(processor: SpanProcessor) -> bool:
    kind = type(processor)
    return getattr(kind, "on_start", None) in _NO_OP_ON_START and (
        getattr(kind, "_on_ending", None) in _NO_OP_ON_ENDING or not hasattr(kind, "_on_ending")
    )


class _Pending:
    """
    An open run's span on the finished-span path: its context exists from the start (children,
    log lines and ``as_span`` use it); the rest waits for the end.
    """

    __slots__ = (
        "attributes",
        "content",
        "context",
        "events",
        "kind",
        "name",
        "parent",
        "replay",
        "resource",
        "span",
        "start_ns",
        "updates",
    )

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Mapping[str, Any],
        start_ns: int,
        resource: Any,
        replay: bool,
    ) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes  # the sampler's result: the live span starts with these
        self.content: Mapping[str, Any] | None = None  # more start attributes, after these
        self.start_ns = start_ns
        self.resource = resource
        self.events: list[Event] | None = None
        self.updates: list[Mapping[str, Any]] | None = None  # set_attributes calls before the end
        self.span: NonRecordingSpan | None = None
        self.replay = replay  # attributes that may need the SDK's cleaning (a custom sampler's)

    def get_span_context(self) -> SpanContext:
        """
        The span context, as a live span would report it.
        """
        return self.context


class FinishedSpanSink:
    """
    The span sink that makes one finished ``ReadableSpan`` per run, at its end.
    """

    __slots__ = (
        "_api",
        "_checked",
        "_enabled",
        "_ids",
        "_limits",
        "_multi",
        "_own_sampler",
        "_sampler",
        "_static",
        "_quiet",
        "_scope",
        "_info",
        "_tracer",
    )

    @staticmethod
    def supports(tracer: Any) -> bool:
        """
        Whether *tracer* is the SDK's own, with what this sink replays of ``start_span`` and
        ``Span`` known: not a subclass, no SDK span metrics, a processor list it can read.
        """
        if type(tracer) is not Tracer:  # OTEL_SDK_DISABLED gives a NoOpTracer; non-SDK providers their own
            return False
        metrics = getattr(tracer, "_tracer_metrics", None)
        if metrics is not None and (NoOpTracerMetrics is None or type(metrics) is not NoOpTracerMetrics):
            return False
        multi = getattr(tracer, "span_processor", None)
        return type(multi) in _MULTI and isinstance(getattr(multi, "_span_processors", None), tuple)

    def __init__(self, tracer: Any, tracer_provider: Any) -> None:
        self._tracer = tracer
        self._api = ApiSpanSink(tracer_provider, tracer)
        self._multi: SynchronousMultiSpanProcessor = tracer.span_processor
        self._ids = tracer.id_generator
        self._limits = tracer._span_limits
        self._scope = tracer._instrumentation_scope
        self._info = tracer.instrumentation_info
        self._enabled = getattr(tracer, "_is_enabled", None)
        self._checked: tuple[SpanProcessor, ...] | None = None
        self._quiet = False
        self._sampler: Any = None
        self._own_sampler = False
        self._static: tuple[Decision, ...] | None = None
        self._use_sampler(tracer.sampler)

    def _use_sampler(self, sampler: Sampler) -> None:
        self._sampler = sampler
        self._own_sampler = _passes_attributes_through(sampler)
        self._static = _fixed_decisions(sampler)

    @property
    def provider(self) -> Any:
        """
        The provider this sink was given (None: the global one).
        """
        return self._api.provider

    # -- start --------------------------------------------------------------------------------

    def start(self, record: Start, parent: Any, start_ns: int) -> Any:
        """
        What ``Tracer.start_span`` would do, short of the live span: a ``_Pending`` for a
        recorded span, a ``NonRecordingSpan`` for one the sampler dropped. The API path instead
        when a processor needs the live span at its start, or the tracer is disabled.
        """
        processors = self._multi._span_processors
        if processors is not self._checked:  # a processor was added: look again (a tuple, replaced on add)
            self._quiet = all(_quiet(p) for p in processors)
            self._checked = processors
        if not self._quiet or (self._enabled is not None and not self._enabled()):
            return self._api.start(record, self.as_span(parent) if parent is not None else None, start_ns)
        attributes = record.attributes
        content = record.content
        name = record.span_name
        kind = SpanKind.CLIENT if record.client else SpanKind.INTERNAL
        ids = self._ids
        tracer = self._tracer
        if tracer.sampler is not self._sampler:
            self._use_sampler(tracer.sampler)
        parent_context: SpanContext | None = (
            parent.get_span_context() if parent is not None else trace.get_current_span().get_span_context()
        )
        if parent_context is None or not parent_context.is_valid:
            parent_context = None
            trace_id = ids.generate_trace_id()
        else:
            trace_id = parent_context.trace_id
        static = self._static
        result: Any = None
        decision: Any
        if static is not None:  # the SDK's fixed-decision samplers: their answer, without the call
            if parent_context is None:
                decision, trace_state = static[0], None
            else:
                sampled = parent_context.trace_flags.sampled
                decision = static[(1 if sampled else 2) if parent_context.is_remote else (3 if sampled else 4)]
                trace_state = parent_context.trace_state
        else:
            context = trace.set_span_in_context(self.as_span(parent)) if parent is not None else None
            if content:  # what start_span would be given
                attributes, content = {**attributes, **content}, {}
            result = self._sampler.should_sample(context, trace_id, name, kind, attributes, ())
            decision, trace_state = result.decision, result.trace_state
        if parent_context is None:
            random = _RANDOM and getattr(ids, "is_trace_id_random", bool)()
        else:
            random = _RANDOM and parent_context.trace_flags & _RANDOM
        span_context = SpanContext(
            trace_id,
            ids.generate_span_id(),
            is_remote=False,
            trace_flags=_FLAGS[decision.is_sampled(), bool(random)],
            trace_state=trace_state,
        )
        if not decision.is_recording():
            return NonRecordingSpan(span_context)
        if result is None or self._own_sampler:  # the SDK's samplers pass our dict on (in a proxy): keep the dict
            pending = _Pending(name, span_context, parent_context, kind, attributes, start_ns, tracer.resource, False)
            if content:  # kept apart until the end: no merged copy while the run is open
                pending.content = content
            return pending
        replay = result.attributes != attributes
        return _Pending(name, span_context, parent_context, kind, result.attributes, start_ns, tracer.resource, replay)

    # -- while open ---------------------------------------------------------------------------

    def event(self, span: Any, name: str, attributes: Mapping[str, Any], timestamp_ns: int) -> None:
        """
        Keep an event for the end (``Span.add_event``'s attribute limits applied).
        """
        if type(span) is not _Pending:
            span.add_event(name, attributes, timestamp=timestamp_ns)
            return
        event = Event(name, self._event_attributes(attributes), timestamp_ns)
        if span.events is None:
            span.events = [event]
        else:
            span.events.append(event)

    @staticmethod
    def rename(span: Any, name: str, attributes: Mapping[str, Any]) -> None:
        """
        A new name, and attributes to apply at the end in the order they came.
        """
        if type(span) is not _Pending:
            ApiSpanSink.rename(span, name, attributes)
            return
        span.name = name
        if span.updates is None:
            span.updates = [attributes]
        else:
            span.updates.append(attributes)

    @staticmethod
    def as_span(span: Any) -> Span:
        """
        A ``NonRecordingSpan`` with a pending span's context (made once), or the live span.
        """
        if type(span) is not _Pending:
            return span  # type: ignore[no-any-return]
        if span.span is None:
            span.span = NonRecordingSpan(span.context)
        return span.span

    # -- end ----------------------------------------------------------------------------------

    def end(self, span: Any, attributes: Mapping[str, Any], reason: str | None, end_ns: int) -> None:
        """
        The ``ReadableSpan`` that ``Span.end`` would hand to the processors, handed to them.
        """
        kind = type(span)
        if kind is not _Pending:
            if kind is not NonRecordingSpan:  # a live span from the API path
                ApiSpanSink.end(span, attributes, reason, end_ns)
            return
        events: Any = span.events
        status: Status | None = None
        if reason == FAILED:
            exception = Event("exception", self._event_attributes(exception_attributes(attributes)), end_ns)
            events = [*events, exception] if events else [exception]
            status = Status(StatusCode.ERROR, attributes.get(A.ERROR_MESSAGE, "")[:1024])
        limits = self._limits
        if events is None:
            events = ()
        elif limits.max_events is not None and len(events) > limits.max_events:
            bounded: Any = BoundedList(limits.max_events)  # keeps the newest, counts the dropped, as Span does
            for event in events:
                bounded.append(event)
            events = bounded
        finished = ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self._span_attributes(span, attributes),
            events=events,
            kind=span.kind,
            instrumentation_info=self._info,
            start_time=span.start_ns,
            end_time=end_ns,
            instrumentation_scope=self._scope,
            status=status or _UNSET,
        )
        self._multi.on_end(finished)

    def _span_attributes(self, span: _Pending, end: Mapping[str, Any]) -> Mapping[str, Any]:
        """
        What the live span's ``BoundedAttributes`` would hold: the sampler's attributes, then
        each ``set_attributes`` (a key set again moves to the end, as in the SDK's dict).
        """
        updates = span.updates
        merged = dict(span.attributes)
        if span.content:
            merged.update(span.content)
        for update in (*updates, end) if updates else (end,):
            for key in update:
                if key in merged:
                    del merged[key]
            merged.update(update)
        limits = self._limits
        if (
            not span.replay
            and limits.max_span_attribute_length is None
            and (limits.max_span_attributes is None or len(merged) <= limits.max_span_attributes)
        ):
            return merged  # nothing was ever dropped or cut: the dict only grew
        bounded = BoundedAttributes(  # a limit bites: replay the calls through the SDK's own type
            limits.max_span_attributes,
            {**span.attributes, **span.content} if span.content else span.attributes,
            immutable=False,
            max_value_len=limits.max_span_attribute_length,
        )
        for update in (*updates, end) if updates else (end,):
            bounded._set_items(update)
        bounded._immutable = True
        return bounded

    def _event_attributes(self, attributes: Mapping[str, Any]) -> Mapping[str, Any]:
        limits = self._limits
        if limits.max_attribute_length is None and (
            limits.max_event_attributes is None or len(attributes) <= limits.max_event_attributes
        ):
            return dict(attributes)
        return BoundedAttributes(
            limits.max_event_attributes, attributes, max_value_len=limits.max_attribute_length, immutable=True
        )

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """
        Ask the provider to export ended spans.
        """
        return self._api.force_flush(timeout_millis)
