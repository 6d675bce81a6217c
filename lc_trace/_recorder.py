"""
Recorder: the run table and the per-event hot path.

One event's whole path fits on this screen: a handler method calls ``start``/``end``/
``error``/``event`` here; the mapping (``_mapping``) builds the record; the SpanSink starts
or ends one span; the LogSink renders one line; the LineWriter queues it. Budget
(docs/performance.md): a span is ~23-44 us, a line ~1-10 us, a queue put ~0.1 us; nothing on
this path does I/O or waits.

The table lock is held only to change the table; sinks are called after it is released.
Runs that never get an end (cancelled model calls, streams left early) are closed when their
parent ends; a cap evicts the oldest open run so a long-lived server cannot grow without bound.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from array import array
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from uuid import UUID

from opentelemetry.trace import Span, SpanContext, SpanKind, get_current_span

from lc_trace import _attributes as A
from lc_trace import _evaluation
from lc_trace._content import Serializer
from lc_trace._evaluation import Target, event_verdict, model_fields, write
from lc_trace._logs._sink import ClosedLogSink, LogSink
from lc_trace._mapping import FINISH_ERROR, agent_attributes, classify_error, error_attributes
from lc_trace._metrics import MetricSink
from lc_trace._records import (
    AGENT,
    CHAIN,
    CHAT_MODEL,
    EVALUATION_RESULT,
    EVICTED,
    FAILED,
    LLM,
    MODEL_RUN_TYPES,
    PARENT_ENDED,
    RETRIEVER,
    SHUTDOWN,
    TOOL,
    Start,
)
from lc_trace._spans import SpanHandle, SpanSink, now_ns
from lc_trace._stats import Stats, report_once

__all__ = ["Recorder", "Run"]

_DEFAULT_MAX_OPEN_RUNS = 10_000
_REMEMBERED = 1024  # ended runs kept for evaluations, per generation (two): between 1024 and 2048 of the newest
# event.action of a run's start, end and error lines, by run type (an agent's are a chain's): named
# after LangChain's callbacks (on_llm_start serves chat models too), not after the run types.
_PREFIX = {CHAT_MODEL: "llm", LLM: "llm", TOOL: "tool", RETRIEVER: "retriever"}
_ACTIONS = {kind: (f"{stem}_start", f"{stem}_end", f"{stem}_error") for kind, stem in _PREFIX.items()}
_CHAIN_ACTIONS = ("chain_start", "chain_end", "chain_error")
_CLIENT, _INTERNAL = SpanKind.CLIENT.name, SpanKind.INTERNAL.name
_MANY = ""  # Run.model of a run whose calls asked for more than one model
_MEASURED = MODEL_RUN_TYPES | {AGENT, TOOL, RETRIEVER}  # run types with a metric of their own

F = TypeVar("F", bound=Callable[..., Any])
# An ended run, as remembered for evaluations: trace id, span id, name, whether it is a top-level
# run, its models (a model call's), its span context.
_Ended = tuple[str, str, str, bool, dict[str, str] | None, SpanContext]
_time_ns = time.time_ns


def _random_span_id() -> str:
    return format(random.getrandbits(64), "016x")


class Run:
    """
    One open LangChain run: its span, what the start said, and its open children.
    """

    __slots__ = (
        "run_id",
        "actions",
        "parent",
        "run_type",
        "name",
        "span",
        "start_ns",
        "attributes",
        "children",
        "trace_id",
        "span_id",
        "ids",
        "chunks",
        "first_chunk_ns",
        "chunk_ns",
        "inference_calls",
        "tool_calls",
        "model",
        "context",
    )

    def __init__(
        self,
        run_id: UUID,
        parent: Run | None,
        record: Start,
        span: SpanHandle,
        start_ns: int,
        trace_id: str,
        span_id: str,
        parent_span_id: str | None,
        context: SpanContext,
    ) -> None:
        self.run_id = run_id
        self.parent = parent
        self.run_type = record.run_type
        self.actions = _ACTIONS.get(record.run_type, _CHAIN_ACTIONS)
        self.name = record.name
        self.span = span
        self.start_ns = start_ns
        self.attributes = record.attributes
        self.children: set[UUID] | None = None  # made by the first child: most runs have none
        self.trace_id = trace_id
        self.span_id = span_id
        # What every line of the run says about its span, beyond its attributes (lc-trace export rebuilds it).
        self.ids: dict[str, str] = {A.TRACE_ID: trace_id, A.SPAN_ID: span_id}
        if parent_span_id is not None:
            self.ids[A.PARENT_ID] = parent_span_id
        self.ids[A.SPAN_NAME] = record.span_name
        self.ids[A.SPAN_KIND] = _CLIENT if record.client else _INTERNAL
        self.chunks = 0
        self.first_chunk_ns = 0
        self.chunk_ns: array[int] | None = None  # when each chunk came, if the gaps are recorded: 8 bytes each
        # The model and tool calls made below this run and not inside an agent or a tool below it,
        # and the one model they asked for (_MANY if several): an agent's own calls at its end.
        self.inference_calls = 0
        self.tool_calls = 0
        self.model: str | None = None
        self.context = context  # the span's, as it started (its trace flags, for an evaluation's event)


def guarded(method: F) -> F:
    """
    An lc_trace failure is counted and reported once; it never reaches the user's app.
    """

    @functools.wraps(method)
    def wrapper(self: Recorder, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception:
            _failed(self, method.__name__)
            return None

    return wrapper  # type: ignore[return-value]


def _failed(recorder: Recorder, name: str) -> None:
    """
    Count and report (once) an lc_trace failure in *name*; called from an ``except`` block.
    """
    recorder.stats.add("internal_errors")
    report_once(
        recorder.stats,
        f"internal:{name}",
        "internal error in %s (counted in stats.internal_errors)",
        name,
        exc_info=True,
    )


class Recorder:
    """
    Turns start/end/error/event calls into spans and log lines, keyed by LangChain run id.
    """

    def __init__(
        self,
        spans: SpanSink,
        logs: LogSink | ClosedLogSink | None,
        serializer: Serializer,
        *,
        metrics: MetricSink,
        capture: bool,
        log_tokens: bool,
        stats: Stats,
        max_open_runs: int = _DEFAULT_MAX_OPEN_RUNS,
        latest: bool = False,
    ) -> None:
        if max_open_runs < 1:
            raise ValueError(f"max_open_runs must be at least 1, got {max_open_runs}")
        self.spans = spans
        self.metrics = metrics
        self.logs = logs
        self.serializer = serializer
        self.capture = capture
        self.log_tokens = log_tokens and logs is not None
        self.stats = stats
        self.max_open_runs = max_open_runs
        # v0.1.0: a tool's span names the agent that called it; a model call that ended without
        # finishing says ``error`` in its finish reasons.
        self.latest = latest
        self._runs: dict[UUID, Run] = {}
        self._lock = threading.Lock()
        # Ended runs by run id, what an evaluation needs of each (``find_run``): two generations,
        # the older dropped whole when the newer is full, so keeping one costs a dict store.
        self._ended: dict[str, _Ended] = {}
        self._ended_before: dict[str, _Ended] = {}

    @property
    def open_runs(self) -> int:
        """
        Runs started and not yet ended.
        """
        return len(self._runs)

    def span_of(self, run_id: UUID) -> Span | None:
        """
        An open run's span as an API ``Span``, to make current while the run's code runs: the
        live span on the API path, a ``NonRecordingSpan`` with the span's context on the
        finished-span path (its context exists from the run's start). None for an unknown run.
        """
        run = self._runs.get(run_id)
        return self.spans.as_span(run.span) if run is not None else None

    # -- starts -----------------------------------------------------------------------------

    def start(
        self,
        mapper: Callable[..., Start],
        serialized: Any,
        payload: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        kwargs: dict[str, Any],
        remote: Span | None = None,
    ) -> None:
        """
        Open a run: map the start (``mapper(serialized, payload, **kwargs)``), start its span
        under its parent's (a root: under *remote*, a span of another service, when given), log
        ``<kind>_start``. Guarded inline: the per-event path takes no extra call for it.
        """
        try:
            runs = self._runs
            if run_id in runs:  # a duplicate start (a handler registered twice by hand): keep the first
                return
            ns = _time_ns()
            parent = runs.get(parent_run_id) if parent_run_id is not None else None
            try:
                record = mapper(
                    serialized,
                    payload,
                    run_id=run_id,
                    # The parent's id as text already: made once, at the parent's start.
                    parent_run_id=parent.attributes[A.LC_RUN_ID] if parent is not None else parent_run_id,
                    serializer=self.serializer,
                    capture=self.capture,
                    **kwargs,
                )
            except Exception:  # the run must still exist, or its children would start new traces
                self.stats.add("internal_errors")
                report_once(self.stats, "internal:map_start", "could not map a run start", exc_info=True)
                record = Start(CHAIN, "unknown", "unknown", False, {A.LC_RUN_ID: str(run_id), A.LC_RUN_TYPE: CHAIN})
            span = self.spans.start(record, parent.span if parent is not None else remote, ns)
            context = span.get_span_context()
            parent_span_id: str | None = None
            if parent is not None:  # a child shares its parent's trace: reuse the formatted id
                trace_id = parent.trace_id
                parent_span_id = parent.span_id
                span_id = format(context.span_id, "016x") if context.is_valid else _random_span_id()
            elif context.is_valid:
                trace_id = format(context.trace_id, "032x")
                span_id = format(context.span_id, "016x")
                # What the span sink nested this root under: another service's span, else the current one.
                above = (remote if remote is not None else get_current_span()).get_span_context()
                if above.is_valid and above.trace_id == context.trace_id:
                    parent_span_id = format(above.span_id, "016x")
            else:  # no SDK: the log lines still need ids that group and nest
                trace_id = format(random.getrandbits(128), "032x")
                span_id = _random_span_id()
            run = Run(run_id, parent, record, span, ns, trace_id, span_id, parent_span_id, context)
            with self._lock:
                runs[run_id] = run
                if parent is not None:
                    if parent.children is None:
                        parent.children = {run_id}
                    else:
                        parent.children.add(run_id)
                evicted = self._evict() if len(runs) > self.max_open_runs else None
            if parent is not None and record.run_type == TOOL:
                self._promote_graph(parent)
            if evicted:
                self._close_evicted(evicted, ns)
            if self.logs is not None:
                self._log("info", run.actions[0], run, record.content, ns)
        except Exception:
            _failed(self, "start")

    def _evict(self) -> list[Run]:
        """Take the oldest runs beyond the cap out of the table (the lock is held)."""
        runs = self._runs
        return [runs.pop(next(iter(runs))) for _ in range(len(runs) - self.max_open_runs)]

    def _close_evicted(self, evicted: list[Run], ns: int) -> None:
        for old in evicted:
            self.stats.add("runs_evicted")
            report_once(
                self.stats,
                EVICTED,
                "more than %d runs open at once; the oldest are closed as %r",
                self.max_open_runs,
                EVICTED,
            )
            self._close(old, None, {}, {}, EVICTED, ns)

    # -- ends -------------------------------------------------------------------------------

    def end(self, run_id: UUID, build: Callable[[], tuple[dict[str, Any], dict[str, str]]] | None = None) -> None:
        """
        Close a run that succeeded: end attributes and output from *build*. Guarded inline,
        as ``start`` is.
        """
        try:
            run = self._take(run_id)
            if run is None:
                return
            ns = _time_ns()
            attributes: dict[str, Any] = {}
            content: dict[str, str] = {}
            try:
                if build is not None:
                    attributes, content = build()
            finally:
                self._close(run, None, attributes, content, None, ns)
        except Exception:
            _failed(self, "end")

    @guarded
    def error(self, run_id: UUID, error: BaseException, extra: Callable[[], dict[str, str]] | None = None) -> None:
        """
        Close a run that raised. A failure gets status ERROR; a cancellation, a stream left
        early or a LangGraph interrupt is a stop, not a failure.
        """
        run = self._take(run_id)
        if run is None:
            return
        ns = _time_ns()
        reason = classify_error(error)
        attributes: dict[str, Any] = {}
        content: dict[str, str] = {}
        try:
            if reason == FAILED:
                attributes = error_attributes(error, self.serializer)
            if extra is not None:
                content = extra()
        finally:
            self._close(run, reason, attributes, content, None if reason == FAILED else reason, ns)

    def _take(self, run_id: UUID) -> Run | None:
        with self._lock:
            run = self._runs.pop(run_id, None)
            if run is not None:
                parent = run.parent
                if parent is not None and parent.children is not None:
                    parent.children.discard(run_id)
        return run

    def _close(
        self,
        run: Run,
        reason: str | None,
        attributes: dict[str, Any],
        content: dict[str, str],
        end_reason: str | None,
        ns: int,
    ) -> None:
        if run.children:
            self._close_children(run, reason, ns)
        kind = run.run_type
        if kind in MODEL_RUN_TYPES:
            if run.chunks:
                attributes[A.GEN_AI_REQUEST_STREAM] = True
                attributes[A.LC_STREAM_CHUNKS] = run.chunks
                attributes[A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (run.first_chunk_ns - run.start_ns) / 1e9
            elif A.GEN_AI_REQUEST_STREAM not in run.attributes:
                attributes[A.GEN_AI_REQUEST_STREAM] = False
            if self.latest and (reason is not None or end_reason is not None):
                choices = run.attributes.get(A.GEN_AI_REQUEST_CHOICE_COUNT, 1)
                attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] = (FINISH_ERROR,) * choices
        elif kind == TOOL and self.latest and (agent := _agent_above(run)) is not None:
            attributes[A.GEN_AI_AGENT_NAME] = agent
        if end_reason is not None:
            attributes[A.LC_END_REASON] = end_reason
        if kind in MODEL_RUN_TYPES:
            recorded = self.metrics.model_call(
                run.attributes,
                attributes,
                (ns - run.start_ns) / 1e9,
                (run.first_chunk_ns - run.start_ns) / 1e9 if run.chunks else None,
                run.chunk_ns,
            )
            if recorded and run.parent is not None:  # for the agent above, if any
                self._pass_up(run, 1, 0, run.attributes.get(A.GEN_AI_REQUEST_MODEL))
        elif kind in _MEASURED:
            self._measure(run, attributes, ns)
        elif run.inference_calls or run.tool_calls:  # a chain with calls below it: its parent's now
            self._pass_up(run, run.inference_calls, run.tool_calls, run.model)
        fields = {**attributes, **content} if content else attributes
        self.spans.end(run.span, fields, reason, ns)  # sinks copy what they keep: the line reuses the dict
        fields[A.EVENT_OUTCOME] = (
            "success" if reason is None and end_reason is None else "failure" if reason == FAILED else "unknown"
        )
        fields[A.EVENT_DURATION] = ns - run.start_ns
        if self.logs is not None:
            if reason == FAILED:
                self._log("error", run.actions[2], run, fields, ns)
            else:
                self._log("info", run.actions[1], run, fields, ns)
        if _evaluation.remembering:  # from the process's first evaluation on
            self._remember(run, attributes)

    def _remember(self, run: Run, attributes: dict[str, Any]) -> None:
        """Keep what an evaluation needs of an ended run (*attributes*: its end's)."""
        ended = self._ended
        ended[run.attributes[A.LC_RUN_ID]] = _evaluable(run, attributes)
        if len(ended) >= _REMEMBERED:  # a race with another thread here loses a remembered run, nothing else
            self._ended_before, self._ended = ended, {}

    def _measure(self, run: Run, attributes: dict[str, Any], ns: int) -> None:
        """
        The metrics of an agent, tool or retriever run, and the tool calls an agent above it
        will count: kept only while a meter provider records (nothing to count for otherwise).
        """
        metrics = self.metrics
        if not metrics.records_agents():
            return
        kind = run.run_type
        duration_s = (ns - run.start_ns) / 1e9
        if kind == AGENT:
            error = attributes.get(A.ERROR_TYPE)
            metrics.agent_call(run.name, duration_s, run.inference_calls, run.tool_calls, error, run.model or None)
        elif kind == TOOL:
            metrics.tool_call(run.attributes, attributes, duration_s, _agent_above(run))
            if run.parent is not None:  # what ran inside the tool is the tool's own work
                self._pass_up(run, 0, 1, None)
        else:
            metrics.retrieval(run.attributes, attributes, duration_s)

    def _pass_up(self, run: Run, calls: int, tools: int, asked: str | None) -> None:
        """
        Add *calls* model calls, *tools* tool calls and the model *asked* for to the parent of
        *run*, where an agent's end finds them. Under the lock: parallel tool calls end on threads.
        """
        parent = run.parent
        if parent is None:
            return
        with self._lock:
            parent.inference_calls += calls
            parent.tool_calls += tools
            if asked is not None and parent.model != asked:
                parent.model = asked if parent.model is None else _MANY

    def _close_children(self, parent: Run, reason: str | None, ns: int) -> None:
        """
        Children still open when their parent ends will never get an end event (LangChain sends
        none to a cancelled model, tool or retriever call): close them, saying why.
        """
        with self._lock:
            orphans = [self._runs.pop(child) for child in parent.children or () if child in self._runs]
            parent.children = None
        why = reason if reason not in (None, FAILED) else PARENT_ENDED
        for orphan in orphans:
            self._close(orphan, None, {}, {}, why, ns)

    @guarded
    def close_all(self) -> None:
        """
        Close every open run as ``shutdown`` (the handler is closing).
        """
        with self._lock:
            runs = list(self._runs.values())
            self._runs.clear()
        ns = now_ns()
        for run in runs:
            run.children = None
            self._close(run, None, {}, {}, SHUTDOWN, ns)

    # -- events inside a run ----------------------------------------------------------------

    def token(self, token: Any = "", *args: Any, run_id: UUID, **kwargs: Any) -> None:
        """
        A streamed chunk, straight from LangChain's ``on_llm_new_token`` (``token`` is a keyword
        on its sync path and positional on its async one): counted; the first one timed. Each
        later one is timed only while a meter provider records the gaps between chunks (decided
        at the run's first chunk). One lookup and one count, guarded inline (a ``try`` costs
        nothing until it catches) rather than through ``guarded``'s extra call.
        """
        try:
            run = self._runs.get(run_id)
            if run is None:
                return
            if run.chunk_ns is not None:
                run.chunk_ns.append(_time_ns())
            elif not run.chunks:
                run.first_chunk_ns = ns = _time_ns()
                if self.metrics.times_chunks():
                    run.chunk_ns = array("q", (ns,))
            run.chunks += 1
            if self.log_tokens:
                self._token_line(run, token)
        except Exception:
            _failed(self, "token")

    @guarded
    def _token_line(self, run: Run, token: Any) -> None:
        fields: dict[str, Any] = {A.LC_TOKEN_INDEX: run.chunks - 1}
        if self.capture:
            fields[A.LC_TOKEN] = self.serializer.dumps(token)
        self._log("info", "llm_new_token", run, fields, now_ns())

    @guarded
    def event(
        self, run_id: UUID | None, action: str, build: Callable[[], Mapping[str, Any]], *, agent: bool = False
    ) -> None:
        """
        A point event (custom event, agent action or finish, retry, text): a span event on its
        run and a log line. An agent action also marks its run as an agent.
        """
        ns = now_ns()
        run = self._runs.get(run_id) if run_id is not None else None
        fields = dict(build())
        if run is None:
            if run_id is not None:
                fields[A.LC_RUN_ID] = str(run_id)
            if self.logs is not None:
                self.logs.emit("info", action, {"_ns": ns, A.EVENT_ACTION: action, **fields})
            return
        if agent:
            self._promote(run)
        self.spans.event(run.span, action, fields, ns)
        self._log("info", action, run, fields, ns)

    def _promote(self, run: Run) -> None:
        """
        Make an open chain run an agent: ``invoke_agent {name}`` with the agent attributes.
        """
        if run.run_type == AGENT:
            return
        promoted = agent_attributes(run.name)
        run.run_type = AGENT
        run.attributes = {**run.attributes, **promoted}
        run.ids[A.SPAN_NAME] = name = f"{A.OP_INVOKE_AGENT} {run.name}"
        self.spans.rename(run.span, name, promoted)

    def _promote_graph(self, node: Run) -> None:
        """
        A LangGraph graph one of whose nodes runs a tool is an agent (``create_agent``,
        ``create_react_agent`` and hand-built ReAct graphs all have this shape).
        """
        graph = node.parent
        if graph is not None and graph.run_type == CHAIN and A.LC_METADATA_PREFIX + "langgraph_node" in node.attributes:
            self._promote(graph)

    # -- evaluations ------------------------------------------------------------------------

    def find_run(self, run_id: str) -> Target | None:
        """
        The span of run *run_id* (its text), open or among the runs ended lately (between
        ``_REMEMBERED`` and twice that many of the newest); None if neither.
        """
        run = self._runs.get(UUID(run_id))
        if run is not None:
            return _target(run_id, _evaluable(run, {}))
        ended = self._ended.get(run_id) or self._ended_before.get(run_id)
        return _target(run_id, ended) if ended is not None else None

    def find_root(self, trace_id: str) -> Target | None:
        """
        The span of trace *trace_id*'s top-level run (the first found: open runs in the order
        they started, then those ended lately), open or ended lately; None if neither.
        """
        for run in list(self._runs.values()):
            if run.trace_id == trace_id and A.LC_RUN_PARENT_ID not in run.attributes:
                return _target(run.attributes[A.LC_RUN_ID], _evaluable(run, {}))
        for run_id, ended in (*self._ended_before.items(), *self._ended.items()):
            if ended[0] == trace_id and ended[3]:
                return _target(run_id, ended)
        return None

    @guarded
    def evaluation(self, run_id: UUID, data: Any) -> None:
        """
        A ``gen_ai.evaluation.result`` custom event sent from run *run_id*: an evaluation of the
        run its data names (``run_id``), else of that run, written as ``record_evaluation``
        writes one (its line in this handler's log, its event on the global logger provider).
        The explanation is content: left out when content capture is off. Data that is no
        evaluation, or a run this handler does not hold, is counted and reported once
        (``stats.evaluations_rejected``), never raised into the app.
        """
        _evaluation.remember_ended_runs()
        try:
            attributes, named = event_verdict(data)
        except (TypeError, ValueError) as exc:
            self._reject(str(exc))
            return
        wanted = named or str(run_id)
        target = self.find_run(wanted)
        if target is None:
            self._reject(f"run {wanted} is neither open nor among the runs this handler ended lately")
            return
        if not self.capture:
            attributes.pop(A.GEN_AI_EVALUATION_EXPLANATION, None)
        write(attributes, target, self.logs)

    def _reject(self, why: str) -> None:
        self.stats.add("evaluations_rejected")
        report_once(
            self.stats,
            "evaluation_rejected",
            "a %r event was not recorded (counted in stats.evaluations_rejected): %s",
            EVALUATION_RESULT,
            why,
        )

    # -- log lines --------------------------------------------------------------------------

    def _log(self, level: str, action: str, run: Run, fields: Mapping[str, Any], ns: int) -> None:
        logs = self.logs
        if logs is not None:
            logs.emit_run(level, f"{action} {run.name}", ns, action, run.ids, run.attributes, fields)


def _agent_above(run: Run) -> str | None:
    """The name of the nearest agent above *run*, if any."""
    parent = run.parent
    while parent is not None:
        if parent.run_type == AGENT:
            return parent.name
        parent = parent.parent
    return None


def _evaluable(run: Run, end: Mapping[str, Any]) -> _Ended:
    """
    What an evaluation needs of *run* (*end*: its end's attributes, if it ended), in values the
    run already holds; model names only for a model call.
    """
    models = model_fields(run.attributes, end) if run.run_type in MODEL_RUN_TYPES else None
    return (run.trace_id, run.span_id, run.name, A.LC_RUN_PARENT_ID not in run.attributes, models, run.context)


def _target(run_id: str, evaluable: _Ended) -> Target:
    """The evaluation's view of a run, from ``_evaluable``'s."""
    trace_id, span_id, name, _, models, context = evaluable
    return Target(
        run_id=run_id,
        trace_id=trace_id,
        span_id=span_id,
        run_name=name,
        models=models or {},
        trace_flags=int(context.trace_flags) if context.is_valid else 0,
    )
