"""
The contenders: each is a name and a setup function that attaches it (returns callbacks to
pass, or instruments LangChain globally) inside a worker process.

Every contender that makes spans gets its own SDK ``TracerProvider`` with a
``BatchSpanProcessor`` over ``CountingExporter`` (a no-op that only counts), so no network
counts and every contender pays the same export path. Nothing sets a global tracer or meter
provider: metrics (lc_trace's and OpenLLMetry's) go to OTel's default no-op meter.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from bench.common import CountingExporter, counting_provider

__all__ = ["CONTENDERS", "LC_TRACE", "Attached", "Contender"]

LC_TRACE = "lc_trace"  # the reference every overhead is divided by


@dataclass
class Attached:
    """
    A contender set up in this process: callbacks to pass, and what to read when done.
    """

    callbacks: list[BaseCallbackHandler]
    provider: TracerProvider | None = None
    exporter: CountingExporter | None = None
    finish: Callable[[], dict[str, Any]] = field(default=lambda: {})

    def close(self) -> dict[str, Any]:
        """
        Flush everything and return counters (spans exported, lc_trace stats).
        """
        info = self.finish()
        if self.provider is not None and self.exporter is not None:
            self.provider.force_flush()
            info["spans_exported"] = self.exporter.spans
        return info


@dataclass(frozen=True)
class Contender:
    """
    ``setup(workdir)`` attaches the contender; ``requires`` are the distributions it needs.
    """

    name: str
    label: str
    group: str  # floor | lc_trace | peer
    setup: Callable[[Path], Attached]
    requires: tuple[str, ...] = ()
    note: str = ""


# -- floors -----------------------------------------------------------------------------------


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


class NoopHandler(BaseCallbackHandler):
    """
    Does nothing on every callback (all defined, so LangChain takes no fallback path).
    """

    on_chain_start = on_chain_end = on_chain_error = staticmethod(_nothing)
    on_chat_model_start = on_llm_start = on_llm_new_token = on_llm_end = on_llm_error = staticmethod(_nothing)
    on_tool_start = on_tool_end = on_tool_error = staticmethod(_nothing)
    on_retriever_start = on_retriever_end = on_retriever_error = staticmethod(_nothing)
    on_text = on_retry = on_custom_event = on_agent_action = on_agent_finish = staticmethod(_nothing)


class InlineNoopHandler(NoopHandler):
    """
    The no-op with ``run_inline``: under ``ainvoke`` it is called on the loop thread.
    """

    run_inline = True


class SpanFloorHandler(BaseCallbackHandler):
    """
    One empty span per run, child of its parent run's span, and nothing else: the span floor.
    """

    run_inline = True

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer = provider.get_tracer("span-floor")
        self._spans: dict[UUID, trace.Span] = {}

    def _start(
        self, serialized: Any, payload: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kw: Any
    ) -> None:
        parent = self._spans.get(parent_run_id) if parent_run_id is not None else None
        context = trace.set_span_in_context(parent) if parent is not None else None
        self._spans[run_id] = self._tracer.start_span("run", context=context)

    def _end(self, payload: Any, *, run_id: UUID, **kw: Any) -> None:
        span = self._spans.pop(run_id, None)
        if span is not None:
            span.end()

    # One function for every start and one for every end; their signatures are LangChain's, loosened.
    on_chain_start = on_chat_model_start = on_llm_start = on_tool_start = on_retriever_start = _start  # type: ignore[assignment]
    on_chain_end = on_chain_error = on_llm_end = on_llm_error = _end  # type: ignore[assignment]
    on_tool_end = on_tool_error = on_retriever_end = on_retriever_error = _end  # type: ignore[assignment]


def _noop(workdir: Path) -> Attached:
    return Attached([NoopHandler()])


def _noop_inline(workdir: Path) -> Attached:
    return Attached([InlineNoopHandler()])


def _span_floor(workdir: Path) -> Attached:
    provider, exporter = counting_provider()
    return Attached([SpanFloorHandler(provider)], provider, exporter)


# -- lc_trace ---------------------------------------------------------------------------------


def _lc_trace(async_class: bool, capture: bool, instrument: bool = False) -> Callable[[Path], Attached]:
    def setup(workdir: Path) -> Attached:
        from lc_trace import AsyncTraceHandler, TraceHandler
        from lc_trace import instrument as make_spans_current

        if instrument:  # each run's span current while its code runs (patches LangChain: a process per contender)
            make_spans_current()

        provider, exporter = counting_provider()
        cls = AsyncTraceHandler if async_class else TraceHandler
        handler = cls(
            tracer_provider=provider,
            log_path=workdir / "lc_trace.jsonl",
            capture_content=capture,
            service_name="bench",
        )

        def finish() -> dict[str, Any]:
            handler.flush()
            stats = handler.stats
            info = {
                "lines_written": stats.lines_written,
                "lines_dropped": stats.dropped,
                "internal_errors": stats.internal_errors,
                "open_runs": handler.open_runs,
            }
            handler.close()
            return info

        return Attached([handler], provider, exporter, finish)

    return setup


# -- peers ------------------------------------------------------------------------------------


def _openinference(workdir: Path) -> Attached:
    from openinference.instrumentation.langchain import LangChainInstrumentor

    provider, exporter = counting_provider()
    LangChainInstrumentor().instrument(tracer_provider=provider)  # content on by default
    return Attached([], provider, exporter)


def _openllmetry(workdir: Path) -> Attached:
    os.environ["TRACELOOP_TRACE_CONTENT"] = "true"
    from opentelemetry.instrumentation.langchain import LangchainInstrumentor

    provider, exporter = counting_provider()
    LangchainInstrumentor().instrument(tracer_provider=provider)
    return Attached([], provider, exporter)


def _langfuse(workdir: Path) -> Attached:
    # Langfuse's SDK is OTel-based and takes a provider and an exporter: its own batch processor
    # (LangfuseSpanProcessor) exports into the counting exporter, so it runs offline. The keys
    # and host are placeholders nothing is sent to.
    from langfuse import Langfuse
    from langfuse.langchain import CallbackHandler

    exporter = CountingExporter()
    provider = TracerProvider()
    client = Langfuse(
        public_key="pk-lf-bench",
        secret_key="sk-lf-bench",
        host="http://127.0.0.1:9",
        tracer_provider=provider,
        span_exporter=exporter,
    )

    def finish() -> dict[str, Any]:
        client.flush()
        return {}

    return Attached([CallbackHandler(public_key="pk-lf-bench")], provider, exporter, finish)


def _file_callback(workdir: Path) -> Attached:
    from langchain_core.callbacks import FileCallbackHandler

    handler = FileCallbackHandler(str(workdir / "file_callback.log"))
    handler.__enter__()  # the documented context-manager use, without its deprecation warning

    def finish() -> dict[str, Any]:
        handler.close()
        return {}

    return Attached([handler], finish=finish)


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in (
        Contender("noop", "no-op handler (not inline)", "floor", _noop),
        Contender("noop-inline", "no-op handler, run_inline", "floor", _noop_inline),
        Contender("span-floor", "span floor (one empty span per run)", "floor", _span_floor),
        Contender(LC_TRACE, "TraceHandler, content on", "lc_trace", _lc_trace(False, True)),
        Contender("lc_trace-no-content", "TraceHandler, content off", "lc_trace", _lc_trace(False, False)),
        Contender("lc_trace-async", "AsyncTraceHandler, content on", "lc_trace", _lc_trace(True, True)),
        Contender("lc_trace-async-no-content", "AsyncTraceHandler, content off", "lc_trace", _lc_trace(True, False)),
        Contender(
            "lc_trace-instrument",
            "TraceHandler, content on, lc_trace.instrument()",
            "lc_trace",
            _lc_trace(False, True, instrument=True),
        ),
        Contender(
            "openinference",
            "OpenInference LangChainInstrumentor, content on",
            "peer",
            _openinference,
            ("openinference-instrumentation-langchain",),
        ),
        Contender(
            "openllmetry",
            "OpenLLMetry LangchainInstrumentor, content on",
            "peer",
            _openllmetry,
            ("opentelemetry-instrumentation-langchain",),
        ),
        Contender(
            "langfuse",
            "Langfuse langchain CallbackHandler, content on",
            "peer",
            _langfuse,
            ("langfuse",),
        ),
        Contender("file-callback", "LangChain FileCallbackHandler", "peer", _file_callback),
    )
}
