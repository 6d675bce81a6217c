"""
Traces that cross services: a W3C traceparent in a root run's metadata continues that trace;
``lc_trace.current_traceparent()`` gives the header to send on; an invalid one is ignored with
one warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import lc_trace
from lc_trace import TraceHandler
from lc_trace.testing import FakeChatModel, in_memory_tracing, read_log

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"


Traced = tuple[TraceHandler, InMemorySpanExporter, Path]


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[Traced]:
    """A handler on an in-memory provider, its exporter and its log file."""
    provider, exporter = in_memory_tracing()
    log_path = tmp_path / "lc_trace.jsonl"
    handler = TraceHandler(tracer_provider=provider, log_path=log_path)
    yield handler, exporter, log_path
    handler.close()


def run_chain(handler: TraceHandler, metadata: dict[str, str]) -> None:
    model = FakeChatModel()
    chain = RunnableLambda(lambda text: text, name="prompt") | model
    chain.invoke("hello", {"callbacks": [handler], "metadata": metadata})


def exported(traced: Traced) -> list[ReadableSpan]:
    handler, exporter, _ = traced
    assert handler.flush()
    return list(exporter.get_finished_spans())


def test_root_run_continues_the_callers_trace(traced: Traced) -> None:
    """A root run given a traceparent is a child of the remote span; its whole tree, spans and log lines, is in that trace."""
    handler, _, log_path = traced
    run_chain(handler, {"traceparent": TRACEPARENT, "tracestate": "shop=7"})
    spans = exported(traced)
    assert 3 == len(spans)
    assert {TRACE_ID} == {format(s.context.trace_id, "032x") for s in spans if s.context is not None}
    (root,) = [s for s in spans if s.name == "RunnableSequence"]
    assert root.parent is not None and root.parent.is_remote
    assert SPAN_ID == format(root.parent.span_id, "016x")
    assert root.context is not None and "7" == root.context.trace_state.get("shop")
    assert {TRACE_ID} == {line["trace.id"] for line in read_log(log_path)}
    # The root's lines name the remote span as parent, so `lc-trace export` nests it there too.
    assert {SPAN_ID} == {line["parent.id"] for line in read_log(log_path) if "langchain.run.parent_id" not in line}


@pytest.mark.parametrize(
    "header",
    ["garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", f"00-{TRACE_ID}-{SPAN_ID}"],
)
def test_invalid_traceparent_is_ignored_with_one_warning(
    traced: Traced, header: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An invalid header: the run starts a trace of its own, and lc_trace warns once, not once per run."""
    handler, _, _ = traced
    with caplog.at_level(logging.WARNING, logger="lc_trace"):
        run_chain(handler, {"traceparent": header})
        run_chain(handler, {"traceparent": header})
    spans = exported(traced)
    roots = [s for s in spans if s.name == "RunnableSequence"]
    assert 2 == len(roots)
    assert all(s.parent is None for s in roots)
    assert TRACE_ID not in {format(s.context.trace_id, "032x") for s in spans if s.context is not None}
    warnings = [r.getMessage() for r in caplog.records if "traceparent" in r.getMessage()]
    assert 1 == len(warnings), warnings
    assert repr(header) in warnings[0]


def test_current_traceparent_names_the_running_tool(traced: Traced) -> None:
    """Inside a tool (with lc_trace.instrument()), current_traceparent() is the tool span's header; outside any span, None."""
    handler, _, _ = traced
    seen: list[str | None] = []

    @tool
    def call_warehouse(flower: str) -> str:
        """Calls another service."""
        seen.append(lc_trace.current_traceparent())
        return flower

    assert lc_trace.current_traceparent() is None
    lc_trace.instrument()
    try:
        call_warehouse.invoke("rose", {"callbacks": [handler], "metadata": {"traceparent": TRACEPARENT}})
    finally:
        lc_trace.uninstrument()
    (span,) = exported(traced)
    assert span.context is not None
    assert [f"00-{TRACE_ID}-{span.context.span_id:016x}-01"] == seen
    assert lc_trace.current_traceparent() is None


def test_langgraph_graph_continues_the_trace(traced: Traced) -> None:
    """A LangGraph graph given the traceparent in its metadata continues that trace; in `configurable` it does not reach callbacks (LangGraph copies only thread_id and the like to metadata), so lc_trace cannot see it there."""
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    class State(TypedDict):
        text: str

    graph = StateGraph(State)
    graph.add_node("echo", lambda state: {"text": state["text"] + "!"})
    graph.add_edge(START, "echo")
    graph.add_edge("echo", END)
    handler, _, _ = traced
    app = graph.compile()
    app.invoke({"text": "hi"}, {"callbacks": [handler], "metadata": {"traceparent": TRACEPARENT}})
    spans = exported(traced)
    assert 2 == len(spans)
    assert {TRACE_ID} == {format(s.context.trace_id, "032x") for s in spans if s.context is not None}

    app.invoke({"text": "hi"}, {"callbacks": [handler], "configurable": {"traceparent": TRACEPARENT}})
    later = [s for s in exported(traced) if s not in spans]
    assert 2 == len(later)
    assert TRACE_ID not in {format(s.context.trace_id, "032x") for s in later if s.context is not None}


def test_inside_that_trace_already_the_nearer_span_wins(traced: Traced) -> None:
    """In an instrumented server the request span already continues the caller's trace: the run nests under it, not beside it."""
    from opentelemetry import context as otel_context
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    handler, _, _ = traced
    request_id = 0x1234567890ABCDEF
    request = NonRecordingSpan(SpanContext(int(TRACE_ID, 16), request_id, is_remote=False, trace_flags=TraceFlags(1)))
    token = otel_context.attach(set_span_in_context(request))
    try:
        run_chain(handler, {"traceparent": TRACEPARENT})
    finally:
        otel_context.detach(token)
    (root,) = [s for s in exported(traced) if s.name == "RunnableSequence"]
    assert root.parent is not None and request_id == root.parent.span_id
    assert TRACE_ID == format(root.context.trace_id, "032x")
