"""
FinishedSpanSink: a run's span made once, finished, at the run's end, unless something asks for
the span itself; then it is the SDK's own span from that moment on.

The SDK's live ``Span`` costs most of a traced run (a lock, ``BoundedAttributes`` cleaning every
value in Python, start and end bookkeeping: ~27-38 us for an empty one, 51-65 us with lc_trace's
attributes, against 6-9 us to build a finished ``ReadableSpan`` and hand it to the processors).
lc_trace keeps its own run table and takes parents from run ids, so lc_trace itself needs no live
span while a run is open. At the start this sink does what ``Tracer.start_span`` does up to the
span object: the ids from the provider's id generator, the sampler's decision and trace state.
At the end it builds the ``ReadableSpan`` the live span would have produced and gives it to the
processors.

Anything else that can see the run's span sees a real one: where the span is asked for as an
object (made current by ``lc_trace.instrument()``, a parent handed to a processor's ``on_start``)
the pending span is *promoted*: the SDK's own ``Span`` is built with the state the live span
would have by then, and every later call goes to it. So user code that enriches the current span,
sets its status or records an exception talks to the SDK's span, with the SDK's rules, limits and
warnings, by construction.

Taken only where the processors, the sampler and the tracer are the SDK's own and unpatched
(:func:`selectable`; re-checked when the processors change), and where a limit could bite the
span ends through the SDK too. What it relies on in the SDK is listed in docs/decisions.md.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Mapping
from types import FunctionType
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    Event,
    ReadableSpan,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    Tracer,
    TracerProvider,
)
from opentelemetry.sdk.trace import sampling as sdk_sampling
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
from lc_trace._records import FAILED, Start
from lc_trace._spans._api import ApiSpanSink, exception_attributes

try:  # the SDK's own span metrics (OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED), SDK >= 1.39
    from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
except ImportError:  # pragma: no cover - older SDKs have no such metrics
    NoOpTracerMetrics = None  # type: ignore[assignment,misc]

__all__ = ["FinishedSpanSink", "selectable"]

_SDK_LOGGER = logging.getLogger(sdk_trace.__name__)  # the SDK's warnings for calls on an ended span come from here
_SdkSpan: Any = getattr(sdk_trace, "_Span", None)  # what Tracer.start_span builds

# -- what "the SDK's own, unpatched" means ----------------------------------------------------

_SDK_FILES = frozenset({sdk_trace.__file__, sdk_sampling.__file__})

# Every SDK function whose work the path stands in for: patched at class level (as APM agents
# patch), the agent expects to see lc_trace's calls, so the path is not taken.
_STOOD_IN_FOR = (
    (Tracer, "start_span"),
    (TracerProvider, "get_tracer"),
    (sdk_trace.Span, "__init__"),
    (sdk_trace.Span, "start"),
    (sdk_trace.Span, "end"),
    (sdk_trace.Span, "set_attributes"),
    (sdk_trace.Span, "add_event"),
    (sdk_trace.Span, "update_name"),
    (sdk_trace.Span, "set_status"),
    (sdk_trace.Span, "_readable_span"),
    (ReadableSpan, "__init__"),
    (SynchronousMultiSpanProcessor, "on_start"),
    (SynchronousMultiSpanProcessor, "on_end"),
    (ConcurrentMultiSpanProcessor, "on_start"),
    (ConcurrentMultiSpanProcessor, "on_end"),
    (ParentBased, "should_sample"),
    (StaticSampler, "should_sample"),
    (TraceIdRatioBased, "should_sample"),
)

# What the path calls with keywords: an SDK without one of them takes the API path (point 3 of
# the contract in docs/decisions.md: every SDK version the package allows works).
_SPAN_KEYWORDS = (
    "name",
    "context",
    "parent",
    "sampler",
    "resource",
    "attributes",
    "span_processor",
    "kind",
    "instrumentation_info",
    "limits",
    "instrumentation_scope",
)
_READABLE_KEYWORDS = (
    "name",
    "context",
    "parent",
    "resource",
    "attributes",
    "events",
    "kind",
    "instrumentation_info",
    "start_time",
    "end_time",
    "instrumentation_scope",
    "status",
)
_TRACER_ATTRIBUTES = (
    "sampler",
    "id_generator",
    "resource",
    "span_processor",
    "instrumentation_info",
    "_instrumentation_scope",
    "_span_limits",
)


def _stock(function: Any) -> bool:
    """
    A plain function defined in the SDK's own trace or sampling module, not a wrapper.
    """
    code = getattr(function, "__code__", None)
    return (
        type(function) is FunctionType
        and code is not None
        and code.co_filename in _SDK_FILES
        and not hasattr(function, "__wrapped__")
    )


def _accepts(function: Any, keywords: tuple[str, ...]) -> bool:
    """
    Whether *function* takes every one of *keywords*.
    """
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return all(name in parameters for name in keywords)


def _bounded_without_cleaning() -> bool:
    probe = BoundedAttributes(1, None, immutable=False)
    return isinstance(getattr(probe, "_dict", None), dict) and hasattr(probe, "_immutable")


# What this SDK version offers the path, looked at once (older SDKs lack some keywords).
_SDK_FITS = (
    _SdkSpan is not None
    and _accepts(sdk_trace.Span.__init__, _SPAN_KEYWORDS)
    and _accepts(ReadableSpan.__init__, _READABLE_KEYWORDS)
    and _bounded_without_cleaning()
)


def _sdk_is_stock() -> bool:
    """
    The SDK as shipped: every function the path stands in for unpatched, and every keyword it
    passes accepted.
    """
    return _SDK_FITS and all(_stock(getattr(owner, name, None)) for owner, name in _STOOD_IN_FOR)


_OWN_SAMPLERS = (StaticSampler, TraceIdRatioBased)
_PARENT_BASED = (ParentBased, ParentBasedTraceIdRatio)
_DELEGATES = (
    "_root",
    "_remote_parent_sampled",
    "_remote_parent_not_sampled",
    "_local_parent_sampled",
    "_local_parent_not_sampled",
)


def _known_sampler(sampler: Any) -> bool:
    """
    The SDK's samplers, composed only of each other: they read nothing of a parent but its span
    context and give a span exactly the attributes they were asked with. Any other sampler may
    look at the parent span object (``is_recording()``) or add attributes: the API path.
    """
    if "should_sample" in getattr(sampler, "__dict__", {}):
        return False
    if type(sampler) in _OWN_SAMPLERS:
        return True
    if type(sampler) in _PARENT_BASED:
        return all(_known_sampler(getattr(sampler, name, None)) for name in _DELEGATES)
    return False


def _fixed_decisions(sampler: Sampler) -> tuple[Decision, ...] | None:
    """
    For the SDK's fixed-decision samplers (``ALWAYS_ON``, ``ALWAYS_OFF``, and ``ParentBased``
    over those: the default ``parentbased_always_on``), the decision for a root, a remote parent
    sampled or not, a local parent sampled or not. Their answer depends on nothing else, and
    their trace state is the parent's: computing it skips the calls and the context they need.
    """
    if type(sampler) is StaticSampler:
        decision = getattr(sampler, "_decision", None)
        return (decision,) * 5 if isinstance(decision, Decision) else None
    if type(sampler) in _PARENT_BASED:
        delegates = [_fixed_decisions(getattr(sampler, name, None)) for name in _DELEGATES]  # type: ignore[arg-type]
        if all(d is not None for d in delegates):
            return tuple(d[0] for d in delegates)  # type: ignore[index]
    return None


# Processors known to do nothing at a span's start and while it ends: the SDK's own.
_QUIET = (SpanProcessor, BatchSpanProcessor, SimpleSpanProcessor)
_HOOKS = ("on_start", "_on_ending", "on_ending")
_NO_OP_HOOKS = frozenset(kind.__dict__[hook] for kind in _QUIET for hook in _HOOKS if hook in kind.__dict__)


def _quiet(processor: SpanProcessor) -> bool:
    """
    Whether *processor* ignores a span's start and ending: its class's hooks are the SDK's
    no-ops, and the instance was given none of its own.
    """
    own = getattr(processor, "__dict__", {})
    kind = type(processor)
    return all(hook not in own and (not hasattr(kind, hook) or getattr(kind, hook) in _NO_OP_HOOKS) for hook in _HOOKS)


def selectable(tracer: Any, tracer_provider: Any) -> bool:
    """
    Whether the finished-span path can stand in for *tracer*: the SDK's own provider and tracer,
    their functions unpatched and none replaced on the instances, no SDK span metrics, the
    processor list readable, and the SDK's keywords as this module passes them.
    """
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    if type(tracer) is not Tracer or type(provider) is not TracerProvider:
        return False  # OTEL_SDK_DISABLED gives a NoOpTracer; subclasses and other providers their own
    if "start_span" in vars(tracer) or "get_tracer" in vars(provider):
        return False  # replaced or wrapped on the instance
    if not all(hasattr(tracer, name) for name in _TRACER_ATTRIBUTES):
        return False
    metrics = getattr(tracer, "_tracer_metrics", None)
    if metrics is not None and (NoOpTracerMetrics is None or type(metrics) is not NoOpTracerMetrics):
        return False
    multi = tracer.span_processor
    return (
        type(multi) in (SynchronousMultiSpanProcessor, ConcurrentMultiSpanProcessor)
        and isinstance(getattr(multi, "_span_processors", None), tuple)
        and _sdk_is_stock()
    )


_UNSET = Status(StatusCode.UNSET)
_RANDOM = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)  # W3C level 2 flag, set by SDK >= 1.39
_FLAGS = {
    (sampled, random): TraceFlags((TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT) | (_RANDOM if random else 0))
    for sampled in (False, True)
    for random in (False, True)
}


class _EndsOnly(SpanProcessor):
    """
    The span processor of a promoted span: the processors saw its start already (they all ignore
    starts, or the path would not have been taken), so only its ending and end go on to them.
    """

    __slots__ = ("_multi",)

    def __init__(self, multi: SpanProcessor) -> None:
        self._multi = multi

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        """
        Nothing: the processors were asked at the run's start.
        """

    def _on_ending(self, span: Any) -> None:
        ending = getattr(self._multi, "_on_ending", None)
        if ending is not None:
            ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        """
        Hand the ended span to the provider's processors.
        """
        self._multi.on_end(span)


class _Pending:
    """
    An open run's span on the finished-span path: its context exists from the start (children,
    log lines); the rest waits for the end, unless the span is promoted to the SDK's own.
    """

    __slots__ = (
        "attributes",
        "content",
        "context",
        "ended",
        "events",
        "finished",
        "kind",
        "live",
        "name",
        "parent",
        "resource",
        "start_ns",
        "updates",
        "view",
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
    ) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes  # the live span starts with these
        self.content: Mapping[str, Any] | None = None  # more start attributes, after these
        self.start_ns = start_ns
        self.resource = resource
        self.events: list[tuple[str, dict[str, Any], int]] | None = None  # add_event calls, in order
        self.updates: list[Mapping[str, Any]] | None = None  # set_attributes calls before the end
        self.view: NonRecordingSpan | None = None  # what the SDK's samplers are shown as the parent
        self.live: Any = None  # the SDK's span, once promoted: every later call goes to it
        self.ended = False
        self.finished: ReadableSpan | None = None

    def get_span_context(self) -> SpanContext:
        """
        The span context, as a live span would report it.
        """
        return self.context


class FinishedSpanSink:
    """
    The span sink that makes one finished ``ReadableSpan`` per run at its end, or promotes the
    run's span to the SDK's own where anything asks for it.
    """

    __slots__ = (
        "_api",
        "_checked",
        "_enabled",
        "_ids",
        "_fast",
        "_info",
        "_limits",
        "_lock",
        "_multi",
        "_quiet",
        "_sampler",
        "_scope",
        "_static",
        "_tracer",
    )

    def __init__(self, tracer: Any, tracer_provider: Any) -> None:
        self._tracer = tracer
        self._api = ApiSpanSink(tracer_provider, tracer)
        self._multi: SynchronousMultiSpanProcessor = tracer.span_processor
        self._ids = tracer.id_generator
        self._limits = tracer._span_limits
        self._scope = tracer._instrumentation_scope
        self._info = tracer.instrumentation_info
        self._enabled = getattr(tracer, "_is_enabled", None)
        self._lock = threading.Lock()  # what the SDK's per-span lock guards: calls racing the end
        self._checked: tuple[SpanProcessor, ...] | None = None
        self._sampler: Any = None
        self._quiet = False  # every processor ignores starts and endings, the SDK's functions its own
        self._fast = False  # ... and the sampler is the SDK's and the tracer's start_span its own
        self._static: tuple[Decision, ...] | None = None
        self._refresh()

    @property
    def provider(self) -> Any:
        """
        The provider this sink was given (None: the global one).
        """
        return self._api.provider

    def _refresh(self) -> None:
        """
        Look again at what the choice depends on: done when the SDK has replaced its tuple of
        processors (it does on every add) or the provider's sampler was replaced.
        """
        tracer = self._tracer
        processors = self._multi._span_processors
        sampler = tracer.sampler
        known = _known_sampler(sampler)
        self._quiet = all(_quiet(p) for p in processors) and _sdk_is_stock()
        self._fast = self._quiet and known and "start_span" not in vars(tracer)
        self._static = _fixed_decisions(sampler) if known else None
        self._checked, self._sampler = processors, sampler

    # -- start --------------------------------------------------------------------------------

    def start(self, record: Start, parent: Any, start_ns: int) -> Any:
        """
        What ``Tracer.start_span`` would do, short of the live span: a ``_Pending`` for a
        recorded span, a ``NonRecordingSpan`` for one the sampler dropped. The API path instead
        when a processor needs the live span, the sampler is not the SDK's, or the tracer is off.
        """
        tracer = self._tracer
        if self._multi._span_processors is not self._checked or tracer.sampler is not self._sampler:
            self._refresh()
        if not self._fast or (self._enabled is not None and not self._enabled()):
            return self._api.start(record, self.as_span(parent) if parent is not None else None, start_ns)
        attributes = record.attributes
        content = record.content
        name = record.span_name
        kind = SpanKind.CLIENT if record.client else SpanKind.INTERNAL
        ids = self._ids
        parent_context: SpanContext | None = (
            parent.get_span_context() if parent is not None else trace.get_current_span().get_span_context()
        )
        if parent_context is None or not parent_context.is_valid:
            parent_context = None
            trace_id = ids.generate_trace_id()
        else:
            trace_id = parent_context.trace_id
        static = self._static
        decision: Any
        if static is not None:  # the SDK's fixed-decision samplers: their answer, without the call
            if parent_context is None:
                decision, trace_state = static[0], None
            else:
                sampled = parent_context.trace_flags.sampled
                decision = static[(1 if sampled else 2) if parent_context.is_remote else (3 if sampled else 4)]
                trace_state = parent_context.trace_state
        else:  # the SDK's other samplers read the parent's span context only
            context = trace.set_span_in_context(self._view(parent)) if parent is not None else None
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
        pending = _Pending(name, span_context, parent_context, kind, attributes, start_ns, tracer.resource)
        if content:  # kept apart until the end: no merged copy while the run is open
            pending.content = content
        return pending

    @staticmethod
    def _view(parent: Any) -> Span:
        """
        The parent as the SDK's samplers are shown it (they read its span context only).
        """
        if type(parent) is not _Pending:
            return parent  # type: ignore[no-any-return]
        if parent.live is not None:
            return parent.live  # type: ignore[no-any-return]
        if parent.view is None:
            parent.view = NonRecordingSpan(parent.context)
        return parent.view

    # -- while open ---------------------------------------------------------------------------

    def event(self, span: Any, name: str, attributes: Mapping[str, Any], timestamp_ns: int) -> None:
        """
        Keep an event for the end; on the SDK's span once promoted, refused once ended.
        """
        if type(span) is not _Pending:
            span.add_event(name, attributes, timestamp=timestamp_ns)
            return
        with self._lock:
            live = span.live
            if live is None and not span.ended:
                if span.events is None:
                    span.events = [(name, dict(attributes), timestamp_ns)]
                else:
                    span.events.append((name, dict(attributes), timestamp_ns))
                return
        if live is None:
            _SDK_LOGGER.warning("Tried calling %s on an ended span.", "_add_event")
            return
        live.add_event(name, attributes, timestamp=timestamp_ns)

    def rename(self, span: Any, name: str, attributes: Mapping[str, Any]) -> None:
        """
        A new name, and attributes to apply at the end in the order they came.
        """
        if type(span) is not _Pending:
            ApiSpanSink.rename(span, name, attributes)
            return
        with self._lock:
            live = span.live
            if live is None and not span.ended:
                span.name = name
                if span.updates is None:
                    span.updates = [attributes]
                else:
                    span.updates.append(attributes)
                return
        if live is None:
            _SDK_LOGGER.warning("Tried calling %s on an ended span.", "update_name")
            _SDK_LOGGER.warning("Setting attribute on ended span.")
            return
        ApiSpanSink.rename(live, name, attributes)

    def as_span(self, span: Any) -> Span:
        """
        The run's span as an object other code can use: the SDK's own span (a pending span is
        promoted the first time it is asked for), or what the API path or the sampler gave.
        """
        if type(span) is not _Pending:
            return span  # type: ignore[no-any-return]
        live = span.live
        if live is None:
            with self._lock:
                live = span.live if span.live is not None else self._promote(span)
        return live  # type: ignore[no-any-return]

    def _promote(self, span: _Pending) -> Any:
        """
        The SDK's span with the state the live span would have by now (the lock is held): built
        as ``Tracer.start_span`` builds it, started at the run's start, the calls so far replayed.
        A span promoted after its end is the SDK's ended span: it refuses changes, as that does.
        """
        start = {**span.attributes, **span.content} if span.content else span.attributes
        finished = span.finished
        live = _SdkSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            sampler=self._tracer.sampler,
            resource=span.resource,
            attributes=finished.attributes if finished is not None else start,
            span_processor=_EndsOnly(self._multi) if finished is None else SpanProcessor(),
            kind=span.kind,
            instrumentation_info=self._info,
            limits=self._limits,
            instrumentation_scope=self._scope,
        )
        live.start(start_time=span.start_ns)
        if finished is not None:
            for event in finished.events:
                live.add_event(event.name, event.attributes, timestamp=event.timestamp)
            if finished.status.status_code is not StatusCode.UNSET:
                live.set_status(finished.status)
            live.end(end_time=finished.end_time)
        else:
            for update in span.updates or ():
                live.set_attributes(update)
            for name, attributes, timestamp in span.events or ():
                live.add_event(name, attributes, timestamp=timestamp)
            span.events = span.updates = None
        span.live = live
        return live

    # -- end ----------------------------------------------------------------------------------

    def end(self, span: Any, attributes: Mapping[str, Any], reason: str | None, end_ns: int) -> None:
        """
        The ``ReadableSpan`` that ``Span.end`` would hand to the processors, handed to them; the
        SDK's own end where the span was promoted, a limit could bite, or a processor added
        since the start wants to see the span end.
        """
        kind = type(span)
        if kind is not _Pending:
            if kind is not NonRecordingSpan:  # a live span from the API path
                ApiSpanSink.end(span, attributes, reason, end_ns)
            return
        if self._multi._span_processors is not self._checked:
            self._refresh()
        lock = self._lock
        lock.acquire()  # (try/finally: a third of a with-statement's cost, on every run)
        try:
            live = span.live
            if live is None:
                if span.ended:
                    _SDK_LOGGER.warning("Calling end() on an ended span.")
                    return
                merged = self._merged(span, attributes) if self._quiet else None
                if merged is None:
                    live = self._promote(span)
                else:
                    span.ended = True  # from here on, calls are refused and the events no longer change
        finally:
            lock.release()
        if live is not None:
            ApiSpanSink.end(live, attributes, reason, end_ns)
            return
        events = span.events
        built: Any = ()
        status = _UNSET
        if events or reason == FAILED:
            built = [self._event(*event) for event in events] if events else []
            if reason == FAILED:
                built.append(self._event("exception", exception_attributes(attributes), end_ns))
                status = Status(StatusCode.ERROR, attributes.get(A.ERROR_MESSAGE, "")[:1024])
            max_events = self._limits.max_events
            if max_events is not None and len(built) > max_events:
                built = BoundedList.from_seq(max_events, built)  # keeps the newest, counts the dropped, as Span does
        finished = ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=merged,
            events=built,
            kind=span.kind,
            instrumentation_info=self._info,
            start_time=span.start_ns,
            end_time=end_ns,
            instrumentation_scope=self._scope,
            status=status,
        )
        span.finished = finished
        self._multi.on_end(finished)

    def _merged(self, span: _Pending, end: Mapping[str, Any]) -> dict[str, Any] | None:
        """
        What the live span's ``BoundedAttributes`` would hold, where no limit can bite: the start
        attributes, then each ``set_attributes`` (a key set again moves to the end, as in the
        SDK's dict). None where a limit could bite: then the SDK's span does the work.
        """
        limits = self._limits
        if limits.max_span_attribute_length is not None:
            return None
        merged = dict(span.attributes)
        if span.content:
            merged.update(span.content)
        updates = span.updates
        for update in (*updates, end) if updates else (end,):
            for key in update:
                if key in merged:
                    del merged[key]
            merged.update(update)
        if limits.max_span_attributes is not None and len(merged) > limits.max_span_attributes:
            return None
        return merged

    def _event(self, name: str, attributes: dict[str, Any], timestamp_ns: int) -> Event:
        """
        The event ``Span.add_event`` makes: its attributes (a dict this takes over) in the SDK's
        bounded, immutable mapping, filled without the cleaning where no limit can bite
        (lc_trace's values are clean: the twin in the suite compares their types).
        """
        limits = self._limits
        count = limits.max_event_attributes
        if limits.max_attribute_length is None and (count is None or len(attributes) <= count):
            bounded = BoundedAttributes(count, None, immutable=True)
            bounded._dict = attributes
        else:
            bounded = BoundedAttributes(count, attributes, immutable=True, max_value_len=limits.max_attribute_length)
        return Event(name, bounded, timestamp_ns)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """
        Ask the provider to export ended spans.
        """
        return self._api.force_flush(timeout_millis)
