"""
Both span paths at once: every handler a test builds on an SDK provider sends each run through
the finished-span path (what the test asserts on) and, in step, through the API path on a twin
provider with the same sampler, resource and limits, whose id generator replays the ids the
first one drew. After the test the two exports must be the same, OTLP protobuf field by field
and attribute values type by type (tests/conftest.py, ``_both_span_paths_agree``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import _encode_span
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Span, SpanContext

from lc_trace._finished_spans import FinishedSpanSink, _Pending
from lc_trace._mapping import Start
from lc_trace._span_sink import ApiSpanSink, SpanSink, lc_trace_tracer


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
        self.finished: set[tuple[int, int]] = (
            set()
        )  # spans the finished path made (others were API spans on both sides)
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
            other = self.waiting[1 - index].pop(key, None)
            if other is None:
                self.waiting[index][key] = span
                return
        main, twin = (span, other) if index == 0 else (other, span)
        if key not in self.finished:
            return
        self.problems.extend(compare([main], [twin]))
        self.compared += 1

    def differences(self) -> list[str]:
        """How the two exports differ (nothing, when the paths are equivalent)."""
        if self.stopped:  # the test shut its provider down: the twin's export is not comparable
            return []
        main, twin = ({k: s for k, s in side.items() if k in self.finished} for side in self.waiting)
        unpaired = [f"{s.name}: exported by the finished path only" for s in main.values()]
        unpaired += [f"{s.name}: exported by the API path only" for s in twin.values()]
        return self.problems + unpaired


class _Twins:
    """Per SDK provider: the twin provider the API path runs on, and the matcher of both exports."""

    def __init__(self, provider: TracerProvider, tracer: Any) -> None:
        self.matcher = _Matcher()
        provider.add_span_processor(SimpleSpanProcessor(self.matcher.side(0)))
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
        self.twin_provider.add_span_processor(SimpleSpanProcessor(self.matcher.side(1)))
        self.lock = threading.Lock()

    def differences(self) -> list[str]:
        return self.matcher.differences()


class TwinSink:
    """A span sink that drives the chosen sink and the API path side by side."""

    def __init__(self, main: FinishedSpanSink, twins: _Twins) -> None:
        self.main = main
        main._ids = twins.recording
        self.twin = ApiSpanSink(twins.twin_provider, lc_trace_tracer(twins.twin_provider))
        self._lock = twins.lock
        self._finished = twins.matcher.finished

    @property
    def provider(self) -> Any:
        return self.main.provider

    def start(self, record: Start, parent: _Pair | Span | None, start_ns: int) -> _Pair:
        if parent is not None and not isinstance(parent, _Pair):  # a remote parent (a traceparent): both take it
            parent = _Pair(parent, parent)
        with self._lock:  # the twin replays the ids the main path just drew
            main = self.main.start(record, parent.main if parent else None, start_ns)
            twin = self.twin.start(record, self.twin.as_span(parent.twin) if parent else None, start_ns)
        if type(main) is _Pending:
            context = main.get_span_context()
            self._finished.add((context.trace_id, context.span_id))
        return _Pair(main, twin)

    def end(self, span: _Pair, attributes: Mapping[str, Any], reason: str | None, end_ns: int) -> None:
        self.main.end(span.main, attributes, reason, end_ns)
        self.twin.end(span.twin, attributes, reason, end_ns)

    def event(self, span: _Pair, name: str, attributes: Mapping[str, Any], timestamp_ns: int) -> None:
        self.main.event(span.main, name, attributes, timestamp_ns)
        self.twin.event(span.twin, name, attributes, timestamp_ns)

    def rename(self, span: _Pair, name: str, attributes: Mapping[str, Any]) -> None:
        self.main.rename(span.main, name, attributes)
        self.twin.rename(span.twin, name, attributes)

    def as_span(self, span: _Pair) -> Span:
        return self.main.as_span(span.main)

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
    """``span_sink`` that twins every finished-span sink on an explicit SDK provider."""

    def choose(tracer_provider: Any = None) -> SpanSink:
        sink = chooser(tracer_provider)
        if isinstance(sink, FinishedSpanSink) and isinstance(tracer_provider, TracerProvider):
            twins = made.get(id(tracer_provider))
            if twins is None:
                twins = made[id(tracer_provider)] = _Twins(tracer_provider, sink._tracer)
            return TwinSink(sink, twins)
        return sink

    return choose
