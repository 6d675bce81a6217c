"""
What user code and other instrumentation see of a run's span is the SDK's own span, on the
default (finished-span) path as on the API path: one test per way that can be observed. Each
scenario runs once per path (``finished_spans=True`` and ``False``) and the two exports must say
the same; the suite's twin (tests/twin.py) also compares both paths span by span.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import tool
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, Tracer, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, StatusCode

import lc_trace
from lc_trace import TraceHandler
from lc_trace._records import Start
from lc_trace._spans import span_sink
from lc_trace._spans._api import ApiSpanSink
from lc_trace._spans._finished import FinishedSpanSink, _Pending
from tests.conftest import flower_chain

PATHS = [True, False]  # finished_spans: the default path, then the SDK's span from the start


@pytest.fixture
def instrumented() -> Iterator[None]:
    lc_trace.instrument()
    yield
    lc_trace.uninstrument()


def run(
    scenario: Callable[[TraceHandler], Any],
    finished_spans: bool,
    log_path: Any,
    provider: TracerProvider | None = None,
) -> dict[str, ReadableSpan]:
    """*scenario* under a handler on its own provider; the exported spans by name."""
    exporter = InMemorySpanExporter()
    provider = provider or TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    handler = TraceHandler(tracer_provider=provider, log_path=log_path, finished_spans=finished_spans)
    try:
        scenario(handler)
    finally:
        handler.close()
    return {span.name: span for span in exporter.get_finished_spans()}


def view(span: ReadableSpan) -> dict[str, Any]:
    """What a user checks on an exported span."""
    return {
        "attributes": {k: v for k, v in span.attributes.items() if k.startswith("app.")},
        "events": [(e.name, dict(e.attributes or {})) for e in span.events if e.name != "exception"],
        "status": (span.status.status_code, span.status.description),
        "links": [link.context.span_id for link in span.links],
    }


class TestUserCodeOnTheCurrentSpan:
    """Row 1-2: the current span under instrument() is the SDK's, and what is done to it is exported."""

    @pytest.mark.usefixtures("instrumented")
    @pytest.mark.parametrize("finished_spans", PATHS)
    def test_a_tool_enriches_the_current_span(self, finished_spans, log_path):
        """Attributes, events, links and a new name set by a tool land on its exported span."""
        seen: list[Any] = []

        @tool
        def price(sku: str) -> str:
            """The price of a flower."""
            span = trace.get_current_span()
            seen.append(span)
            span.set_attribute("app.sku", sku)
            span.set_attributes({"app.shop": "花店", "app.stock": 12})
            span.add_event("cache_miss", {"app.key": sku})
            span.add_link(trace.SpanContext(1, 2, is_remote=True))
            return "12 yuan"

        spans = run(lambda h: price.invoke({"sku": "rose"}, {"callbacks": [h]}), finished_spans, log_path)
        exported = spans["execute_tool price"]
        assert isinstance(seen[0], SdkSpan)
        assert {"app.sku": "rose", "app.shop": "花店", "app.stock": 12} == view(exported)["attributes"]
        assert [("cache_miss", {"app.key": "rose"})] == view(exported)["events"]
        assert [2] == view(exported)["links"]
        assert exported.context == seen[0].get_span_context()

    @pytest.mark.usefixtures("instrumented")
    def test_both_paths_export_the_same_enriched_span(self, log_path):
        """The same user code gives the same exported span on either path."""

        @tool
        def price(sku: str) -> str:
            """The price of a flower."""
            span = trace.get_current_span()
            assert span.is_recording()
            span.set_attribute("app.sku", sku)
            span.add_event("cache_miss")
            return "12 yuan"

        views = [
            view(run(lambda h: price.invoke({"sku": "lily"}, {"callbacks": [h]}), path, log_path)["execute_tool price"])
            for path in PATHS
        ]
        assert views[0] == views[1]

    @pytest.mark.usefixtures("instrumented")
    @pytest.mark.parametrize("finished_spans", PATHS)
    def test_status_ok_set_by_the_tool_is_final(self, finished_spans, log_path):
        """A tool that sets OK and then raises: OK stays (the SDK's rule), the exception is still recorded."""

        @tool
        def flaky(sku: str) -> str:
            """Fails after saying it succeeded."""
            trace.get_current_span().set_status(StatusCode.OK)
            raise RuntimeError("courier down")

        def scenario(handler: TraceHandler) -> None:
            with pytest.raises(RuntimeError):
                flaky.invoke({"sku": "rose"}, {"callbacks": [handler]})

        exported = run(scenario, finished_spans, log_path)["execute_tool flaky"]
        assert StatusCode.OK == exported.status.status_code
        assert ["exception"] == [e.name for e in exported.events]

    @pytest.mark.usefixtures("instrumented")
    @pytest.mark.parametrize("finished_spans", PATHS)
    def test_record_exception_and_a_described_error_status(self, finished_spans, log_path):
        """record_exception adds the SDK's exception event; an ERROR status keeps its description."""

        @tool
        def careful(sku: str) -> str:
            """Records a handled error."""
            span = trace.get_current_span()
            try:
                raise KeyError(sku)
            except KeyError as error:
                span.record_exception(error, attributes={"app.handled": True})
            span.set_status(StatusCode.ERROR, "handled")
            return "ok"

        exported = run(lambda h: careful.invoke({"sku": "tulip"}, {"callbacks": [h]}), finished_spans, log_path)[
            "execute_tool careful"
        ]
        (event,) = exported.events
        assert "exception" == event.name and "KeyError" == event.attributes["exception.type"]
        assert event.attributes["app.handled"] is True
        assert (StatusCode.ERROR, "handled") == (exported.status.status_code, exported.status.description)

    @pytest.mark.usefixtures("instrumented")
    @pytest.mark.parametrize("finished_spans", PATHS)
    def test_a_late_call_is_refused_as_the_sdk_refuses_it(self, finished_spans, log_path, caplog):
        """Code that kept the span past the run's end is refused with the SDK's warning; the export is unchanged."""
        kept: list[Any] = []

        @tool
        def keep(sku: str) -> str:
            """Keeps its span."""
            kept.append(trace.get_current_span())
            return "ok"

        spans = run(lambda h: keep.invoke({"sku": "rose"}, {"callbacks": [h]}), finished_spans, log_path)
        with caplog.at_level(logging.WARNING, logger="opentelemetry.sdk.trace"):
            kept[0].set_attribute("app.late", True)
            kept[0].add_event("late")
        assert not kept[0].is_recording()
        assert "Setting attribute on ended span." in caplog.text
        assert "Tried calling _add_event on an ended span." in caplog.text
        assert "app.late" not in spans["execute_tool keep"].attributes


class TestOtherInstrumentation:
    """Rows 3-6: samplers, processors and tracer wrappers see what they see with the SDK's span."""

    @pytest.mark.parametrize("finished_spans", PATHS)
    def test_a_sampler_that_reads_the_parent_span(self, finished_spans, log_path):
        """A custom sampler that keeps children of recording parents keeps the whole chain."""

        class UnderRecording(Sampler):
            def should_sample(
                self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None
            ):
                parent = trace.get_current_span(parent_context)
                keep = not parent.get_span_context().is_valid or parent.is_recording()
                return SamplingResult(Decision.RECORD_AND_SAMPLE if keep else Decision.DROP, attributes)

            def get_description(self) -> str:
                return "UnderRecording"

        spans = run(
            lambda h: flower_chain().invoke({"who": "mom"}, {"callbacks": [h]}),
            finished_spans,
            log_path,
            TracerProvider(sampler=UnderRecording()),
        )
        assert 4 == len(spans)

    @pytest.mark.parametrize("finished_spans", PATHS)
    def test_a_stock_processor_given_its_own_on_start(self, finished_spans, log_path):
        """An on_start hook set on one SimpleSpanProcessor instance runs for every span."""
        provider = TracerProvider()
        hooked = SimpleSpanProcessor(InMemorySpanExporter())
        hooked.on_start = lambda span, parent_context=None: span.set_attribute("app.hooked", True)  # type: ignore[method-assign]
        provider.add_span_processor(hooked)
        spans = run(
            lambda h: flower_chain().invoke({"who": "mom"}, {"callbacks": [h]}), finished_spans, log_path, provider
        )
        assert 4 == len(spans)
        assert all(s.attributes.get("app.hooked") for s in spans.values())

    @pytest.mark.parametrize("finished_spans", PATHS)
    def test_a_processor_added_while_a_run_is_open_reads_the_parent(self, finished_spans, log_path):
        """A processor whose on_start reads the parent span, added mid-run: the child carries what it read."""
        provider = TracerProvider()

        class ParentReader(SpanProcessor):
            def on_start(self, span: Any, parent_context: Any = None) -> None:
                parent = trace.get_current_span(parent_context)
                if parent.is_recording():
                    span.set_attribute("app.parent", parent.name)

        child = RunnableLambda(lambda x: x, name="child")

        def outer(x: int, config: RunnableConfig) -> int:
            provider.add_span_processor(ParentReader())
            return child.invoke(x, config)

        spans = run(
            lambda h: RunnableLambda(outer, name="outer").invoke(1, {"callbacks": [h]}),
            finished_spans,
            log_path,
            provider,
        )
        assert "outer" == spans["child"].attributes.get("app.parent")

    @pytest.mark.parametrize("finished_spans", PATHS)
    def test_a_processor_added_while_a_run_is_open_sees_it_end(self, finished_spans, log_path):
        """A processor with its own _on_ending added mid-run is shown the open run's SDK span as it ends."""
        if not hasattr(SpanProcessor, "_on_ending"):
            pytest.skip("this SDK has no _on_ending hook")
        provider = TracerProvider()

        class Ending(SpanProcessor):
            def __init__(self) -> None:
                self.seen: list[tuple[str, bool]] = []

            def _on_ending(self, span: Any) -> None:
                self.seen.append((span.name, isinstance(span, SdkSpan)))

        ending = Ending()

        def outer(x: int) -> int:
            provider.add_span_processor(ending)
            return x

        run(
            lambda h: RunnableLambda(outer, name="outer").invoke(1, {"callbacks": [h]}),
            finished_spans,
            log_path,
            provider,
        )
        assert [("outer", True)] == ending.seen

    @pytest.mark.parametrize("finished_spans", PATHS)
    def test_a_provider_whose_tracers_wrap_start_span(self, finished_spans, log_path):
        """A TracerProvider subclass wrapping each tracer's start_span (as APM agents do) sees every span."""

        class Apm(TracerProvider):
            def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
                tracer = super().get_tracer(*args, **kwargs)
                start = tracer.start_span

                def start_span(name: str, *more: Any, **options: Any) -> Any:
                    span = start(name, *more, **options)
                    span.set_attribute("app.apm", True)
                    return span

                tracer.start_span = start_span  # type: ignore[method-assign]
                return tracer

        spans = run(
            lambda h: flower_chain().invoke({"who": "mom"}, {"callbacks": [h]}), finished_spans, log_path, Apm()
        )
        assert 4 == len(spans)
        assert all(s.attributes.get("app.apm") for s in spans.values())


class TestRacingTheEnd:
    """Row 7: a span handed to the processors never changes again."""

    @pytest.mark.parametrize("finished_spans", PATHS)
    def test_an_event_after_the_end_is_refused(self, finished_spans, caplog):
        """An event that arrives after the end is refused with the SDK's warning; on_end and export agree."""
        provider = TracerProvider()
        at_end: list[int] = []

        class Counting(SpanProcessor):
            def on_end(self, span: ReadableSpan) -> None:
                at_end.append(len(span.events))

        exporter = InMemorySpanExporter()
        provider.add_span_processor(Counting())
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        sink = span_sink(provider, finished_spans=finished_spans)
        span = sink.start(Start("chain", "step", "step", False, {"langchain.run.type": "chain"}), None, 1)
        sink.event(span, "custom_event", {"n": 1}, 2)
        sink.end(span, {}, None, 3)
        with caplog.at_level(logging.WARNING, logger="opentelemetry.sdk.trace"):
            sink.event(span, "custom_event", {"n": 2}, 4)
        (exported,) = exporter.get_finished_spans()
        assert [1] == at_end and 1 == len(exported.events)
        assert "Tried calling _add_event on an ended span." in caplog.text

    def test_events_from_another_thread_racing_the_end(self):
        """Events sent from another thread while runs end: each span exports exactly what on_end saw."""
        provider = TracerProvider()
        at_end: dict[int, int] = {}

        class Counting(SpanProcessor):
            def on_end(self, span: ReadableSpan) -> None:
                at_end[span.context.span_id] = len(span.events)

        exporter = InMemorySpanExporter()
        provider.add_span_processor(Counting())
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        sink = span_sink(provider)
        logging.getLogger("opentelemetry.sdk.trace").setLevel(logging.ERROR)  # the refusals are expected here
        try:
            for _ in range(200):
                span = sink.start(Start("chain", "step", "step", False, {"langchain.run.type": "chain"}), None, 1)
                go = threading.Event()

                def send(target: Any = span, ready: threading.Event = go) -> None:
                    ready.wait()
                    for n in range(50):
                        sink.event(target, "custom_event", {"n": n}, 2 + n)

                sender = threading.Thread(target=send)
                sender.start()
                go.set()
                sink.end(span, {}, None, 100)
                sender.join()
        finally:
            logging.getLogger("opentelemetry.sdk.trace").setLevel(logging.NOTSET)
        exported = exporter.get_finished_spans()
        assert 200 == len(exported)
        assert {s.context.span_id: len(s.events) for s in exported} == at_end


class TestWhichPathIsTaken:
    """Point 2: selection by what is really there; point 4: the switch that forces the API path."""

    @pytest.mark.parametrize("hook", ["on_start", "_on_ending", "on_ending"])
    def test_a_subclass_overriding_a_hook_takes_the_api_path(self, hook):
        """A processor subclass with its own on_start, _on_ending or on_ending: the SDK's span from the start."""
        kind = type("Hooked", (SimpleSpanProcessor,), {hook: lambda self, span, *a, **k: None})
        provider = TracerProvider()
        provider.add_span_processor(kind(InMemorySpanExporter()))
        assert not isinstance(span_sink(provider).start(START, None, 1), _Pending)

    def test_a_tracer_whose_start_span_is_patched_at_class_level_takes_the_api_path(self, monkeypatch):
        """An agent that wraps Tracer.start_span for every tracer: lc_trace's spans go through it."""
        original = Tracer.start_span

        @functools.wraps(original)
        def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
            return original(self, *args, **kwargs)

        monkeypatch.setattr(Tracer, "start_span", wrapped)
        assert ApiSpanSink is type(span_sink(TracerProvider()))

    def test_a_patched_sdk_span_end_takes_the_api_path(self, monkeypatch):
        """An agent that wraps Span.end expects to see every span end: the API path."""
        original = SdkSpan.end

        def end(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)

        monkeypatch.setattr(SdkSpan, "end", end)
        assert ApiSpanSink is type(span_sink(TracerProvider()))

    def test_a_sampler_instance_given_its_own_should_sample_takes_the_api_path(self):
        """The SDK's sampler class, but an instance whose decision was replaced: the API path."""
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, StaticSampler

        sampler = StaticSampler(Decision.RECORD_AND_SAMPLE)
        sampler.should_sample = ALWAYS_ON.should_sample  # type: ignore[method-assign]
        sink = span_sink(TracerProvider(sampler=sampler))
        assert isinstance(sink.start(START, None, 1), SdkSpan)

    def test_the_argument_forces_the_api_path(self, log_path):
        """finished_spans=False: every run's span is the SDK's own from its start."""
        handler = TraceHandler(tracer_provider=TracerProvider(), log_path=log_path, finished_spans=False)
        try:
            assert not isinstance(handler._spans, FinishedSpanSink) and not isinstance(
                getattr(handler._spans, "main", None), FinishedSpanSink
            )
        finally:
            handler.close()

    @pytest.mark.parametrize(("value", "finished"), [("false", False), ("0", False), ("true", True), ("", True)])
    def test_the_environment_variable_forces_the_api_path(self, value, finished, monkeypatch, log_path):
        """LC_TRACE_FINISHED_SPANS=false does what the argument does; an explicit argument wins."""
        monkeypatch.setenv("LC_TRACE_FINISHED_SPANS", value)
        handler = TraceHandler(tracer_provider=TracerProvider(), log_path=log_path)
        explicit = TraceHandler(tracer_provider=TracerProvider(), log_path=log_path, finished_spans=True)
        try:
            chosen = getattr(handler._spans, "main", handler._spans)
            assert finished == isinstance(chosen, FinishedSpanSink)
            assert isinstance(getattr(explicit._spans, "main", explicit._spans), FinishedSpanSink)
        finally:
            handler.close()
            explicit.close()

    def test_a_malformed_value_warns_and_keeps_the_default(self, monkeypatch, log_path, caplog):
        """A typo in the variable warns once and keeps the default path."""
        monkeypatch.setenv("LC_TRACE_FINISHED_SPANS", "nope")
        with caplog.at_level(logging.WARNING, logger="lc_trace"):
            handler = TraceHandler(tracer_provider=TracerProvider(), log_path=log_path)
        handler.close()
        assert "LC_TRACE_FINISHED_SPANS" in caplog.text
        assert isinstance(getattr(handler._spans, "main", handler._spans), FinishedSpanSink)


START = Start("chain", "step", "step", False, {"langchain.run.type": "chain"})


def test_a_link_added_by_user_code_keeps_its_context(log_path):
    """add_link through the current span: the link's context as given (SDK validation applies)."""
    lc_trace.instrument()
    try:

        @tool
        def linked(sku: str) -> str:
            """Links to another trace."""
            trace.get_current_span().add_link(trace.SpanContext(7, 8, is_remote=True), {"app.why": "retry"})
            return "ok"

        spans = run(lambda h: linked.invoke({"sku": "rose"}, {"callbacks": [h]}), True, log_path)
    finally:
        lc_trace.uninstrument()
    (link,) = spans["execute_tool linked"].links
    assert isinstance(link, Link) and (7, 8) == (link.context.trace_id, link.context.span_id)
    assert "retry" == link.attributes["app.why"]
