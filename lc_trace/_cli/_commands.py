"""
One function per ``lc-trace`` command: each takes the parsed arguments, asks the read side
for what it shows, and prints it through the read side's text rendering (``_read._text``).

Every reading command streams the files and keeps per trace a summary, never the lines
(``_summary``); the commands that need a trace's runs (show, export, html's spans) read a
second time and build each trace they picked as soon as its last line is read. Both passes
read the same files up to the same sizes (``LogFiles``), however the app writes meanwhile.
At import only the reader is loaded (no SDK, no LangChain); ``export`` loads the OpenTelemetry
SDK, ``demo`` LangChain, when run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from lc_trace import _attributes as A
from lc_trace._paths import default_log_path
from lc_trace._read._evaluations import Evaluations, evaluation_line
from lc_trace._read._files import Line, LogFiles, LogReadError, log_files, open_log, read_lines
from lc_trace._read._filters import Filter, parse_time
from lc_trace._read._follow import follow
from lc_trace._read._runs import ModelCall, TraceView, build_traces, complete_traces, find_trace, stream_runs
from lc_trace._read._summary import TraceSummary, summarise
from lc_trace._read._text import (
    HEADER,
    ExportProgress,
    ReadProgress,
    export_report,
    report_invalid,
    summary_line,
    tail_text,
    tree_lines,
    usage_tables,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["CliError", "demo", "export", "html", "show", "tail", "traces", "usage"]


class CliError(Exception):
    """
    A problem to report in one line, without a traceback, with exit code ``code``.
    """

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# --- what every reading command shares ---------------------------------------------------


def _lines(
    log: LogFiles,
    *,
    skipped: list[int] | None = None,
    what: str = "reading",
    quiet: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Line]:
    """
    One pass over *log*'s lines, with progress on a terminal; invalid lines are counted and
    reported once on stderr when reading is done. *skipped* counts them, and the lines that
    belong to no span (lc_trace's own notices).
    """
    invalid: list[str] = []
    shown = ReadProgress(log.size, what) if progress is None and sys.stderr.isatty() and not quiet else None
    try:
        if skipped is None:
            yield from log.lines(invalid.append, progress or shown)
        else:
            for line in log.lines(invalid.append, progress or shown):
                fields = line.fields
                if type(fields.get(A.TRACE_ID)) is not str or type(fields.get(A.SPAN_ID)) is not str:
                    skipped[0] += 1
                yield line
    finally:
        if shown is not None:
            shown.done()
    if skipped is not None:
        skipped[0] += len(invalid)
    report_invalid(invalid)


def _summaries(
    args: argparse.Namespace,
    log: LogFiles,
    *,
    calls: bool = False,
    on_call: Callable[[TraceSummary, ModelCall], None] | None = None,
    skipped: list[int] | None = None,
    quiet: bool = False,
    evaluations: Evaluations | None = None,
) -> list[TraceSummary]:
    """
    The summaries of the traces of *log* that pass the command's filters, oldest first; the
    evaluations met on the way go to *evaluations*.
    """
    return summarise(
        _lines(log, skipped=skipped, quiet=quiet),
        _filter(args),
        calls=calls,
        on_call=on_call,
        on_evaluation=evaluations,
    )


def _full_traces(log: LogFiles, picked: list[TraceSummary], *, quiet: bool = False) -> Iterator[TraceView]:
    """
    The second pass: the traces of *picked* with all their runs, each as soon as it is read.
    """
    if not picked:
        return iter(())
    wanted = {trace.trace_id: trace.lines for trace in picked}
    only = picked[0].trace_id.encode() if len(picked) == 1 else None  # one trace: parse only its lines
    progress = ReadProgress(log.size, "reading spans") if sys.stderr.isatty() and not quiet else None

    def lines() -> Iterator[Line]:
        try:
            yield from log.lines(progress=progress, contains=only)
        finally:
            if progress is not None:
                progress.done()

    return complete_traces(lines(), wanted)


def _filter(args: argparse.Namespace) -> Filter:
    """
    The filter options every reading command takes, as the read side's ``Filter``.
    """
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return Filter(
        since_ns=since,
        until_ns=until,
        traces=tuple(t.strip().lower() for t in args.trace or ()),
        services=tuple(args.service or ()),
        actions=tuple(args.action or ()),
        errors=bool(args.errors),
    )


# --- the commands ------------------------------------------------------------------------


def traces(args: argparse.Namespace) -> int:
    """
    ``traces``: one line per trace, oldest first.
    """
    path = args.path or default_log_path()
    with open_log(path) as log:
        found = _summaries(args, log)
    if args.last is not None:
        found = found[-args.last :] if args.last > 0 else []
    if not found:
        print(f"no traces in {path}")
        return 0
    print(HEADER)
    for trace in found:
        print(summary_line(trace))
    return 0


def show(args: argparse.Namespace) -> int:
    """
    ``show``: one trace's run tree.
    """
    evaluations = Evaluations()
    with open_log(args.path) as log:
        try:
            picked = find_trace(_summaries(args, log, evaluations=evaluations), args.trace_id)
        except LookupError as exc:
            raise CliError(str(exc), code=1) from None
        trace = next(iter(_full_traces(log, [picked])))
    for text in tree_lines(trace):
        print(text)
    scored = evaluations.of([trace.trace_id])
    if scored:
        print(f"\nevaluations ({len(scored)}):")
        for evaluation in scored:
            print("  " + evaluation_line(evaluation))
    return 0


def tail(args: argparse.Namespace) -> int:
    """
    ``tail``: the last lines, one short line each; with ``-f`` the new ones too, across rotation.
    """
    wanted = _filter(args)
    count = max(args.n, 0)
    if not args.follow:
        with open_log(args.path, rotated=False) as log:
            last = deque((line for line in _lines(log) if wanted.line(line)), maxlen=count)
        for line in last:
            print(tail_text(line))
        return 0
    path = args.path or default_log_path()
    backlog: deque[Line] | None = deque(maxlen=count)
    try:
        for found in follow(path, from_start=True, poll_s=args.interval):
            if found is None:  # caught up: the last N of what was there, then everything new
                if backlog is not None:
                    for old in backlog:
                        print(tail_text(old))
                    backlog = None
                sys.stdout.flush()
            elif not wanted.line(found):
                continue
            elif backlog is not None:
                backlog.append(found)
            else:
                print(tail_text(found))
    except KeyboardInterrupt:
        pass
    return 0


def usage(args: argparse.Namespace) -> int:
    """
    ``usage``: the model calls added up, and the evaluations of their traces, as tables or as JSON.
    """
    from lc_trace._read._evaluations import report_as_dict, score_report, score_tables
    from lc_trace._read._usage import usage_report

    evaluations = Evaluations()
    with open_log(args.path) as log:
        found = _summaries(args, log, calls=True, evaluations=evaluations)
    report = usage_report(found, "hour" if args.hourly else "day")
    scores = score_report(evaluations.of(trace.trace_id for trace in found), found)
    if args.json:
        print(json.dumps({**report.as_dict(), "evaluations": report_as_dict(scores)}, indent=2, ensure_ascii=False))
        return 0
    if not report.total.calls and not report.failed_runs:
        print(f"no model calls in {args.path or default_log_path()}")
    else:
        for text in usage_tables(report):
            print(text)
    if scores:
        print()
        for text in score_tables(scores):
            print(text)
    return 0


def export(args: argparse.Namespace, exporter: SpanExporter | None = None) -> int:
    """
    ``export``; to *exporter* instead of the OTLP one its options configure (the benchmark's sink).

    One pass, sending each run as it ends, when the filters pick traces by id alone; with a
    filter on what a whole trace holds (time, service, action, errors) a summary pass picks the
    traces first.
    """
    from lc_trace._read._export import export_runs, otlp_exporter

    skipped: list[int] = [0]
    invalid: list[str] = []
    wanted = _filter(args)
    with open_log(args.paths) as log:
        bar = ExportProgress(log.size) if sys.stderr.isatty() and not args.quiet else None
        if (
            wanted.since_ns is None
            and wanted.until_ns is None
            and not (wanted.services or wanted.actions or wanted.errors)
        ):
            prefixes = wanted.traces
            picked: Callable[[str], bool] = lambda trace_id: not prefixes or trace_id.startswith(prefixes)  # noqa: E731
            lines = log.lines(invalid.append, bar.read if bar is not None else None)
            unspanned: list[int] | None = skipped  # stream_runs counts the lines of no span
        else:
            chosen = {trace.trace_id for trace in _summaries(args, log, skipped=skipped, quiet=args.quiet)}
            picked = chosen.__contains__
            lines = log.lines(progress=bar.read if bar is not None else None)
            unspanned = None  # counted by the first pass
        try:
            exporter = exporter or otlp_exporter(args.endpoint)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        try:
            summary = export_runs(
                stream_runs(lines, picked, unspanned),
                exporter,
                batch_size=args.batch_size,
                progress=bar.sent if bar is not None else None,
                detach_missing_parents=args.detach_missing_parents,
                consume=True,
            )
        finally:
            exporter.shutdown()
            if bar is not None:
                bar.done()
    skipped[0] += len(invalid)
    report_invalid(invalid)
    if not summary.traces:
        print("no traces to export (check the path and the filters)")
        return 0
    print(export_report(summary, skipped[0]))
    if summary.stopped_early:
        print("lc-trace: the collector refused three batches in a row; the rest was not sent", file=sys.stderr)
    return 1 if summary.refused else 0


def html(args: argparse.Namespace) -> int:
    """
    ``html``: one self-contained page of the traces that pass the filters. A ``--trace``
    prefix that matches no trace is an error (a page of nothing would hide the typo).
    """
    from lc_trace._read._cost import TraceCosts
    from lc_trace._read._evaluations import page_evaluations
    from lc_trace._read._html import page_row, render_page, trace_details

    try:
        log = open_log(args.path)
    except LogReadError as exc:
        raise CliError(_old_html_hint(args.path, str(exc))) from None
    costs = TraceCosts()
    evaluations = Evaluations()
    with log:
        found = _summaries(args, log, on_call=costs, evaluations=evaluations)
        for prefix in args.trace or ():
            wanted = prefix.strip().lower()
            if not wanted or not any(t.trace_id.startswith(wanted) for t in found):
                raise CliError(f"no trace id starts with {prefix!r}", code=1)
        newest = found[-args.details :] if args.details else []
        details = {trace.trace_id: trace_details(trace) for trace in _full_traces(log, newest)}
    scored = {trace_id: page_evaluations(views) for trace_id, views in evaluations.by_trace(details).items()}
    page = render_page(
        [page_row(t) for t in found],
        details,
        title=f"lc_trace: {args.path or default_log_path()}",
        costs=costs,
        evaluations=scored,
    )
    try:
        Path(args.output).write_bytes(page)
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    kept = f" (spans of the newest {len(details)})" if len(details) < len(found) else ""
    print(f"{len(found)} traces written to {args.output}{kept}")
    return 0


def _old_html_hint(path: str | None, message: str) -> str:
    """
    *message*, and, when the missing path looks like a trace id, how ``html`` takes one now
    (``lc-trace html ID`` once meant a trace).
    """
    if path and len(path) <= 32 and all(c in "0123456789abcdefABCDEF" for c in path):
        return f"{message}; a trace id goes in --trace: lc-trace html [PATH] --trace {path}"
    return message


def demo(args: argparse.Namespace) -> int:
    """
    Run the flower shop with a handler from ``lc_trace.configure()``, then summarise its traces.

    ``set_global=False``: the handler is given its provider, and nothing else in this process
    needs a global one. OpenTelemetry lets the global provider be set once per process, so a
    second in-process run (tests, a notebook) would otherwise warn and keep the first one.
    """
    from opentelemetry.sdk.environment_variables import OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT

    from lc_trace import LogPathError, configure
    from lc_trace._cli._demo import run_demo

    exporter: Literal["otlp", "none"] = "otlp" if args.otlp or os.environ.get(OTEL_EXPORTER_OTLP_ENDPOINT) else "none"
    options = {"log_path": args.log_path} if args.log_path else {}
    started_ns = time.time_ns()
    try:
        handler = configure(service_name="flower-shop", exporter=exporter, set_global=False, **options)
    except LogPathError as exc:
        raise CliError(f"cannot write the log file: {exc}") from None
    try:
        run_demo(handler, out=sys.stdout)
    finally:
        handler.close()
    path = handler.log_path
    assert path is not None  # the demo always logs to a file
    print(f"\nlog file: {path}")
    if exporter == "otlp":
        endpoint = (
            os.environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
            or os.environ.get(OTEL_EXPORTER_OTLP_ENDPOINT)
            or "localhost:4317"
        )
        print(f"spans:    sent over OTLP to {endpoint} (the exporter reports any failure above)")
    else:
        print("spans:    not exported (pass --otlp or set OTEL_EXPORTER_OTLP_ENDPOINT to send them to a collector)")
    written = [t for t in build_traces(read_lines(log_files(path))) if t.first_ns >= started_ns]
    print(f"\n{len(written)} traces written:\n{HEADER}")
    for trace in written:
        print(summary_line(trace))
    failing = next((t for t in written if t.errors), written[-1] if written else None)
    if failing is not None:
        print(f"\nsee one as a tree:  lc-trace show {failing.trace_id[:8]} {path}")
        print(f"all in a web page:  lc-trace html {path} -o traces.html")
    return 0
