"""
TraceHandler and AsyncTraceHandler: thin shells over one core; every callback is one call
into the Recorder.

How they are dispatched, and why (measured; docs/decisions.md):

* Every callback is a plain function, on both classes. LangChain picks the dispatch per
  *method*: a coroutine method under sync ``invoke`` costs a new event loop per event
  (~200 us); a plain one is called directly (~2-5 us). Nothing on our path awaits anything,
  so nothing is lost by not being a coroutine, and the async class stays cheap and correct
  under sync ``invoke``.
* ``run_inline`` is True, so under ``ainvoke`` the callbacks run directly on the loop
  thread (~10-14 us/event) instead of through ``run_in_executor`` (~130 us/event).
* Except where that would change what other handlers receive: langchain-core's
  ``AsyncCallbackManager.on_llm_start`` (issue 39633) sends the start of a text-LLM run to the
  inline handlers *or* the others, never both. While that method sorts its handlers, our
  handlers say they are not inline, so everyone gets the event (ours through the others'
  path). If another handler there is inline anyway (LangSmith's tracer is), the others lose
  the event with or without us, and we stay inline so that at least we do not.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from functools import partial
from types import CodeType
from typing import Any, Literal
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.callbacks.manager import AsyncCallbackManager
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.environment_variables import OTEL_SERVICE_NAME
from opentelemetry.trace import TracerProvider

from lc_trace import _attributes as A
from lc_trace import _current, _env, _mapping
from lc_trace._content import DEFAULT_MAX_LENGTH, MIN_MAX_LENGTH, Serializer
from lc_trace._conventions import LATEST, Conventions, choose
from lc_trace._logs._pool import acquire_writer, release_writer
from lc_trace._logs._sink import ClosedLogSink, LogSink, Processor
from lc_trace._logs._writer import (
    DEFAULT_BACKUPS,
    DEFAULT_FLUSH_INTERVAL_MS,
    DEFAULT_MAX_BYTES,
    DEFAULT_QUEUE_SIZE,
    LineWriter,
)
from lc_trace._metrics import MetricSink
from lc_trace._paths import default_log_path
from lc_trace._propagation import TRACEPARENT, remote_parent
from lc_trace._recorder import Recorder
from lc_trace._records import EVALUATION_RESULT, Start
from lc_trace._spans import span_sink
from lc_trace._stats import Stats

__all__ = ["AsyncTraceHandler", "TraceHandler"]

_LLM_START_CODE = inspect.unwrap(AsyncCallbackManager.on_llm_start).__code__
# Python < 3.12 runs a comprehension in a frame of its own, whose code is a constant of the
# method's; the two of on_llm_start that sort handlers (padded, so the check below is two `is`).
_SORTERS = (*(c for c in _LLM_START_CODE.co_consts if isinstance(c, CodeType)), _LLM_START_CODE, _LLM_START_CODE)
_SORTER_A, _SORTER_B = _SORTERS[0], _SORTERS[1]
_getframe = sys._getframe
_SCOPE = _current.scope_var
_UNSET: Any = object()
_LIVE: weakref.WeakSet[_TraceCore] = weakref.WeakSet()  # every handler not yet collected
_LIVE_LOCK = threading.Lock()  # a WeakSet's iteration fails if another thread adds meanwhile


def live_handlers() -> list[_TraceCore]:
    """
    Every handler of this process not yet collected: where ``record_evaluation`` looks for a run first.
    """
    with _LIVE_LOCK:
        return list(_LIVE)


# --- the core both classes share ----------------------------------------------------------


class _TraceCore:
    """
    Everything TraceHandler and AsyncTraceHandler do; they differ only in their base class.
    """

    raise_error = False

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        log_path: str | os.PathLike[str] | None = _UNSET,
        service_name: str | None = None,
        capture_content: bool | None = None,
        max_content_length: int | None = None,
        log_tokens: bool | None = None,
        max_open_runs: int = 10_000,
        log_max_bytes: int | None = None,
        log_backups: int | None = None,
        queue_size: int | None = None,
        flush_interval_ms: int | None = None,
        on_queue_full: Literal["drop", "wait"] = "drop",
        log_processors: Iterable[Processor] = (),
        finished_spans: bool | None = None,
        genai_conventions: Conventions | None = None,
    ) -> None:
        """
        Args:
            tracer_provider: where spans go; default: the global provider (set by the app, or
                by ``lc_trace.configure()``). The library itself never sets a global.
            meter_provider: where the GenAI client metrics go (operation duration, token
                usage); default: the global provider (a no-op until the app sets one).
            log_path: the JSON-lines file; default ``$LC_TRACE_LOG_PATH`` or
                ``./lc_trace_logs/lc_trace.jsonl``; None turns file logging off.
            service_name: ``service.name`` on log lines; default ``$OTEL_SERVICE_NAME``, then
                the provider's resource, then ``lc_trace``.
            capture_content: record prompts, outputs, tool arguments and documents; default
                on, unless ``LC_TRACE_CAPTURE_CONTENT=false`` or
                ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=NO_CONTENT``. Secrets are
                redacted either way.
            max_content_length: longest captured value before it is truncated (default 8192).
            log_tokens: one log line per streamed token (default off).
            max_open_runs: cap on runs open at once; the oldest is closed beyond it.
            log_max_bytes: rotate the file at this size (default 100 MiB; 0 never).
            log_backups: rotated files kept (default 5).
            queue_size: log lines queued before the full-queue policy applies (default 65536).
            flush_interval_ms: longest a line waits before it is written (default 500).
            on_queue_full: ``"drop"`` (count and drop, never block) or ``"wait"`` (block the
                caller up to a second for room, then drop and count).
            log_processors: extra structlog processors run on every line before rendering.
            finished_spans: ``False`` gives every run the SDK's own span from its start, for a
                tracer patched in a way lc_trace cannot see (an APM agent, a vendor SDK);
                default on, unless ``LC_TRACE_FINISHED_SPANS=false``: a run's span is built at its
                end where that stands in exactly for the SDK's, and becomes the SDK's own span
                wherever other code asks for it.
            genai_conventions: ``"v1.41.0"`` (the GenAI conventions of the core semantic
                conventions v1.41.0) or ``"v0.1.0"`` (the standalone GenAI conventions' first
                release); default ``"v1.41.0"``, unless ``OTEL_SEMCONV_STABILITY_OPT_IN`` holds
                ``gen_ai_latest_experimental``. Spans, metrics and log lines follow it.

        Raises:
            LogPathError: the log file cannot be created or written.
            ValueError: an argument is out of range.
        """
        super().__init__()
        capture = _env.capture_content_from_env() if capture_content is None else bool(capture_content)
        length = (
            max_content_length
            if max_content_length is not None
            else _env.env_int(_env.LC_TRACE_MAX_CONTENT_LENGTH, DEFAULT_MAX_LENGTH, minimum=MIN_MAX_LENGTH)
        )
        self._serializer = Serializer(length)
        if finished_spans is None:
            finished_spans = _env.env_bool(_env.LC_TRACE_FINISHED_SPANS, True)
        self.genai_conventions: Conventions = choose(genai_conventions)
        latest = self.genai_conventions == LATEST
        # The mappings whose output differs between the two versions, bound to this handler's.
        self._chat_model_start = _following(_mapping.chat_model_start, latest)
        self._llm_start = _following(_mapping.llm_start, latest)
        self._llm_end = _following(_mapping.llm_end, latest)
        self._retriever_start = _following(_mapping.retriever_start, latest)
        self._spans = span_sink(tracer_provider, finished_spans=finished_spans)
        self._metrics = MetricSink(meter_provider, self.genai_conventions)
        self.service_name = service_name or _service_name(tracer_provider)
        if log_path is _UNSET:
            log_path = default_log_path()
        self._writer: LineWriter | None = None
        logs: LogSink | None = None
        if log_path is not None:
            options = {
                "queue_size": queue_size
                if queue_size is not None
                else _env.env_int(_env.LC_TRACE_QUEUE_SIZE, DEFAULT_QUEUE_SIZE, minimum=1),
                "flush_interval_s": (
                    flush_interval_ms
                    if flush_interval_ms is not None
                    else _env.env_int(_env.LC_TRACE_FLUSH_INTERVAL_MS, DEFAULT_FLUSH_INTERVAL_MS, minimum=1)
                )
                / 1000,
                "max_bytes": log_max_bytes
                if log_max_bytes is not None
                else _env.env_int(_env.LC_TRACE_LOG_MAX_BYTES, DEFAULT_MAX_BYTES),
                "backups": log_backups
                if log_backups is not None
                else _env.env_int(_env.LC_TRACE_LOG_BACKUPS, DEFAULT_BACKUPS),
                "on_full": on_queue_full,
            }
            self._writer, logs = acquire_writer(
                os.fspath(log_path), self.service_name, list(log_processors), options, tracer_provider
            )
        self.stats: Stats = self._writer.stats if self._writer is not None else Stats()
        tokens = log_tokens if log_tokens is not None else _env.env_bool(_env.LC_TRACE_LOG_TOKENS, False)
        self._recorder = Recorder(
            self._spans,
            logs,
            self._serializer,
            metrics=self._metrics,
            capture=capture,
            log_tokens=tokens,
            stats=self.stats,
            max_open_runs=max_open_runs,
            latest=latest,
        )
        if type(self).on_llm_new_token is _TraceCore.on_llm_new_token:  # a subclass's own is kept
            # LangChain calls this per streamed chunk: straight into the Recorder, no frame between.
            self.on_llm_new_token = self._recorder.token  # type: ignore[method-assign]
        self._closed = False
        with _LIVE_LOCK:
            _LIVE.add(self)

    # -- what a user calls ------------------------------------------------------------------

    @property
    def capture_content(self) -> bool:
        """
        Whether prompts, outputs and documents are recorded.
        """
        return self._recorder.capture

    @property
    def log_path(self) -> str | None:
        """
        The absolute path of the log file, or None when file logging is off.
        """
        return str(self._writer.path) if self._writer is not None else None

    @property
    def open_runs(self) -> int:
        """
        Runs started and not yet ended (zero after every call has returned).
        """
        return self._recorder.open_runs

    def flush(self, timeout_millis: int = 30_000) -> bool:
        """
        Block until every line so far is in the file and every ended span has been handed to
        the span processors (and exported, for an SDK provider); False if the timeout passed.
        """
        lines = self._writer.flush(timeout_millis) if self._writer is not None else True
        return self._spans.force_flush(timeout_millis) and self._metrics.force_flush(timeout_millis) and lines

    async def aflush(self, timeout_millis: int = 30_000) -> bool:
        """
        ``flush()`` for async code; the event loop keeps running meanwhile.
        """
        lines = await self._writer.aflush(timeout_millis) if self._writer is not None else True
        spans = await asyncio.to_thread(self._spans.force_flush, timeout_millis)
        metrics = await asyncio.to_thread(self._metrics.force_flush, timeout_millis)
        return spans and metrics and lines

    def close(self, timeout_millis: int = 30_000) -> bool:
        """
        Close runs still open (as ``shutdown``), flush, and stop the writer once no other
        handler shares it. Later events still make spans; their log lines are dropped and
        counted. Idempotent.
        """
        if self._closed:
            return True
        self._closed = True
        self._recorder.close_all()
        if self._recorder.logs is not None:
            self._recorder.logs = ClosedLogSink(self.stats)
        spans = self._spans.force_flush(timeout_millis) and self._metrics.force_flush(timeout_millis)
        lines = release_writer(self._writer, timeout_millis) if self._writer is not None else True
        return spans and lines

    async def aclose(self, timeout_millis: int = 30_000) -> bool:
        """
        ``close()`` for async code; the event loop keeps running meanwhile.
        """
        return await asyncio.to_thread(self.close, timeout_millis)

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(service_name={self.service_name!r}, log_path={self.log_path!r}, capture={self.capture_content})"

    # -- dispatch (see the module docstring) ------------------------------------------------

    @property
    def run_inline(self) -> bool:
        """
        True, except while langchain-core's AsyncCallbackManager.on_llm_start sorts handlers.

        LangChain reads this per handler per event (two or three times under ``ainvoke``), so
        everywhere but that one decision it is a frame fetch and two identity checks.
        """
        code = _getframe(1).f_code
        if code is not _SORTER_A and code is not _SORTER_B and code is not _LLM_START_CODE:
            return True
        return self._inline_while_sorting()

    @staticmethod
    def _inline_while_sorting() -> bool:
        frame = _getframe(2)
        if frame.f_code is not _LLM_START_CODE and frame.f_back is not None:
            frame = frame.f_back  # the comprehension's frame: the method is one further up
        handlers = getattr(frame.f_locals.get("self"), "handlers", ())
        return any(h.run_inline for h in handlers if not isinstance(h, _TraceCore))

    def _start(
        self,
        mapper: Callable[..., Start],
        serialized: dict[str, Any] | None,
        payload: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        kwargs: dict[str, Any],
    ) -> None:
        # LangChain's keywords go to the mapping as they came; each mapper names what it uses.
        recorder = self._recorder
        remote = None
        if parent_run_id is None:  # a root may continue another service's trace
            metadata = kwargs.get("metadata")
            if metadata and TRACEPARENT in metadata:
                remote = remote_parent(metadata, self.stats)
        recorder.start(mapper, serialized, payload, run_id, parent_run_id, kwargs, remote)

    def _end(self, mapper: Callable[..., tuple[dict[str, Any], dict[str, str]]], payload: Any, run_id: UUID) -> None:
        recorder = self._recorder
        recorder.end(run_id, lambda: mapper(payload, serializer=self._serializer, capture=recorder.capture))

    # -- chains -----------------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(_mapping.chain_start, serialized, inputs, run_id, parent_run_id, kwargs)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, inputs: Any = None, **kwargs: Any) -> None:
        self._recorder.end(run_id, lambda: ({}, self._io(inputs, outputs)))

    def on_chain_error(self, error: BaseException, *, run_id: UUID, inputs: Any = None, **kwargs: Any) -> None:
        self._recorder.error(run_id, error, (lambda: self._io(inputs, None)) if inputs is not None else None)

    def _io(self, inputs: Any, outputs: Any) -> dict[str, str]:
        if not self._recorder.capture:
            return {}
        content = {}
        if inputs is not None:  # streaming: the real input arrives with the end
            content[A.LC_INPUT] = self._serializer.dumps(inputs)
        if outputs is not None:
            content[A.LC_OUTPUT] = self._serializer.dumps(outputs)
        return content

    # -- models -----------------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(self._chat_model_start, serialized, messages, run_id, parent_run_id, kwargs)
        if _SCOPE.get() is not None:  # inside an entry point lc_trace.instrument() wrapped
            _current.claim(self._recorder, run_id)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(self._llm_start, serialized, prompts, run_id, parent_run_id, kwargs)
        if _SCOPE.get() is not None:  # inside an entry point lc_trace.instrument() wrapped
            _current.claim(self._recorder, run_id)

    def on_llm_new_token(self, token: Any = "", *args: Any, run_id: UUID, **kwargs: Any) -> None:
        """Replaced per instance by the Recorder's ``token`` (see ``__init__``) unless a subclass overrides it."""
        self._recorder.token(token, run_id=run_id)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(self._llm_end, response, run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._recorder.error(run_id, error)

    def on_stream_event(self, event: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """
        Protocol events of ``stream_events(version="v3")`` and LangGraph's messages stream: not
        recorded (tokens and ends carry what we need), but defined here as a plain function,
        because the coroutine inherited from AsyncCallbackHandler would make the sync API build
        an event loop for every one of them.
        """

    # -- tools and retrievers ---------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(_mapping.tool_start, serialized, input_str, run_id, parent_run_id, kwargs)
        if _SCOPE.get() is not None:  # inside an entry point lc_trace.instrument() wrapped
            _current.claim(self._recorder, run_id)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(_mapping.tool_end, output, run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._recorder.error(run_id, error)

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(self._retriever_start, serialized, query, run_id, parent_run_id, kwargs)
        if _SCOPE.get() is not None:  # inside an entry point lc_trace.instrument() wrapped
            _current.claim(self._recorder, run_id)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(_mapping.retriever_end, documents, run_id)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._recorder.error(run_id, error)

    # -- point events -----------------------------------------------------------------------

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        # Custom events carry no parent_run_id: they belong to the run that dispatched them.
        if name == EVALUATION_RESULT:  # reserved: an evaluation of a run (lc_trace.evaluated sends them)
            self._recorder.evaluation(run_id, data)
            return
        self._recorder.event(
            run_id,
            "custom_event",
            lambda: {A.LC_EVENT_NAME: str(name), **_mapping.event_data(data, self._serializer, self._recorder.capture)},
        )

    def on_agent_action(self, action: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._recorder.event(run_id, "agent_action", lambda: self._agent_fields(action, tool=True), agent=True)

    def on_agent_finish(self, finish: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._recorder.event(run_id, "agent_finish", lambda: self._agent_fields(finish, tool=False), agent=True)

    def _agent_fields(self, step: Any, *, tool: bool) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if tool:
            fields[A.LC_AGENT_TOOL] = str(getattr(step, "tool", ""))
        if self._recorder.capture:
            if tool:
                fields[A.LC_AGENT_TOOL_INPUT] = self._serializer.dumps(getattr(step, "tool_input", None))
            else:
                fields[A.LC_AGENT_OUTPUT] = self._serializer.dumps(getattr(step, "return_values", None))
            fields[A.LC_AGENT_LOG] = self._serializer.text(str(getattr(step, "log", "")))
        return fields

    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._recorder.event(
            run_id, "retry", lambda: {A.LC_RETRY_ATTEMPT: int(getattr(retry_state, "attempt_number", 0) or 0)}
        )

    def on_text(self, text: str, *, run_id: UUID, **kwargs: Any) -> None:
        self._recorder.event(
            run_id, "text", lambda: {A.LC_TEXT: self._serializer.text(str(text))} if self._recorder.capture else {}
        )


def _following(mapper: Callable[..., Any], latest: bool) -> Callable[..., Any]:
    """*mapper* as v0.1.0 has it, or as it is (v1.41.0): no extra call on the default path."""
    return partial(mapper, latest=True) if latest else mapper


def _service_name(tracer_provider: TracerProvider | None) -> str:
    name = os.environ.get(OTEL_SERVICE_NAME, "").strip()
    if name:
        return name
    provider = tracer_provider or trace.get_tracer_provider()
    resource = getattr(provider, "resource", None)
    value = getattr(resource, "attributes", {}).get("service.name") if resource is not None else None
    if isinstance(value, str) and value and not value.startswith("unknown_service"):
        return value
    return _env.DEFAULT_SERVICE_NAME


class TraceHandler(_TraceCore, BaseCallbackHandler):  # type: ignore[override]  # run_inline is a property
    """
    Traces LangChain runs as OpenTelemetry spans and ECS JSON log lines, for sync code.

    Add it to ``config["callbacks"]``; it is cheap and correct under ``invoke``, ``ainvoke``,
    streaming, batches and threads alike.
    """


class AsyncTraceHandler(_TraceCore, AsyncCallbackHandler):  # type: ignore[override,misc]  # sync callbacks, on purpose
    """
    Traces LangChain runs as OpenTelemetry spans and ECS JSON log lines, for async code.

    Same behaviour and output as :class:`TraceHandler`; it is an ``AsyncCallbackHandler`` for
    code that expects one, and it is equally cheap under sync ``invoke`` (its callbacks never
    need an event loop). Use ``await handler.aflush()`` / ``await handler.aclose()``.
    """
