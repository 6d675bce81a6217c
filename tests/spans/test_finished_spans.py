"""
The finished-span path: taken exactly where it is equivalent to the API path, and the API path
everywhere else. (That both paths export the same spans is checked after every test of the
suite, by the twin in tests/twin.py; the tests here pin which path each kind of provider takes,
and run scenarios whose equivalence is most at risk: limits, samplers, events, errors.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import dispatch_custom_event
from langchain_core.runnables import RunnableLambda
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanKind, TraceState

from lc_trace import TraceHandler
from lc_trace._records import Start
from lc_trace._spans import span_sink
from lc_trace._spans._api import ApiSpanSink
from lc_trace._spans._finished import FinishedSpanSink, _Pending
from tests.capture.test_config import fresh_global  # noqa: F401  (a fixture)
from tests.conftest import flower_chain, spans_by_name

START = Start("chain", "step", "step", False, {"langchain.run.type": "chain"})


def provider_with(exporter: InMemorySpanExporter, **kwargs: Any) -> TracerProvider:
    provider = TracerProvider(**kwargs)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


class StartWatcher(SpanProcessor):
    """A processor that needs the live span at its start (as span-enriching processors do)."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        self.started.append(span.name)
        span.set_attribute("watched", True)


class TestWhichPath:
    def test_sdk_provider_with_the_sdk_processors_takes_the_finished_path(self):
        """An SDK provider whose processors are the SDK's batch and simple ones: finished spans."""
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
        provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        sink = span_sink(provider)
        assert FinishedSpanSink is type(sink)
        assert _Pending is type(sink.start(START, None, 1))

    def test_a_processor_that_needs_on_start_takes_the_api_path_from_when_it_is_added(self):
        """Adding a processor with an on_start switches later spans to live spans; open ones end as they began."""
        exporter = InMemorySpanExporter()
        provider = provider_with(exporter)
        sink = span_sink(provider)
        before = sink.start(START, None, 1)
        watcher = StartWatcher()
        provider.add_span_processor(watcher)
        after = sink.start(START, before, 2)
        assert _Pending is type(before)
        assert isinstance(after, Span)
        assert before.get_span_context().span_id == after.parent.span_id
        sink.end(after, {}, None, 3)
        sink.end(before, {}, None, 4)
        assert ["step"] == watcher.started
        assert [True, None] == [s.attributes.get("watched") for s in exporter.get_finished_spans()]

    def test_handler_with_a_start_processor_calls_it_for_every_run(self, log_path):
        """Through a handler: a processor with on_start sees every run start, as with the API."""
        exporter = InMemorySpanExporter()
        provider = provider_with(exporter)
        watcher = StartWatcher()
        provider.add_span_processor(watcher)
        handler = TraceHandler(tracer_provider=provider, log_path=log_path)
        flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
        handler.close()
        assert 4 == len(watcher.started)
        assert all(s.attributes["watched"] for s in exporter.get_finished_spans())

    def test_sdk_disabled_takes_the_api_path(self, monkeypatch, log_path):
        """OTEL_SDK_DISABLED=true: the provider hands out no-op tracers; lc_trace uses the API and logs on."""
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        exporter = InMemorySpanExporter()
        provider = provider_with(exporter)
        assert ApiSpanSink is type(span_sink(provider))
        handler = TraceHandler(tracer_provider=provider, log_path=log_path)
        flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
        handler.close()
        assert () == exporter.get_finished_spans()
        assert log_path.read_text().count('"trace.id"') == 8

    def test_non_sdk_providers_take_the_api_path(self):
        """The API's no-op provider, or any provider that is not the SDK's: the API path."""
        assert ApiSpanSink is type(span_sink(trace.NoOpTracerProvider()))

    def test_sdk_span_metrics_take_the_api_path(self, monkeypatch):
        """With the SDK's own span metrics on, its tracer counts live spans: the API path keeps them right."""
        pytest.importorskip("opentelemetry.sdk.trace._tracer_metrics", reason="this SDK has no span metrics")
        monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
        assert ApiSpanSink is type(span_sink(TracerProvider()))

    def test_a_disabled_tracer_gets_non_recording_spans(self):
        """A tracer turned off by the provider's configurator records nothing, as start_span does."""
        sdk = pytest.importorskip("opentelemetry.sdk.trace")
        if not hasattr(sdk, "_disable_tracer_configurator"):
            pytest.skip("this SDK has no tracer configurator")
        _disable_tracer_configurator = sdk._disable_tracer_configurator

        exporter = InMemorySpanExporter()
        provider = provider_with(exporter)
        sink = span_sink(provider)
        provider._set_tracer_configurator(tracer_configurator=_disable_tracer_configurator)
        span = sink.start(START, None, 1)
        assert not span.is_recording()
        sink.end(span, {}, None, 2)
        assert () == exporter.get_finished_spans()

    @pytest.mark.usefixtures("fresh_global")
    def test_the_global_provider_is_used_when_none_is_given(self):
        """With no provider given, the global SDK provider is the one that decides."""
        trace.set_tracer_provider(TracerProvider())
        assert FinishedSpanSink is type(span_sink(None))


class TestSampling:
    def test_parent_based_ratio_keeps_or_drops_whole_traces(self, make_handler, tracing):
        """ParentBased(ratio 0.5): some traces kept, some dropped, never part of one."""
        provider = provider_with(exporter := InMemorySpanExporter(), sampler=ParentBased(TraceIdRatioBased(0.5)))
        handler = make_handler(tracer_provider=provider)
        for _ in range(40):
            flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
        by_trace: dict[int, int] = {}
        for span in exporter.get_finished_spans():
            by_trace[span.context.trace_id] = by_trace.get(span.context.trace_id, 0) + 1
        assert 0 < len(by_trace) < 40
        assert {4} == set(by_trace.values())
        lines = handler.flush() and log_path_lines(handler)
        assert 40 * 8 == len(lines)  # sampled out or not, every event is logged with its ids

    def test_a_dropped_root_gives_non_recording_children(self):
        """A root the sampler drops is a NonRecordingSpan; its children follow it (ParentBased)."""
        sink = span_sink(TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0))))
        root = sink.start(START, None, 1)
        child = sink.start(START, root, 2)
        assert NonRecordingSpan is type(root) is type(child)
        assert root.get_span_context().trace_id == child.get_span_context().trace_id
        assert not child.get_span_context().trace_flags.sampled

    def test_a_custom_samplers_attributes_and_trace_state_are_honoured(self, make_handler):
        """A sampler may add attributes (a list becomes a tuple, as the SDK stores it) and set trace state."""

        class Tagging(Sampler):
            def should_sample(
                self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None
            ):
                added = {**(attributes or {}), "sampler.tags": ["a", "b"]}
                return SamplingResult(Decision.RECORD_AND_SAMPLE, added, TraceState([("vendor", "x")]))

            def get_description(self) -> str:
                return "Tagging"

        exporter = InMemorySpanExporter()
        handler = make_handler(tracer_provider=provider_with(exporter, sampler=Tagging()))
        flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
        spans = exporter.get_finished_spans()
        assert 4 == len(spans)
        assert all(("a", "b") == s.attributes["sampler.tags"] for s in spans)
        assert all("vendor=x" == s.context.trace_state.to_header() for s in spans)

    def test_record_only_spans_reach_processors_unsampled(self):
        """RECORD_ONLY: recorded and handed to processors, not sampled (the batch processor drops it)."""
        seen: list[ReadableSpan] = []

        class Seen(SpanProcessor):
            def on_end(self, span: ReadableSpan) -> None:
                seen.append(span)

        provider = TracerProvider(sampler=StaticSampler(Decision.RECORD_ONLY))
        provider.add_span_processor(Seen())
        sink = span_sink(provider)
        span = sink.start(START, None, 1)
        # a processor with its own on_end but the inherited no-op on_start keeps the finished path
        assert _Pending is type(span)
        sink.end(span, {}, None, 2)
        assert 1 == len(seen) and not seen[0].context.trace_flags.sampled

    def test_a_sampler_that_is_not_the_sdks_takes_the_api_path(self):
        """A sampler of the user's own may read the parent span object: every span is the SDK's."""

        class RecordOnly(Sampler):
            def should_sample(
                self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None
            ):
                return SamplingResult(Decision.RECORD_ONLY, attributes)

            def get_description(self) -> str:
                return "RecordOnly"

        sink = span_sink(TracerProvider(sampler=RecordOnly()))
        span = sink.start(START, None, 1)
        assert isinstance(span, Span)
        sink.end(span, {}, None, 2)


class TestLimits:
    def test_attribute_count_limit_from_the_environment(self, monkeypatch, make_handler):
        """OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT=5: five attributes kept (the newest), the rest counted dropped."""
        monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "5")
        exporter = InMemorySpanExporter()
        handler = make_handler(tracer_provider=provider_with(exporter))
        flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
        chat = spans_by_name(exporter)["chat fake-chat-1"]
        assert 5 == len(chat.attributes)
        assert chat.dropped_attributes > 0

    def test_value_length_and_event_limits(self, make_handler):
        """Value length, event count and event attribute limits apply as on a live span."""
        limits = SpanLimits(max_span_attribute_length=8, max_events=2, max_event_attributes=1, max_attribute_length=4)
        exporter = InMemorySpanExporter()
        handler = make_handler(tracer_provider=provider_with(exporter, span_limits=limits))

        def chatty(x: int) -> int:
            for i in range(3):
                dispatch_custom_event("tick", {"i": i})
            raise ValueError("a long error message")

        with pytest.raises(ValueError):
            RunnableLambda(chatty, name="chatty").invoke(1, {"callbacks": [handler]})
        (span,) = exporter.get_finished_spans()
        assert all(len(v) <= 8 for v in span.attributes.values() if isinstance(v, str))
        assert ["custom_event", "exception"] == [e.name for e in span.events]
        assert 2 == span.dropped_events
        assert all(len(e.attributes) == 1 for e in span.events)


class TestKinds:
    @pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
    def test_errors_events_and_renames_survive_the_finished_path(self, mode, make_handler, exporter):
        """A failing run keeps status, exception event and its earlier events; a promoted agent its new name."""

        def broken(x: int) -> int:
            dispatch_custom_event("before", {"x": x})
            raise KeyError("vase")

        step = RunnableLambda(broken, name="broken")
        handler = make_handler()
        with pytest.raises(KeyError):
            if mode == "invoke":
                step.invoke(1, {"callbacks": [handler]})
            else:
                asyncio.run(step.ainvoke(1, {"callbacks": [handler]}))
        (span,) = exporter.get_finished_spans()
        assert ["custom_event", "exception"] == [e.name for e in span.events]
        assert "KeyError" == span.attributes["error.type"]
        assert trace.StatusCode.ERROR == span.status.status_code
        assert SpanKind.INTERNAL == span.kind


def log_path_lines(handler: Any) -> list[Any]:
    from lc_trace.testing import read_log

    return read_log(handler.log_path)


@pytest.mark.usefixtures("fresh_global")
def test_a_handler_built_before_the_global_provider_switches_when_it_is_set(log_path):
    """Built before the app sets its global SDK provider: runs after it is set take the finished path."""
    handler = TraceHandler(log_path=log_path)
    flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})  # no provider yet: nothing to export
    exporter = InMemorySpanExporter()
    trace.set_tracer_provider(provider_with(exporter))
    sink = handler._spans
    assert isinstance(sink.start(START, None, 1), _Pending)
    flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
    handler.close()
    assert 4 == len(exporter.get_finished_spans())


@pytest.mark.parametrize("sampled", [True, False])
def test_a_remote_parent_decides_under_the_default_sampler(sampled, make_handler):
    """Under parentbased_always_on, a root below a remote parent follows its sampled flag and keeps its trace state."""
    from opentelemetry import context as otel_context
    from opentelemetry.trace import SpanContext, TraceFlags

    exporter = InMemorySpanExporter()
    handler = make_handler(tracer_provider=provider_with(exporter))
    remote = SpanContext(
        0x1234,
        0x5678,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
        trace_state=TraceState([("vendor", "y")]),
    )
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(remote)))
    try:
        flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
    finally:
        otel_context.detach(token)
    spans = exporter.get_finished_spans()
    assert (4 if sampled else 0) == len(spans)
    assert all(0x1234 == s.context.trace_id and "vendor=y" == s.context.trace_state.to_header() for s in spans)


def test_a_runs_span_context_exists_from_its_start(make_handler, exporter):
    """While a run's code runs, its span (for making it current) carries the context it is exported with."""
    from langchain_core.callbacks import BaseCallbackHandler

    handler = make_handler()
    seen: dict[str, Any] = {}

    class RunIds(BaseCallbackHandler):
        def on_chain_start(self, serialized, inputs, *, run_id, **kwargs):
            seen["run_id"] = run_id

    def step(x: int) -> int:
        seen["span"] = handler._recorder.span_of(seen["run_id"])
        return x

    RunnableLambda(step, name="step").invoke(1, {"callbacks": [RunIds(), handler]})
    (span,) = exporter.get_finished_spans()
    assert isinstance(seen["span"], Span) and not seen["span"].is_recording()  # the SDK's own span, ended
    assert span.context == seen["span"].get_span_context()
    assert handler._recorder.span_of(seen["run_id"]) is None  # ended
