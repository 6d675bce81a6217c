"""
One pass over a log that keeps a few numbers per trace, never its lines.

``traces``, ``usage``, ``html``'s list and ``export``'s and ``show``'s first pass need only
what a trace's summary row says: when it started, its root, how many runs, tokens, failures,
whether it passes the filters. Holding every parsed line (``build_traces``) costs several
times the file; this holds per trace a summary of a few hundred bytes, plus the span ids of the
traces still under way. A trace whose runs have all ended and that has had no line for
``IDLE_NS`` of log time is folded into its summary and its span ids dropped, so memory
follows the traffic in flight and the number of traces, not the size of the file.

A line that comes for a folded trace (another process's batch, far later) reopens it: its
numbers are added to the summary; its runs' parents are looked for among the runs seen since.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lc_trace import _attributes as A
from lc_trace._read._files import Line
from lc_trace._read._filters import Filter
from lc_trace._read._runs import END_ACTIONS, IDLE_NS, QUIET_EVENTS, SWEEP_EVERY, ModelCall, failure_key, model_call
from lc_trace._records import EVALUATION_RESULT, MODEL_RUN_TYPES

__all__ = ["TraceSummary", "summarise"]


@dataclass(slots=True)
class TraceSummary:
    """
    What the reading commands show of a trace without its lines (``TraceView``'s figures).
    """

    trace_id: str
    first_ns: int
    last_ns: int
    first_seq: int
    lines: int = 0
    run_count: int = 0
    root_name: str = "?"
    service: str = "?"
    duration_ns: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    errors: int = 0
    failed_runs: int = 0
    missing_parents: int = 0
    calls: list[ModelCall] | None = None

    def tokens(self) -> tuple[int, int]:
        """
        Input and output tokens summed over every model call in the trace.
        """
        return self.tokens_in, self.tokens_out

    def model_calls(self) -> Iterator[ModelCall]:
        """
        The model calls (kept when ``summarise`` was asked for them).
        """
        return iter(self.calls or ())


@dataclass(slots=True)
class _Root:
    """
    A run whose parent was not among the trace's runs when it was first seen.
    """

    parent_id: str | None
    name: str
    service: str | None
    key: tuple[int, int]
    duration_ns: int | None = None


@dataclass(slots=True)
class _Failure:
    span_id: str
    parent_id: str | None
    run_id: Any
    parent_run_id: Any
    key: tuple[Any, Any]


@dataclass(slots=True)
class _Open:
    """
    A trace under way: the summary being filled, and what is needed until it is folded.
    """

    summary: TraceSummary
    spans: set[str] = field(default_factory=set)
    unended: set[str] = field(default_factory=set)
    roots: dict[str, _Root] = field(default_factory=dict)
    failures: list[_Failure] = field(default_factory=list)
    calls: dict[str, list[Any]] = field(default_factory=dict)  # model runs under way: [first line, its ns, last ns]
    folded_before: bool = False


def summarise(
    lines: Iterable[Line],
    wanted: Filter | None = None,
    *,
    calls: bool = False,
    on_call: Callable[[TraceSummary, ModelCall], None] | None = None,
    on_evaluation: Callable[[Line], None] | None = None,
) -> list[TraceSummary]:
    """
    The summaries of the traces in *lines* that pass *wanted*, oldest first; with *calls*,
    each keeps its model calls (for ``usage``); *on_call* is handed each model call as it is
    read, with its trace's summary, and nothing is kept per call (``html``'s costs). Lines with
    no trace are left out; evaluation lines (of the traces *wanted* names by id) go to
    *on_evaluation*, and count for nothing here.
    """
    add_call = on_call if on_call is not None else _keep_call if calls else None
    wanted = wanted or Filter()
    open_: dict[str, _Open] = {}
    done: dict[str, TraceSummary] = {}
    service_hits: set[str] = set()  # traces with a line of --service
    action_hits: set[str] = set()  # ... and of --action
    actions: dict[str, bool] = {}  # event.action → it matches --action
    check_services, check_actions = bool(wanted.services), bool(wanted.actions)
    prefixes = wanted.traces
    now_ns = 0
    countdown = SWEEP_EVERY
    intern = sys.intern
    for line in lines:
        fields = line.fields
        trace_id = fields.get(A.TRACE_ID)
        span_id = fields.get(A.SPAN_ID)
        if type(trace_id) is not str or type(span_id) is not str:
            continue
        if prefixes and not trace_id.startswith(prefixes):
            continue
        action = fields.get(A.EVENT_ACTION)
        if type(action) is not str:
            action = ""
        elif action == EVALUATION_RESULT:  # a score given to a run, not a line of it
            if on_evaluation is not None:
                on_evaluation(line)
            continue
        time_ns = line.time_ns
        if time_ns > now_ns:
            now_ns = time_ns
        trace = open_.get(trace_id)
        if trace is None:
            folded = done.pop(trace_id, None)
            trace = _Open(
                folded or TraceSummary(trace_id, time_ns, time_ns, line.seq), folded_before=folded is not None
            )
            if calls and trace.summary.calls is None:
                trace.summary.calls = []
            open_[trace_id] = trace
        summary = trace.summary
        summary.lines += 1
        if time_ns < summary.first_ns:
            summary.first_ns = time_ns
        elif time_ns > summary.last_ns:
            summary.last_ns = time_ns
        if check_actions and action not in QUIET_EVENTS and trace_id not in action_hits:
            matched = actions.get(action)
            if matched is None:
                matched = actions[action] = any(fnmatch.fnmatchcase(action, p) for p in wanted.actions)
            if matched:
                action_hits.add(trace_id)
        if check_services and trace_id not in service_hits and fields.get(A.SERVICE_NAME) in wanted.services:
            service_hits.add(trace_id)

        if span_id not in trace.spans:  # a run's first line
            trace.spans.add(span_id)
            summary.run_count += 1
            parent_id = fields.get(A.PARENT_ID)
            parent_run_id = fields.get(A.LC_RUN_PARENT_ID)
            # A root: no parent at all, or a parent span not seen yet (checked again when folded).
            # A line from before parent.id was logged names its parent run only: taken as a child.
            if (parent_id is None and parent_run_id is None) or (
                parent_id is not None and parent_id not in trace.spans
            ):
                service = fields.get(A.SERVICE_NAME)
                trace.roots[span_id] = _Root(
                    parent_id,
                    intern(str(fields.get(A.LC_RUN_NAME, "?"))),
                    intern(service) if type(service) is str else None,
                    (time_ns, line.seq),
                )
            if not action.endswith(END_ACTIONS):
                trace.unended.add(span_id)
            if add_call is not None and fields.get(A.LC_RUN_TYPE) in MODEL_RUN_TYPES:
                trace.calls[span_id] = [fields, time_ns, time_ns]
        elif trace.calls and span_id in trace.calls:
            trace.calls[span_id][2] = time_ns

        if action.endswith(END_ACTIONS):
            trace.unended.discard(span_id)
            duration = fields.get(A.EVENT_DURATION)
            duration = duration if type(duration) is int else 0
            tokens_in = fields.get(A.GEN_AI_USAGE_INPUT_TOKENS)
            if type(tokens_in) is int:
                summary.tokens_in += tokens_in
            tokens_out = fields.get(A.GEN_AI_USAGE_OUTPUT_TOKENS)
            if type(tokens_out) is int:
                summary.tokens_out += tokens_out
            root = trace.roots.get(span_id)
            if root is not None:
                root.duration_ns = duration
            failed = fields.get(A.EVENT_OUTCOME) == "failure"
            if failed:
                trace.failures.append(
                    _Failure(
                        span_id,
                        fields.get(A.PARENT_ID),
                        fields.get(A.LC_RUN_ID),
                        fields.get(A.LC_RUN_PARENT_ID),
                        failure_key(fields),
                    )
                )
            if add_call is not None:
                started = trace.calls.pop(span_id, None)
                if started is not None or fields.get(A.LC_RUN_TYPE) in MODEL_RUN_TYPES:
                    service = (started[0] if started is not None else fields).get(A.SERVICE_NAME)
                    add_call(summary, model_call(fields, service, time_ns - duration, duration, failed))

        countdown -= 1
        if not countdown:
            countdown = SWEEP_EVERY
            for key in [k for k, t in open_.items() if not t.unended and t.summary.last_ns < now_ns - IDLE_NS]:
                done[key] = _fold(open_.pop(key), add_call)
    for key, trace in open_.items():
        done[key] = _fold(trace, add_call)
    found = [
        s
        for s in done.values()
        if wanted.window(s.first_ns)
        and (not check_services or s.trace_id in service_hits)
        and (not check_actions or s.trace_id in action_hits)
        and (not wanted.errors or s.errors > 0)
    ]
    found.sort(key=lambda s: (s.first_ns, s.first_seq))
    return found


def _keep_call(summary: TraceSummary, call: ModelCall) -> None:
    assert summary.calls is not None
    summary.calls.append(call)


def _fold(trace: _Open, add_call: Callable[[TraceSummary, ModelCall], None] | None) -> TraceSummary:
    """
    Settle what needs the trace's runs together (its roots, which failures were passed up),
    then keep only the summary.
    """
    summary = trace.summary
    roots = sorted(
        (root for root in trace.roots.values() if root.parent_id is None or root.parent_id not in trace.spans),
        key=lambda root: root.key,
    )
    if not trace.folded_before or summary.root_name == "?":  # late lines do not change a settled root
        if roots:
            summary.root_name, summary.service = roots[0].name, roots[0].service or "?"
        duration = roots[0].duration_ns if len(roots) == 1 else None
        summary.duration_ns = duration if duration is not None else summary.last_ns - summary.first_ns
    summary.missing_parents += sum(1 for root in roots if root.parent_id is not None)
    by_span = {f.span_id: f for f in trace.failures}
    by_run = {f.run_id: f for f in trace.failures if f.run_id is not None}
    passed_up = set()
    for failure in trace.failures:
        parent = by_span.get(failure.parent_id) if failure.parent_id else by_run.get(failure.parent_run_id)
        if parent is not None and parent.key == failure.key:
            passed_up.add(parent.span_id)
    summary.failed_runs += len(trace.failures)
    summary.errors += len(trace.failures) - len(passed_up)
    if add_call is not None:
        for fields, first_ns, last_ns in trace.calls.values():  # model calls that never ended: up to their last line
            add_call(summary, model_call(fields, fields.get(A.SERVICE_NAME), first_ns, last_ns - first_ns, False))
    return summary
