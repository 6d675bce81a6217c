"""
``lc-trace``: read lc_trace's JSON-lines log files, and run the flower-shop demo.

The log file alone is enough to see what an app did: no collector, no
Jaeger, no Elasticsearch. This module only parses arguments and renders: reading the files is
``_reader``'s job (with ``_summary``'s one-pass summaries), the span rebuilding ``_export``'s,
the page ``_html``'s, the sums ``_usage``'s. It is a separate client of the public API
(as httpx's ``_main`` is): at import it takes only the reader, the summaries and the page
(no SDK, no LangChain); ``export`` loads the OpenTelemetry SDK, ``demo`` LangChain, when run.

Exit codes: 0 done; 1 the log was read but has no (unique) trace by that id, or an export
had spans refused; 2 a usage error, or a log file that is missing or cannot be read or written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lc_trace import _attributes as A
from lc_trace._read._html import DEFAULT_DETAILS
from lc_trace._read._reader import (
    Filter,
    Line,
    LogFiles,
    LogReadError,
    RunView,
    TraceView,
    build_traces,
    complete_traces,
    default_log_path,
    find_trace,
    follow,
    log_files,
    parse_time,
    read_lines,
    stream_runs,
)
from lc_trace._read._summary import TraceSummary, summarise

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["main"]


class CliError(Exception):
    """
    A problem to report in one line, without a traceback, with exit code ``code``.
    """

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# --- reading -----------------------------------------------------------------------------
#
# Every reading command streams the files and keeps per trace a summary, never the lines
# (``_summary``); the commands that need a trace's runs (show, export, html's spans) read a
# second time and build each trace they picked as soon as its last line is read. Both passes
# read the same files up to the same sizes (``LogFiles``), however the app writes meanwhile.


@contextmanager
def _log(paths: list[str] | str | None, *, rotated: bool = True) -> Iterator[LogFiles]:
    """
    The files of every log path of *paths* (default: the handler's log path), rotated ones first.
    """
    names = [paths] if isinstance(paths, str) else paths or [default_log_path()]
    with LogFiles([file for name in names for file in log_files(name, rotated=rotated)]) as log:
        yield log


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
    shown = _ReadProgress(log.size, what) if progress is None and sys.stderr.isatty() and not quiet else None
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
    _report_invalid(invalid)


def _report_invalid(invalid: list[str]) -> None:
    if invalid:
        print(
            f"lc-trace: skipped {len(invalid)} invalid line(s) that are not JSON objects (first: {invalid[0]})",
            file=sys.stderr,
        )


def _summaries(
    args: argparse.Namespace,
    log: LogFiles,
    *,
    calls: bool = False,
    skipped: list[int] | None = None,
    quiet: bool = False,
) -> list[TraceSummary]:
    """
    The summaries of the traces of *log* that pass the command's filters, oldest first.
    """
    return summarise(_lines(log, skipped=skipped, quiet=quiet), _filter(args), calls=calls)


def _full_traces(log: LogFiles, picked: list[TraceSummary], *, quiet: bool = False) -> Iterator[TraceView]:
    """
    The second pass: the traces of *picked* with all their runs, each as soon as it is read.
    """
    if not picked:
        return iter(())
    wanted = {trace.trace_id: trace.lines for trace in picked}
    only = picked[0].trace_id.encode() if len(picked) == 1 else None  # one trace: parse only its lines
    progress = _ReadProgress(log.size, "reading spans") if sys.stderr.isatty() and not quiet else None

    def lines() -> Iterator[Line]:
        try:
            yield from log.lines(progress=progress, contains=only)
        finally:
            if progress is not None:
                progress.done()

    return complete_traces(lines(), wanted)


_PROGRESS_AFTER_S = 1.0  # a read quicker than this shows no progress


class _ReadProgress:
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


def _filter(args: argparse.Namespace) -> Filter:
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


# --- rendering ---------------------------------------------------------------------------

_HEADER = f"{'TRACE ID':<32}  {'STARTED (UTC)':<19}  {'ROOT':<24}  {'RUNS':>4}  {'DURATION':>11}  {'TOKENS IN/OUT':>13}  {'ERRORS':>6}"


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


def _usage_tables(report: Any) -> Iterator[str]:
    columns = f"{'CALLS':>6}  {'ERRORS':>6}  {'INPUT':>9}  {'OUTPUT':>9}  {'CACHE READ':>10}  {'REASONING':>9}  {'P50 MS':>8}  {'P90 MS':>8}  {'P99 MS':>8}"

    def row(key: str, usage: Any) -> str:
        t = usage.tokens
        p = [usage.percentile_ms(share) for share in (0.5, 0.9, 0.99)]
        ms = "  ".join(f"{v:>8.1f}" if v is not None else f"{'-':>8}" for v in p)
        return (
            f"{_cut(key, 28):<28}  {usage.calls:>6}  {usage.errors:>6}  {t['input']:>9}  {t['output']:>9}  "
            f"{t['cache_read']:>10}  {t['reasoning']:>9}  {ms}"
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


# --- commands ----------------------------------------------------------------------------


def _cmd_traces(args: argparse.Namespace) -> int:
    path = args.path or default_log_path()
    with _log(path) as log:
        traces = _summaries(args, log)
    if args.last is not None:
        traces = traces[-args.last :] if args.last > 0 else []
    if not traces:
        print(f"no traces in {path}")
        return 0
    print(_HEADER)
    for trace in traces:
        print(summary_line(trace))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    with _log(args.path) as log:
        try:
            picked = find_trace(_summaries(args, log), args.trace_id)
        except LookupError as exc:
            raise CliError(str(exc), code=1) from None
        trace = next(iter(_full_traces(log, [picked])))
    for text in tree_lines(trace):
        print(text)
    return 0


def _cmd_tail(args: argparse.Namespace) -> int:
    wanted = _filter(args)
    count = max(args.n, 0)
    if not args.follow:
        with _log(args.path, rotated=False) as log:
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


def _cmd_usage(args: argparse.Namespace) -> int:
    from lc_trace._read._usage import usage_report

    with _log(args.path) as log:
        report = usage_report(_summaries(args, log, calls=True), "hour" if args.hourly else "day")
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
        return 0
    if not report.total.calls and not report.failed_runs:
        print(f"no model calls in {args.path or default_log_path()}")
        return 0
    for text in _usage_tables(report):
        print(text)
    return 0


def _cmd_export(args: argparse.Namespace, exporter: SpanExporter | None = None) -> int:
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
    with _log(args.paths) as log:
        bar = _ExportProgress(log.size) if sys.stderr.isatty() and not args.quiet else None
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
    _report_invalid(invalid)
    if not summary.traces:
        print("no traces to export (check the path and the filters)")
        return 0
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
    print(
        f"{summary.traces} traces: {summary.sent} spans sent, {summary.refused} refused, "
        f"{skipped[0]} lines skipped (not JSON, or no span)"
        + (
            f"; {summary.never_ended} never ended (sent as ended at their last line, end_reason never_ended)"
            if summary.never_ended
            else ""
        )
        + missing
    )
    if summary.stopped_early:
        print("lc-trace: the collector refused three batches in a row; the rest was not sent", file=sys.stderr)
    return 1 if summary.refused else 0


class _ExportProgress:
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


def _cmd_html(args: argparse.Namespace) -> int:
    from lc_trace._read._html import page_row, render_page, trace_details

    with _log(args.log) as log:
        traces = _summaries(args, log)
        for prefix in args.traces:
            try:
                find_trace(traces, prefix)
            except LookupError as exc:
                raise CliError(str(exc), code=1) from None
        if args.traces:
            wanted = tuple(p.strip().lower() for p in args.traces)
            traces = [t for t in traces if t.trace_id.startswith(wanted)]
        newest = traces[-args.details :] if args.details else []
        details = {trace.trace_id: trace_details(trace) for trace in _full_traces(log, newest)}
    page = render_page([page_row(t) for t in traces], details, title=f"lc_trace: {args.log or default_log_path()}")
    try:
        Path(args.output).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    kept = f" (spans of the newest {len(details)})" if len(details) < len(traces) else ""
    print(f"{len(traces)} traces written to {args.output}{kept}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """
    Run the flower shop with a handler from ``lc_trace.configure()``, then summarise its traces.

    ``set_global=False``: the handler is given its provider, and nothing else in this process
    needs a global one. OpenTelemetry lets the global provider be set once per process, so a
    second in-process run (tests, a notebook) would otherwise warn and keep the first one.
    """
    from lc_trace import LogPathError, configure
    from lc_trace._cli._demo import run_demo

    exporter: Literal["otlp", "none"] = "otlp" if args.otlp or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "none"
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
            os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or "localhost:4317"
        )
        print(f"spans:    sent over OTLP to {endpoint} (the exporter reports any failure above)")
    else:
        print("spans:    not exported (pass --otlp or set OTEL_EXPORTER_OTLP_ENDPOINT to send them to a collector)")
    traces = [t for t in build_traces(read_lines(log_files(path))) if t.first_ns >= started_ns]
    print(f"\n{len(traces)} traces written:\n{_HEADER}")
    for trace in traces:
        print(summary_line(trace))
    failing = next((t for t in traces if t.errors), traces[-1] if traces else None)
    if failing is not None:
        print(f"\nsee one as a tree:  lc-trace show {failing.trace_id[:8]} {path}")
        print(f"all in a web page:  lc-trace html --log {path} -o traces.html")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lc-trace", description="Read lc_trace log files: list, show, follow, add up, export, draw; run the demo."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    path_help = "log file (default: $LC_TRACE_LOG_PATH or ./lc_trace_logs/lc_trace.jsonl)"
    rotated = "; rotated PATH.1… are read too"

    filters = argparse.ArgumentParser(add_help=False)
    group = filters.add_argument_group("filters (on every reading command)")
    group.add_argument(
        "--since", metavar="TIME", help="from this time on: 2026-11-30, 2026-11-30T17:05, or an age (30m, 2h, 1d)"
    )
    group.add_argument("--until", metavar="TIME", help="before this time (same forms as --since)")
    group.add_argument("--trace", action="append", metavar="ID", help="only this trace (an id or a prefix; repeatable)")
    group.add_argument("--service", action="append", metavar="NAME", help="only this service.name (repeatable)")
    group.add_argument(
        "--action",
        action="append",
        metavar="ACTION",
        help="only lines (tail) or traces with this event.action; shell patterns like 'tool_*' (repeatable)",
    )
    group.add_argument(
        "--errors", action="store_true", help="only failed runs' lines (tail) or traces with a failed run"
    )

    demo = commands.add_parser("demo", help="run the offline flower-shop demo and summarise the traces it wrote")
    demo.add_argument("--log-path", metavar="PATH", help=path_help)
    demo.add_argument(
        "--otlp", action="store_true", help="also export spans over OTLP (implied by OTEL_EXPORTER_OTLP_ENDPOINT)"
    )
    demo.set_defaults(run=_cmd_demo)

    traces = commands.add_parser("traces", parents=[filters], help="list the traces in a log file, newest last")
    traces.add_argument("path", nargs="?", metavar="PATH", help=path_help + rotated)
    traces.add_argument("--last", type=int, metavar="N", help="only the newest N traces")
    traces.set_defaults(run=_cmd_traces)

    show = commands.add_parser("show", parents=[filters], help="show the run tree of one trace")
    show.add_argument("trace_id", metavar="TRACE_ID", help="a trace id, or a prefix of one that is unique")
    show.add_argument("path", nargs="?", metavar="PATH", help=path_help + rotated)
    show.set_defaults(run=_cmd_show)

    tail = commands.add_parser(
        "tail", parents=[filters], help="print the last lines of a log file, one short line each"
    )
    tail.add_argument("path", nargs="?", metavar="PATH", help=path_help)
    tail.add_argument("-n", type=int, default=20, metavar="N", help="how many lines (default 20)")
    tail.add_argument(
        "-f", "--follow", action="store_true", help="then print new lines as they come, across rotation (Ctrl-C stops)"
    )
    tail.add_argument("--interval", type=float, default=0.2, metavar="SECONDS", help=argparse.SUPPRESS)
    tail.set_defaults(run=_cmd_tail)

    usage = commands.add_parser(
        "usage",
        parents=[filters],
        help="tokens, calls, errors and latency of the model calls, by model, conversation, service and day",
    )
    usage.add_argument("path", nargs="?", metavar="PATH", help=path_help + rotated)
    usage.add_argument("--hourly", action="store_true", help="by hour instead of by day")
    usage.add_argument("--json", action="store_true", help="the figures as JSON, for scripts")
    usage.set_defaults(run=_cmd_usage)

    export = commands.add_parser(
        "export",
        parents=[filters],
        help="rebuild the spans from the log and send them over OTLP (configured by OTEL_EXPORTER_OTLP_*)",
    )
    export.add_argument("paths", nargs="*", metavar="PATH", help=path_help + rotated)
    export.add_argument(
        "--endpoint",
        metavar="URL",
        help="the collector, as OTEL_EXPORTER_OTLP_ENDPOINT would say it (http://host:4317)",
    )
    export.add_argument(
        "--batch-size", type=_positive, default=512, metavar="N", help="spans per request (default 512)"
    )
    export.add_argument(
        "--detach-missing-parents",
        action="store_true",
        help="send each top-level run whose parent span is in no file (a web request's span, say) as a root, "
        "with a span link to that parent, instead of as a child of a span the backend never gets",
    )
    export.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    export.set_defaults(run=_cmd_export)

    html = commands.add_parser(
        "html", parents=[filters], help="write one self-contained HTML page: the trace list, a waterfall per trace"
    )
    html.add_argument("traces", nargs="*", metavar="TRACE", help="only these traces (ids or prefixes; default: all)")
    html.add_argument(
        "-o", "--output", default="lc_trace.html", metavar="FILE", help="where to write (default lc_trace.html)"
    )
    html.add_argument("--log", metavar="PATH", help=path_help + rotated)
    html.add_argument(
        "--details",
        type=_not_negative,
        default=DEFAULT_DETAILS,
        metavar="N",
        help=f"the page holds the spans of the newest N traces listed (default {DEFAULT_DETAILS}); every trace is listed",
    )
    html.set_defaults(run=_cmd_html)
    return parser


def _not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """
    The ``lc-trace`` command; returns the exit code.
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors; return instead
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.run(args))
    except CliError as exc:
        print(f"lc-trace: {exc}", file=sys.stderr)
        return exc.code
    except LogReadError as exc:
        print(f"lc-trace: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lc-trace traces | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
