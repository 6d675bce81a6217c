"""
Both span paths at once: every handler a test builds on an SDK provider (given, or the global
one) sends each run through the chosen sink (what the test asserts on) and, in step, through the
API path on a twin provider with the same sampler, resource and limits, whose id generator
replays the ids the first one drew, and with replicas of the test's own processors. What user
code does to a run's span (the current span under ``instrument()``, a parent a processor reads)
is done to the twin's span too, and an event racing a run's end from another thread reaches both
paths in the same order. After the test the two exports must be the same, OTLP protobuf field by
field and attribute values type by type, and no span may have changed after it was handed to the
processors (tests/conftest.py, ``_both_span_paths_agree``).
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import _encode_span
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Span, SpanContext

from lc_trace._records import Start
from lc_trace._spans._api import ApiSpanSink, SpanSink, lc_trace_tracer
from lc_trace._spans._finished import FinishedSpanSink, _Pending, _quiet


class _Recording(IdGenerator):
    """The first path's generator, noting each id it hands out for the twin to replay."""

    def __init__(self, inner: IdGenerator, tape: deque[tuple[str, int]]) -> None:
        self._inner, self._tape = inner, tape

    def generate_trace_id(self) -> int:
        value = self._inner.generate_trace_id()
        self._tape.append(("trace", value))
        return value

    def generate_span_id(self) -> int:
        value = self._inner.generate_span_id()
        self._tape.append(("span", value))
        return value

    def is_trace_id_random(self) -> bool:
        return bool(getattr(self._inner, "is_trace_id_random", lambda: False)())


class _Replaying(IdGenerator):
    def __init__(self, recording: _Recording, tape: deque[tuple[str, int]]) -> None:
        self._recording, self._tape = recording, tape

    def _next(self, kind: str) -> int:
        got, value = self._tape.popleft()
        assert kind == got, f"the API path asked for a {kind} id where the finished path drew a {got} id"
        return value

    def generate_trace_id(self) -> int:
        return self._next("trace")

    def generate_span_id(self) -> int:
        return self._next("span")

    def is_trace_id_random(self) -> bool:
        return self._recording.is_trace_id_random()


class _Pair:
    __slots__ = ("main", "twin")

    def __init__(self, main: Any, twin: Any) -> None:
        self.main, self.twin = main, twin

    def get_span_context(self) -> SpanContext:
        context: SpanContext = self.main.get_span_context()
        return context


class _Matcher:
    """Pairs each span of one path with its twin as they are exported, compares, forgets both."""

    def __init__(self) -> None:
        self.waiting: tuple[dict[tuple[int, int], ReadableSpan], dict[tuple[int, int], ReadableSpan]] = ({}, {})
        self.problems: list[str] = []
        self.compared_keys: set[tuple[int, int]] = set()  # spans to compare (every span when all compare)
        self.compare_all = True  # False once a test processor could not be replicated on the twin
        self.at_end: dict[tuple[int, int], Any] = {}  # what on_end saw of a span not yet paired
        self.recent: deque[tuple[ReadableSpan, Any]] = deque(maxlen=64)  # paired, checked again after the test
        self.compared = 0
        self.stopped = False
        self._lock = threading.Lock()

    def side(self, index: int) -> SpanExporter:
        matcher = self

        class Side(SpanExporter):
            def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
                for span in spans:
                    if _ours(span):
                        matcher.arrived(index, span)
                return SpanExportResult.SUCCESS

            def shutdown(self) -> None:
                matcher.stopped = True

        return Side()

    def arrived(self, index: int, span: ReadableSpan) -> None:
        key = _key(span)
        with self._lock:
            if index == 0:
                self.at_end[key] = _encode_span(span)
            other = self.waiting[1 - index].pop(key, None)
            if other is None:
                self.waiting[index][key] = span
                return
            seen = self.at_end.pop(key)
            listed = key in self.compared_keys
            self.compared_keys.discard(key)
        main, twin = (span, other) if index == 0 else (other, span)
        if _encode_span(main) != seen:
            self.problems.append(f"{main.name}: changed after it was handed to the processors")
        self.recent.append((main, seen))
        if not self.compare_all and not listed:
            return
        self.problems.extend(compare([main], [twin]))
        self.compared += 1

    def differences(self) -> list[str]:
        """How the two exports differ (nothing, when the paths are equivalent)."""
        changed = [
            f"{s.name}: changed after it was handed to the processors"
            for s, seen in self.recent
            if _encode_span(s) != seen
        ]
        changed += [
            f"{s.name}: changed after it was handed to the processors"
            for key, s in self.waiting[0].items()
            if _encode_span(s) != self.at_end[key]
        ]
        if self.stopped:  # the test shut its provider down: the twin's export is not comparable
            return changed
        main, twin = (
            {k: s for k, s in side.items() if self.compare_all or k in self.compared_keys} for side in self.waiting
        )
        unpaired = [f"{s.name}: exported by the chosen path only" for s in main.values()]
        unpaired += [f"{s.name}: exported by the API path only" for s in twin.values()]
        return changed + self.problems + unpaired


class _Replicas(SpanProcessor):
    """
    The twin provider's copies of the test's own processors that act on spans (anything but the
    SDK's quiet ones, whose exports the matcher stands for), made as the test adds them.
    """

    def __init__(self, main: TracerProvider, matcher: _Matcher, skip: SpanProcessor) -> None:
        self._main, self._matcher, self._skip = main, matcher, skip
        self._seen: set[int] = set()
        self._replicas: list[SpanProcessor] = []

    def _sync(self) -> list[SpanProcessor]:
        for processor in self._main._active_span_processor._span_processors:
            if id(processor) in self._seen:
                continue
            self._seen.add(id(processor))
            if processor is self._skip or (_quiet(processor) and type(processor) in _SDK_PROCESSORS):
                continue
            try:
                self._replicas.append(copy.deepcopy(processor))
            except Exception:  # a processor holding a lock or a socket: compare the chosen path's own spans only
                self._matcher.compare_all = False
        return self._replicas

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        for replica in self._sync():
            replica.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Any) -> None:
        for replica in self._sync():
            ending = getattr(replica, "_on_ending", None)
            if ending is not None:
                ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        for replica in self._sync():
            replica.on_end(span)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # (SDK 1.30's base class returns None, which its provider reads as a timeout)


_SDK_PROCESSORS = (SpanProcessor, SimpleSpanProcessor, BatchSpanProcessor)


class _Twins:
    """Per SDK provider: the twin provider the API path runs on, and the matcher of both exports."""

    def __init__(self, provider: TracerProvider, tracer: Any) -> None:
        self.matcher = _Matcher()
        side = SimpleSpanProcessor(self.matcher.side(0))
        provider.add_span_processor(side)
        tape: deque[tuple[str, int]] = deque()
        self.recording = _Recording(tracer.id_generator, tape)
        tracer.id_generator = self.recording
        self.twin_provider = TracerProvider(
            sampler=provider.sampler,
            resource=provider.resource,
            span_limits=provider._span_limits,
            id_generator=_Replaying(self.recording, tape),
            shutdown_on_exit=False,
        )
        self.twin_provider.add_span_processor(_Replicas(provider, self.matcher, side))
        self.twin_provider.add_span_processor(SimpleSpanProcessor(self.matcher.side(1)))
        self.lock = threading.RLock()  # a pair of calls (chosen path, twin) is atomic against other threads

    def differences(self) -> list[str]:
        return self.matcher.differences()


_INSIDE = threading.local()  # set while TwinSink drives both paths: lc_trace's own calls are not user calls


def _mirrored(live: Any, twin: Any, lock: threading.RLock) -> None:
    """
    Make what user code does to the chosen path's span happen to the twin's too (the same
    timestamps), in one step against other threads. Instance attributes on the SDK's own span:
    its type and every answer it gives stay the SDK's.
    """
    if not isinstance(live, SdkSpan) or "_twin" in vars(live):
        return
    live._twin = twin

    def wrap(name: str) -> None:
        own = getattr(live, name)
        other = getattr(twin, name)

        def both(*args: Any, **kwargs: Any) -> Any:
            if getattr(_INSIDE, "on", False):
                return own(*args, **kwargs)
            if name == "add_event" and kwargs.get("timestamp") is None and len(args) < 3:
                kwargs["timestamp"] = time.time_ns()
            if name == "end" and kwargs.get("end_time") is None and not args:
                kwargs["end_time"] = time.time_ns()
            with lock:
                result = own(*args, **kwargs)
                other(*args, **kwargs)
            return result

        setattr(live, name, both)

    # record_exception is the SDK's add_event underneath: mirrored there, with its stack trace text
    for name in ("set_attribute", "set_attributes", "add_event", "add_link", "update_name", "set_status", "end"):
        wrap(name)


class TwinSink:
    """A span sink that drives the chosen sink and the API path side by side."""

    def __init__(self, main: Any, twins: _Twins) -> None:
        self.main = main
        if isinstance(main, FinishedSpanSink):
            main._ids = twins.recording
        self.twin = ApiSpanSink(twins.twin_provider, lc_trace_tracer(twins.twin_provider))
        self._lock = twins.lock
        self._matcher = twins.matcher

    @property
    def provider(self) -> Any:
        return self.main.provider

    def start(self, record: Start, parent: _Pair | Span | None, start_ns: int) -> _Pair:
        if parent is not None and not isinstance(parent, _Pair):  # a remote parent (a traceparent): both take it
            parent = _Pair(parent, parent)
        with self._lock:  # the twin replays the ids the main path just drew
            _INSIDE.on = True
            try:
                main = self.main.start(record, parent.main if parent else None, start_ns)
                if parent is not None:
                    self._mirror(parent)  # the chosen path may have promoted it for a processor to read
            finally:
                _INSIDE.on = False
            twin = self.twin.start(record, self.twin.as_span(parent.twin) if parent else None, start_ns)
        if type(main) is _Pending:
            context = main.get_span_context()
            self._matcher.compared_keys.add((context.trace_id, context.span_id))
        return _Pair(main, twin)

    def _both(self, call: str, span: _Pair, *args: Any) -> None:
        with self._lock:
            _INSIDE.on = True
            try:
                getattr(self.main, call)(span.main, *args)
            finally:
                _INSIDE.on = False
            getattr(self.twin, call)(span.twin, *args)

    def end(self, span: _Pair, attributes: Mapping[str, Any], reason: str | None, end_ns: int) -> None:
        self._both("end", span, attributes, reason, end_ns)

    def event(self, span: _Pair, name: str, attributes: Mapping[str, Any], timestamp_ns: int) -> None:
        self._both("event", span, name, attributes, timestamp_ns)

    def rename(self, span: _Pair, name: str, attributes: Mapping[str, Any]) -> None:
        self._both("rename", span, name, attributes)

    def as_span(self, span: _Pair) -> Span:
        with self._lock:
            _INSIDE.on = True
            try:
                live = self.main.as_span(span.main)
            finally:
                _INSIDE.on = False
            _mirrored(live, span.twin, self._lock)
        return live

    def _mirror(self, pair: _Pair) -> None:
        main = pair.main
        live = main.live if type(main) is _Pending else main
        if live is not None:
            _mirrored(live, pair.twin, self._lock)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.main.force_flush(timeout_millis) and self.twin.force_flush(timeout_millis)


def _ours(span: ReadableSpan) -> bool:
    return span.instrumentation_scope is not None and span.instrumentation_scope.name == "lc_trace"


def _key(span: ReadableSpan) -> tuple[int, int]:
    return (span.context.trace_id, span.context.span_id)


def _python_view(span: ReadableSpan) -> dict[str, Any]:
    """What a Python exporter reads beyond the protobuf: value types (a tuple is not a list)."""
    return {
        "attributes": [(k, type(v).__name__, v) for k, v in span.attributes.items()],
        "events": [(e.name, e.timestamp, dict(e.attributes or {}), e.dropped_attributes) for e in span.events],
        "resource": span.resource.attributes,
        "scope": span.instrumentation_scope,
        "status": (span.status.status_code, span.status.description),
        "flags": span.context.trace_flags,
        "trace_state": span.context.trace_state.to_header(),
        "parent": span.parent,
    }


def compare(main: list[ReadableSpan], twin: list[ReadableSpan]) -> list[str]:
    """Every difference between two exports of the same runs, span by span."""
    problems: list[str] = []
    if sorted(map(_key, main)) != sorted(map(_key, twin)):
        return [f"span ids differ: finished path {len(main)} spans, API path {len(twin)}"]
    for a, b in zip(sorted(main, key=_key), sorted(twin, key=_key), strict=True):
        pa, pb = _encode_span(a), _encode_span(b)
        if pa != pb:
            problems.append(f"{a.name}: OTLP differs:\n  finished {MessageToDict(pa)}\n  api      {MessageToDict(pb)}")
        va, vb = _python_view(a), _python_view(b)
        if va != vb:
            problems.append(f"{a.name}: ReadableSpan differs:\n  finished {va}\n  api      {vb}")
    return problems


def twin_chooser(chooser: Callable[..., SpanSink], made: dict[int, _Twins]) -> Callable[..., SpanSink]:
    """``span_sink`` that twins every sink on an SDK provider, given or global."""

    def choose(tracer_provider: Any = None, **options: Any) -> SpanSink:
        sink = chooser(tracer_provider, **options)
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        if type(provider) is TracerProvider and hasattr(sink, "_tracer") and hasattr(sink._tracer, "id_generator"):
            twins = made.get(id(provider))
            if twins is None:
                twins = made[id(provider)] = _Twins(provider, sink._tracer)
            else:  # another tracer of the same provider draws from the same tape
                sink._tracer.id_generator = twins.recording
            return TwinSink(sink, twins)
        return sink

    return choose
