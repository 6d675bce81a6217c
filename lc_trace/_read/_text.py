"""
The reading commands' terminal output: the trace table, the run tree, ``tail``'s short lines,
the usage tables, the export report, and the progress shown on stderr while a big log is read.

Pure formatting over the read side's traces and summaries; the commands only choose what to
print. Column formats are aligned by hand, hence the long lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lc_trace import _attributes as A
from lc_trace._read._cost import COST_HEADER, cost_cell, cost_notes
from lc_trace._read._files import Line
from lc_trace._read._runs import RunView, TraceView
from lc_trace._records import NEVER_ENDED

if TYPE_CHECKING:
    from lc_trace._read._export import ExportSummary
    from lc_trace._read._summary import TraceSummary
    from lc_trace._read._usage import UsageReport

__all__ = [
    "HEADER",
    "ExportProgress",
    "ReadProgress",
    "export_report",
    "report_invalid",
    "summary_line",
    "tail_text",
    "tree_lines",
    "usage_tables",
]

HEADER = f"{'TRACE ID':<32}  {'STARTED (UTC)':<19}  {'ROOT':<24}  {'RUNS':>4}  {'DURATION':>11}  {'TOKENS IN/OUT':>13}  {'ERRORS':>6}"


def summary_line(trace: TraceView | TraceSummary) -> str:
    """
    One trace on one line: id, start, root run, runs, duration, tokens, errors (counted where
    they happened: a failure passed up through its parents is one).
    """
    tokens_in, tokens_out = trace.tokens()
    return (
        f"{trace.trace_id:<32}  {_clock(trace.first_ns):<19}  {_cut(trace.root_name, 24):<24}  {trace.run_count:>4}  "
        f"{_ms(trace.duration_ns):>11}  {f'{tokens_in}/{tokens_out}':>13}  {trace.errors:>6}"
    )


def tree_lines(trace: TraceView) -> Iterator[str]:
    """
    The run tree: two spaces of indent per level; a run's events (``*``) and its child runs
    in the order they happened.
    """
    tokens_in, tokens_out = trace.tokens()
    failed = f" ({trace.failed_runs} failed runs)" if trace.failed_runs > trace.errors else ""
    yield (
        f"trace {trace.trace_id}  {_clock(trace.first_ns)} UTC  root {trace.root_name}  {len(trace.runs)} runs  "
        f"{_ms(trace.duration_ns)}  tokens {tokens_in} in / {tokens_out} out  {trace.errors} error(s){failed}"
    )
    stack: list[tuple[int, RunView | Line]] = [(0, root) for root in reversed(trace.roots)]
    while stack:
        depth, item = stack.pop()
        indent = "  " * depth
        if isinstance(item, Line):
            yield f"{indent}* {_event_text(item)}"
            continue
        yield f"{indent}{_run_text(item)}"
        below: list[tuple[tuple[int, int], RunView | Line]] = [(child.start_key, child) for child in item.children]
        below += [((event.time_ns, event.seq), event) for event in item.events]
        below.sort(key=lambda pair: pair[0])
        stack.extend((depth + 1, thing) for _, thing in reversed(below))


def _run_text(run: RunView) -> str:
    parts = [f"{run.name} [{run.run_type}]"]
    end = run.end
    if end is None:
        parts.append("no end recorded (still running, or the process stopped)")
    else:
        outcome = str(end.get(A.EVENT_OUTCOME, "?"))
        reason = end.get(A.LC_END_REASON)
        parts.append(f"{end.get(A.EVENT_ACTION)} {outcome}" + (f" ({reason})" if reason else ""))
        duration = end.get(A.EVENT_DURATION)
        if isinstance(duration, int):
            parts.append(_ms(duration))
    last = end or run.first
    if last is not None:
        model = last.get(A.GEN_AI_RESPONSE_MODEL) or last.get(A.GEN_AI_REQUEST_MODEL)
        parts += [f"model {model}"] if model else []
        tool = last.get(A.GEN_AI_TOOL_NAME)
        parts += [f"tool {tool}"] if tool else []
    if end is not None and (A.GEN_AI_USAGE_INPUT_TOKENS in end.fields or A.GEN_AI_USAGE_OUTPUT_TOKENS in end.fields):
        tokens_in, tokens_out = run.tokens()
        parts.append(f"tokens {tokens_in} in / {tokens_out} out")
    if end is not None and end.get(A.ERROR_TYPE):
        passed_up = run.passed_up_from
        if passed_up is not None:  # the same failure as a child's: shown, counted once (at the child)
            parts.append(f"error {end.get(A.ERROR_TYPE)} passed up from {passed_up.name}")
        else:
            message = str(end.get(A.ERROR_MESSAGE, "")).strip().splitlines()
            parts.append(f"error {end.get(A.ERROR_TYPE)}: {message[0] if message else ''}")
    return "  ".join(parts)


def _event_text(line: Line) -> str:
    action = str(line.get(A.EVENT_ACTION, "?"))
    details = {
        "custom_event": (line.get(A.LC_EVENT_NAME), line.get(A.LC_EVENT_DATA)),
        "agent_action": (line.get(A.LC_AGENT_TOOL), line.get(A.LC_AGENT_TOOL_INPUT)),
        "agent_finish": (None, line.get(A.LC_AGENT_OUTPUT)),
        "retry": (f"attempt {line.get(A.LC_RETRY_ATTEMPT)}", None),
        "text": (None, line.get(A.LC_TEXT)),
    }.get(action, (None, None))
    return "  ".join(str(x) for x in (action, details[0], _cut(details[1], 100) if details[1] else None) if x)


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.1f} ms"


def _clock(time_ns: int) -> str:
    if time_ns <= 0:
        return "?"
    return datetime.fromtimestamp(time_ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _cut(value: Any, width: int) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def tail_text(line: Line) -> str:
    """
    One log line as one short line: time, trace, level, message, outcome, duration, error.
    """
    stamp = str(line.get(A.TIMESTAMP, "?"))[11:26]
    trace = str(line.get(A.TRACE_ID, ""))[:8] or "-" * 8
    outcome = line.get(A.EVENT_OUTCOME)
    duration = line.get(A.EVENT_DURATION)
    extra = [str(outcome) if outcome else "", _ms(duration) if isinstance(duration, int) else ""]
    if line.get(A.ERROR_TYPE):
        extra.append(f"{line.get(A.ERROR_TYPE)}: {_cut(line.get(A.ERROR_MESSAGE, ''), 80)}")
    return "  ".join(
        x for x in (stamp, trace, f"{line.get(A.LOG_LEVEL, '?'):<7}", str(line.get(A.MESSAGE, "")), *extra) if x
    )


def usage_tables(report: UsageReport) -> Iterator[str]:
    """
    ``usage``'s tables: one per grouping (model, conversation, service, time), then the total,
    then where the prices come from and the calls not priced.
    """
    columns = f"{'CALLS':>6}  {'ERRORS':>6}  {'INPUT':>9}  {'OUTPUT':>9}  {'CACHE READ':>10}  {'REASONING':>9}  {'P50 MS':>8}  {'P90 MS':>8}  {'P99 MS':>8}{COST_HEADER}"

    def row(key: str, usage: Any) -> str:
        t = usage.tokens
        p = [usage.percentile_ms(share) for share in (0.5, 0.9, 0.99)]
        ms = "  ".join(f"{v:>8.1f}" if v is not None else f"{'-':>8}" for v in p)
        return (
            f"{_cut(key, 28):<28}  {usage.calls:>6}  {usage.errors:>6}  {t['input']:>9}  {t['output']:>9}  "
            f"{t['cache_read']:>10}  {t['reasoning']:>9}  {ms}{cost_cell(usage.cost)}"
        )

    titles = {
        "model": "MODEL",
        "conversation": "CONVERSATION",
        "service": "SERVICE",
        "time": report.bucket.upper() + " (UTC)",
    }
    for name, groups in report.groups.items():
        yield f"{titles[name]:<28}  {columns}"
        for key, usage in sorted(groups.items()):
            yield row(key, usage)
        yield ""
    yield f"{'TOTAL':<28}  {columns}"
    yield row("all model calls", report.total)
    yield from cost_notes(report.total.cost)


def export_report(summary: ExportSummary, skipped: int) -> str:
    """
    What an export sent, refused and skipped, and what it had to make up (ends, parents).
    """
    missing = ""
    if summary.missing_parents and summary.detached:
        missing = (
            f"; {summary.missing_parents} roots whose parent span is in no file sent as roots, linked to that parent"
        )
    elif summary.missing_parents:
        missing = (
            f"; {summary.missing_parents} roots point at a parent span that is in no file "
            "(a web request's, for instance: --detach-missing-parents sends them as roots linked to it)"
        )
    return (
        f"{summary.traces} traces: {summary.sent} spans sent, {summary.refused} refused, "
        f"{skipped} lines skipped (not JSON, or no span)"
        + (
            f"; {summary.never_ended} never ended (sent as ended at their last line, end_reason {NEVER_ENDED})"
            if summary.never_ended
            else ""
        )
        + missing
    )


def report_invalid(invalid: list[str]) -> None:
    """
    Say once on stderr how many lines were not JSON objects, and where the first was.
    """
    if invalid:
        print(
            f"lc-trace: skipped {len(invalid)} invalid line(s) that are not JSON objects (first: {invalid[0]})",
            file=sys.stderr,
        )


_PROGRESS_AFTER_S = 1.0  # a read quicker than this shows no progress


class ReadProgress:
    """
    ``reading 120/600 MB`` on stderr, redrawn in place at most ten times a second, from one
    second in (a quick read shows nothing); cleared when done.
    """

    def __init__(self, total: int, what: str) -> None:
        self.total, self.what = max(total, 1), what
        self.read = 0
        self.started, self.drawn = time.monotonic(), 0.0
        self.shown = False

    def __call__(self, count: int) -> None:
        self.read += count
        now = time.monotonic()
        if now - self.started < _PROGRESS_AFTER_S or now - self.drawn < 0.1:
            return
        self.drawn, self.shown = now, True
        print(f"\r{self.what} {self.read / 1e6:,.0f}/{self.total / 1e6:,.0f} MB", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.shown:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


class ExportProgress:
    """
    ``[#####.....] 120.0/600.0 MB read, 35,000 spans`` (handed to the exporter) on stderr, redrawn in place at most ten
    times a second (a terminal only).
    """

    def __init__(self, total_bytes: int) -> None:
        self.total = max(total_bytes, 1)
        self.read_bytes = 0
        self.spans = 0
        self.drawn = 0.0

    def read(self, count: int) -> None:
        self.read_bytes += count
        self.draw()

    def sent(self, count: int) -> None:
        self.spans += count
        self.draw()

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.drawn < 0.1:
            return
        self.drawn = now
        filled = 30 * self.read_bytes // self.total
        print(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.read_bytes / 1e6:,.1f}/{self.total / 1e6:,.1f} MB read, "
            f"{self.spans:,} spans",
            end="",
            file=sys.stderr,
            flush=True,
        )

    def done(self) -> None:
        self.draw(force=True)
        print(file=sys.stderr)
