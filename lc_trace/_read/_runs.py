"""
Lines become runs, runs become traces.

A run is the lines that share a ``span.id``: its start line (the span's name, kind, parent and
start attributes), its events, and its end line (end attributes, outcome, duration); not the
evaluations given to it (``gen_ai.evaluation.result`` lines carry its span's ids, often long after
its end: ``_evaluations`` reads them). A run with
no end line (the process was killed, or is still running) is *unended*: its last line is the
last thing known about it. Every reading command agrees on what a run and a trace are because
they all build them here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from lc_trace import _attributes as A
from lc_trace._read._files import Line
from lc_trace._records import EVALUATION_RESULT, MODEL_RUN_TYPES

__all__ = [
    "END_ACTIONS",
    "IDLE_NS",
    "LINE_KEYS",
    "PROMOTED_KEYS",
    "QUIET_EVENTS",
    "SWEEP_EVERY",
    "USAGE_TOKEN_KEYS",
    "ModelCall",
    "RunView",
    "TraceView",
    "build_traces",
    "complete_traces",
    "failure_key",
    "find_trace",
    "model_call",
    "stream_runs",
]

QUIET_EVENTS = frozenset({"llm_new_token"})  # one per streamed chunk: counted on llm_end already
IDLE_NS = 120 * 1_000_000_000  # a trace with no run under way and no line for this long (log time) is done
SWEEP_EVERY = 8192  # lines between looks for such traces

# Fields that describe the line or the span itself, never a span attribute.
LINE_KEYS = frozenset(
    {
        A.TIMESTAMP,
        A.LOG_LEVEL,
        A.MESSAGE,
        A.ECS_VERSION_KEY,
        A.SERVICE_NAME,
        A.SERVICE_INSTANCE_ID,
        A.PROCESS_PID,
        A.EVENT_DATASET,
        A.EVENT_ACTION,
        A.EVENT_OUTCOME,
        A.EVENT_DURATION,
        A.TRACE_ID,
        A.SPAN_ID,
        A.PARENT_ID,
        A.SPAN_NAME,
        A.SPAN_KIND,
    }
)
# What a run learns when it turns out to be an agent (the recorder's promotion): run attributes
# that first appear on an event line, not the event's own fields.
PROMOTED_KEYS = frozenset({A.LC_RUN_TYPE, A.GEN_AI_OPERATION_NAME, A.GEN_AI_AGENT_NAME})


@dataclass(slots=True)
class RunView:
    """
    One LangChain run as its log lines tell it: the start, the end, the events in between.
    """

    span_id: str
    trace_id: str
    run_id: str | None = None
    parent_run_id: str | None = None
    parent_span_id: str | None = None
    name: str = "?"
    run_type: str = "?"
    span_name: str | None = None
    span_kind: str | None = None
    service: str | None = None
    instance: str | None = None
    pid: int | None = None
    first: Line | None = None
    last: Line | None = None
    end: Line | None = None
    events: list[Line] = field(default_factory=list)
    children: list[RunView] = field(default_factory=list)
    promoted: dict[str, Any] = field(default_factory=dict)

    @property
    def start_key(self) -> tuple[int, int]:
        """
        When the run started (its first line), for ordering siblings.
        """
        return (self.first.time_ns, self.first.seq) if self.first is not None else (0, 0)

    @property
    def start_ns(self) -> int:
        """
        The span's start: the end's time less ``event.duration`` (exact to the nanosecond,
        even when the start line was rotated away), else the first line's time.
        """
        if self.end is not None:
            duration = self.end.fields.get(A.EVENT_DURATION)
            if isinstance(duration, int):
                return self.end.time_ns - duration
        return self.first.time_ns if self.first is not None else 0

    @property
    def end_ns(self) -> int:
        """
        The span's end: the end line's time, else the last line's (an unended run).
        """
        last = self.end or self.last
        return last.time_ns if last is not None else self.start_ns

    @property
    def duration_ns(self) -> int:
        """
        ``event.duration`` of the end line; for an unended run, up to its last line.
        """
        if self.end is not None:
            duration = self.end.fields.get(A.EVENT_DURATION)
            if isinstance(duration, int):
                return duration
        return max(self.end_ns - self.start_ns, 0)

    @property
    def failed(self) -> bool:
        """
        The run ended in failure.
        """
        return self.end is not None and self.end.fields.get(A.EVENT_OUTCOME) == "failure"

    @property
    def failure(self) -> tuple[Any, Any] | None:
        """
        What a failed run's error was (``error.type``, ``error.message``); None if it did not fail.
        """
        if not self.failed:
            return None
        assert self.end is not None
        return failure_key(self.end.fields)

    @property
    def passed_up_from(self) -> RunView | None:
        """
        The failed child whose failure this run only passed up (see ``failure_key``), if any.
        """
        failure = self.failure
        if failure is None:
            return None
        return next((child for child in self.children if child.failure == failure), None)

    def usage(self, key: str) -> int:
        """
        A ``gen_ai.usage.*`` count of the end line (0 when absent).
        """
        return _int(self.end.fields.get(key)) if self.end is not None else 0

    def tokens(self) -> tuple[int, int]:
        """
        Input and output tokens the end line reports (zero for runs that are not models).
        """
        return self.usage(A.GEN_AI_USAGE_INPUT_TOKENS), self.usage(A.GEN_AI_USAGE_OUTPUT_TOKENS)

    def attributes(self) -> dict[str, Any]:
        """
        The span's attributes as the lines tell them: the start line's (attributes and
        content), what a promotion to agent added, then the end line's.
        """
        out: dict[str, Any] = {}
        start = self.first if self.first is not None and self.first.action.endswith("_start") else None
        for line in (start, self.end):  # no start line (rotated away): the end line repeats the rest
            if line is not None:
                out.update((k, v) for k, v in line.fields.items() if k not in LINE_KEYS)
        if self.end is None:
            out.update(self.promoted)
        return out

    def event_attributes(self, line: Line) -> dict[str, Any]:
        """
        A point event's own fields: the event line less the run's attributes it repeats.
        """
        start = self.first.fields if self.first is not None else {}
        return {
            k: v for k, v in line.fields.items() if k not in LINE_KEYS and k not in start and k not in PROMOTED_KEYS
        }


@dataclass(slots=True)
class TraceView:
    """
    The runs of one trace id, nested by parent span id (``langchain.run.parent_id`` for lines
    written before the parent's span id was logged).
    """

    trace_id: str
    runs: dict[str, RunView]
    roots: list[RunView]
    first_ns: int
    last_ns: int

    @property
    def root_name(self) -> str:
        """
        The name of the first top-level run.
        """
        return self.roots[0].name if self.roots else "?"

    @property
    def service(self) -> str:
        """
        The first top-level run's ``service.name``.
        """
        return (self.roots[0].service if self.roots else None) or "?"

    @property
    def duration_ns(self) -> int:
        """
        The root run's own duration; from first to last line when there is no single root.
        """
        if len(self.roots) == 1 and self.roots[0].end is not None:
            return self.roots[0].duration_ns
        return self.last_ns - self.first_ns

    def tokens(self) -> tuple[int, int]:
        """
        Input and output tokens summed over every model call in the trace.
        """
        counts = [run.tokens() for run in self.runs.values()]
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    @property
    def run_count(self) -> int:
        """
        How many runs the trace has.
        """
        return len(self.runs)

    @property
    def errors(self) -> int:
        """
        Failures counted where they happened: failed runs less those that only passed up a
        failed child's failure (``failure_key``).
        """
        return sum(1 for run in self.runs.values() if run.failed and run.passed_up_from is None)

    @property
    def failed_runs(self) -> int:
        """
        Runs that ended in failure, each one (a failure passed up through two parents is three).
        """
        return sum(1 for run in self.runs.values() if run.failed)

    @property
    def missing_parents(self) -> int:
        """
        Top-level runs whose parent span is in none of the lines read (a web request's span,
        or a run whose lines were rotated away).
        """
        return sum(1 for run in self.roots if run.parent_span_id)

    def model_calls(self) -> Iterator[ModelCall]:
        """
        The trace's chat model and LLM calls, for ``usage``.
        """
        for run in self.runs.values():
            if run.run_type in MODEL_RUN_TYPES:
                line = run.end or run.first
                yield model_call(
                    line.fields if line is not None else {}, run.service, run.start_ns, run.duration_ns, run.failed
                )


def failure_key(fields: dict[str, Any]) -> tuple[Any, Any]:
    """
    What tells one failure from another: a failed run whose failed child has the same
    ``error.type`` and ``error.message`` only passed that failure up (LangChain and LangGraph
    re-raise the child's exception through every parent), so it is not counted again.
    """
    return fields.get(A.ERROR_TYPE), fields.get(A.ERROR_MESSAGE)


@dataclass(frozen=True, slots=True)
class ModelCall:
    """
    One chat model or LLM call, as ``usage`` adds it up.
    """

    model: str
    conversation: str
    service: str
    start_ns: int
    duration_ns: int
    failed: bool
    tokens: tuple[int, int, int, int, int]  # the order of USAGE_TOKEN_KEYS
    provider: str | None = None  # gen_ai.provider.name
    usage_recorded: bool = False  # the line reports input or output tokens (absent: not known, not zero)
    ended: bool = True  # an end line was read (a call that never ended has only its start line)


USAGE_TOKEN_KEYS = (
    A.GEN_AI_USAGE_INPUT_TOKENS,
    A.GEN_AI_USAGE_OUTPUT_TOKENS,
    A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)
_CACHE_CREATION = USAGE_TOKEN_KEYS.index(A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)


def model_call(fields: dict[str, Any], service: str | None, start_ns: int, duration_ns: int, failed: bool) -> ModelCall:
    """
    A model call from its end line's *fields* (its start line's when it never ended).
    """
    get = fields.get
    tokens = [_int(get(key)) for key in USAGE_TOKEN_KEYS]
    # A v0.1.0 line names the cache write as its conventions do: one count either way.
    tokens[_CACHE_CREATION] = tokens[_CACHE_CREATION] or _int(get(A.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS))
    provider = get(A.GEN_AI_PROVIDER_NAME)
    action = get(A.EVENT_ACTION)
    return ModelCall(  # the names interned: a day has a few models and services, and many calls
        sys.intern(str(get(A.GEN_AI_RESPONSE_MODEL) or get(A.GEN_AI_REQUEST_MODEL) or "?")),
        sys.intern(str(get(A.GEN_AI_CONVERSATION_ID) or "-")),
        sys.intern(service or "?"),
        start_ns,
        duration_ns,
        failed,
        tuple(tokens),  # type: ignore[arg-type]
        sys.intern(provider) if type(provider) is str and provider else None,
        A.GEN_AI_USAGE_INPUT_TOKENS in fields or A.GEN_AI_USAGE_OUTPUT_TOKENS in fields,
        type(action) is str and action.endswith(END_ACTIONS),
    )


def _new_run(span_id: str, trace_id: str, line: Line) -> RunView:
    """
    A run from its first line (every line of a run repeats what its start said).
    """
    get = line.fields.get
    return RunView(
        span_id,
        trace_id,
        get(_RUN_ID),
        get(_RUN_PARENT_ID),
        get(_PARENT_ID),
        str(get(_RUN_NAME, "?")),
        str(get(_RUN_TYPE, "?")),
        get(_SPAN_NAME),
        get(_SPAN_KIND),
        get(_SERVICE),
        get(A.SERVICE_INSTANCE_ID),  # the process that wrote the line (absent from older logs)
        get(A.PROCESS_PID),
        line,
    )


_RUN_ID, _RUN_PARENT_ID, _PARENT_ID, _RUN_NAME = A.LC_RUN_ID, A.LC_RUN_PARENT_ID, A.PARENT_ID, A.LC_RUN_NAME
_RUN_TYPE, _SPAN_NAME, _SPAN_KIND, _SERVICE = A.LC_RUN_TYPE, A.SPAN_NAME, A.SPAN_KIND, A.SERVICE_NAME
_ACTION, END_ACTIONS = A.EVENT_ACTION, ("_end", "_error")


def _add_line(run: RunView, line: Line, action: str) -> bool:
    """
    What one line (whose ``event.action`` is *action*) tells of its run; True when it is the run's end.
    """
    fields = line.fields
    run.last = line
    if action.endswith(END_ACTIONS):
        run.end = line
        run.run_type = str(fields.get(_RUN_TYPE, run.run_type))  # a chain may turn out to be an agent
        run.span_name = fields.get(_SPAN_NAME, run.span_name)
        return True
    if not action.endswith("_start") and action not in QUIET_EVENTS:
        run.events.append(line)
        if fields.get(_RUN_TYPE) != run.run_type and _RUN_TYPE in fields:  # promoted to an agent
            run.run_type = str(fields[_RUN_TYPE])
            run.span_name = fields.get(_SPAN_NAME, run.span_name)
            run.promoted = {k: fields[k] for k in PROMOTED_KEYS if k in fields}
    return False


@dataclass(slots=True)
class _Under:
    """
    A trace whose runs ``stream_runs`` is reading: its span ids, its runs not yet ended, its
    ended runs waiting to know whether their parent is in the files.
    """

    spans: set[str] = field(default_factory=set)
    by_run_id: dict[Any, str] = field(default_factory=dict)
    open: dict[str, RunView] = field(default_factory=dict)
    waiting: list[RunView] = field(default_factory=list)
    last_ns: int = 0


def stream_runs(
    lines: Iterable[Line], wanted: Callable[[str], bool] = lambda trace_id: True, unspanned: list[int] | None = None
) -> Iterator[tuple[RunView, bool]]:
    """
    Every run of the traces *wanted* accepts, each as soon as it has ended (runs that never
    end, at the end of the lines), with whether its parent span is in none of the lines. Only
    the runs under way are held: memory follows the traffic in flight, not the file.

    A run whose parent span has not been seen when it ends waits until its trace has had no
    run under way and no line for ``IDLE_NS`` of log time (or the lines end): a parent
    written by another process may come a batch later. Runs are not nested (``children`` is
    empty): a run's span needs only its own lines and its parent's span id. *unspanned*
    counts the lines that belong to no span (lc_trace's own notices).
    """
    under: dict[str, _Under] = {}
    now_ns = 0
    countdown = SWEEP_EVERY
    skip: set[str] = set()
    for line in lines:
        fields = line.fields
        trace_id = fields.get(A.TRACE_ID)
        span_id = fields.get(A.SPAN_ID)
        if type(trace_id) is not str or type(span_id) is not str:
            if unspanned is not None:
                unspanned[0] += 1
            continue
        if trace_id in skip:
            continue
        action = fields.get(_ACTION)
        if type(action) is not str:
            action = ""
        elif action == EVALUATION_RESULT:  # a score given to the run: not one of its lines
            continue
        trace = under.get(trace_id)
        if trace is None:
            if not wanted(trace_id):
                skip.add(trace_id)
                continue
            trace = under[trace_id] = _Under()
        time_ns = line.time_ns
        if time_ns > now_ns:
            now_ns = time_ns
        trace.last_ns = time_ns
        run = trace.open.get(span_id)
        if run is None:
            run = trace.open[span_id] = _new_run(span_id, trace_id, line)
            trace.spans.add(span_id)
            if run.run_id is not None:
                trace.by_run_id[run.run_id] = span_id
            if run.parent_span_id is None and run.parent_run_id is not None:  # from before parent.id was logged
                run.parent_span_id = trace.by_run_id.get(run.parent_run_id)
        if _add_line(run, line, action):
            del trace.open[span_id]
            if run.parent_span_id is None or run.parent_span_id in trace.spans:
                yield run, False
            else:
                trace.waiting.append(run)
        countdown -= 1
        if not countdown:
            countdown = SWEEP_EVERY
            for key in [k for k, t in under.items() if not t.open and t.last_ns < now_ns - IDLE_NS]:
                yield from _settle(under.pop(key))
    for trace in under.values():
        yield from _settle(trace)


def _settle(trace: _Under) -> Iterator[tuple[RunView, bool]]:
    for run in [*trace.waiting, *trace.open.values()]:
        yield run, run.parent_span_id is not None and run.parent_span_id not in trace.spans


def build_traces(lines: Iterable[Line]) -> list[TraceView]:
    """
    Group lines into traces by ``trace.id`` and runs by ``span.id``, then nest the runs;
    oldest trace first. Lines with no trace (lc_trace's own notices) and evaluations are left out.
    """
    grouped: dict[str, dict[str, RunView]] = {}
    bounds: dict[str, list[int]] = {}
    for line in lines:
        fields = line.fields
        trace_id, span_id = fields.get(A.TRACE_ID), fields.get(A.SPAN_ID)
        if not isinstance(trace_id, str) or not isinstance(span_id, str):
            continue
        action = fields.get(_ACTION)
        if type(action) is not str:
            action = ""
        elif action == EVALUATION_RESULT:  # a score given to the run: not one of its lines
            continue
        runs = grouped.get(trace_id)
        if runs is None:
            runs = grouped[trace_id] = {}
            bounds[trace_id] = [line.time_ns, line.time_ns]
        else:
            span = bounds[trace_id]
            if line.time_ns < span[0]:
                span[0] = line.time_ns
            elif line.time_ns > span[1]:
                span[1] = line.time_ns
        run = runs.get(span_id)
        if run is None:
            run = runs[span_id] = _new_run(span_id, trace_id, line)
        _add_line(run, line, action)
    traces = []
    for trace_id, runs in grouped.items():
        by_run_id = {run.run_id: run for run in runs.values() if run.run_id}
        roots: list[RunView] = []
        for run in sorted(runs.values(), key=lambda r: r.start_key):
            parent = runs.get(run.parent_span_id) if run.parent_span_id else None
            if parent is None and run.parent_run_id:  # lines from before parent.id was logged
                parent = by_run_id.get(run.parent_run_id)
                if parent is not None and parent is not run:
                    run.parent_span_id = parent.span_id
            (parent.children if parent is not None and parent is not run else roots).append(run)
        traces.append(TraceView(trace_id, runs, roots, *bounds[trace_id]))
    traces.sort(key=lambda t: (t.first_ns, t.roots[0].start_key if t.roots else (0, 0)))
    return traces


def complete_traces(lines: Iterable[Line], wanted: Mapping[str, int]) -> Iterator[TraceView]:
    """
    The traces of *wanted* (trace id → how many lines it has, from a first pass), each built
    and yielded as soon as its last line is read: only the lines of traces under way are held.
    """
    left = dict(wanted)
    held: dict[str, list[Line]] = {}
    for line in lines:
        trace_id = line.fields.get(A.TRACE_ID)
        count = left.get(trace_id) if isinstance(trace_id, str) else None
        if count is None or not isinstance(line.fields.get(A.SPAN_ID), str):
            continue
        if line.fields.get(_ACTION) == EVALUATION_RESULT:  # not among the lines summarise counted
            continue
        assert isinstance(trace_id, str)
        held.setdefault(trace_id, []).append(line)
        if count > 1:
            left[trace_id] = count - 1
        else:
            del left[trace_id]
            yield from build_traces(held.pop(trace_id))
    for rest in held.values():  # fewer lines than counted: the files changed between the passes
        yield from build_traces(rest)


class _HasTraceId(Protocol):
    @property
    def trace_id(self) -> str: ...


_T = TypeVar("_T", bound=_HasTraceId)


def find_trace(traces: Sequence[_T], prefix: str) -> _T:
    """
    The one trace whose id starts with *prefix*.

    Raises:
        LookupError: no trace, or more than one, has that prefix.
    """
    wanted = prefix.strip().lower()
    found = [t for t in traces if t.trace_id.lower().startswith(wanted)] if wanted else []
    if not found:
        raise LookupError(f"no trace id starts with {prefix!r}")
    if len(found) > 1:
        ids = ", ".join(t.trace_id for t in found[:5])
        raise LookupError(
            f"{prefix!r} matches {len(found)} traces ({ids}{', …' if len(found) > 5 else ''}); give more of the id"
        )
    return found[0]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
