"""
``lc-trace``: read lc_trace's JSON-lines log files in a terminal, and run the flower-shop demo.

The log file alone is enough to see what an app did (design.md section 1): no collector, no
Jaeger, no Elasticsearch. This module is a separate client of the public API (style.md, httpx's
``_main``): at import it takes only the field names from ``_attributes``; the demo command
imports the handler and LangChain when it runs.

Exit codes: 0 done; 1 the log was read but has no (unique) trace by that id; 2 a usage error,
or a log file that is missing or cannot be read or written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from lc_trace import _attributes as A

__all__ = ["main"]

_DEFAULT_LOG_PATH = os.path.join("lc_trace_logs", "lc_trace.jsonl")  # the handler's default too
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_QUIET_EVENTS = frozenset({"llm_new_token"})  # one per streamed chunk: counted on llm_end already


class CliError(Exception):
    """
    A problem to report in one line, without a traceback, with exit code ``code``.
    """

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# --- reading log files -------------------------------------------------------------------


@dataclass
class Line:
    """
    One parsed log line, with its position (to keep file order among equal timestamps).
    """

    seq: int
    time_us: int
    fields: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        """
        A field of the line.
        """
        return self.fields.get(key, default)


def default_log_path() -> str:
    """
    ``$LC_TRACE_LOG_PATH``, else ``./lc_trace_logs/lc_trace.jsonl``: where the handler writes.
    """
    return os.environ.get("LC_TRACE_LOG_PATH", "").strip() or _DEFAULT_LOG_PATH


def log_files(path: str | os.PathLike[str], *, rotated: bool = True) -> list[Path]:
    """
    The file and, oldest first, its rotated copies ``path.N`` … ``path.1`` before it.
    """
    main_file = Path(path).expanduser()
    files = []
    if rotated and main_file.parent.is_dir():
        stem = main_file.name + "."
        numbered = {p: p.name[len(stem) :] for p in main_file.parent.iterdir() if p.name.startswith(stem)}
        files = sorted((p for p, n in numbered.items() if n.isdigit()), key=lambda p: int(numbered[p]), reverse=True)
    if main_file.exists():
        files.append(main_file)
    if not files:
        raise CliError(
            f"no log file at {main_file.resolve()} (pass PATH, set LC_TRACE_LOG_PATH, or run `lc-trace demo` to write one)"
        )
    return files


def read_lines(files: Iterable[Path]) -> list[Line]:
    """
    Every JSON-object line of *files*, in order. A line that is not one (a crash mid-write, a
    stray edit) is skipped and counted on stderr, never fatal.
    """
    lines: list[Line] = []
    skipped: list[str] = []
    for file in files:
        try:
            with open(file, encoding="utf-8", errors="replace") as handle:
                for number, text in enumerate(handle, 1):
                    if not text.strip():
                        continue
                    try:
                        fields = json.loads(text)
                    except ValueError:
                        fields = None
                    if not isinstance(fields, dict):
                        skipped.append(f"{file}:{number}")
                        continue
                    lines.append(Line(len(lines), _time_us(fields.get(A.TIMESTAMP)), fields))
        except OSError as exc:
            raise CliError(f"cannot read {file}: {exc.strerror or exc}") from None
    if skipped:
        print(
            f"lc-trace: skipped {len(skipped)} invalid line(s) that are not JSON objects (first: {skipped[0]})",
            file=sys.stderr,
        )
    return lines


def _time_us(stamp: Any) -> int:
    """
    ``@timestamp`` as microseconds since the epoch; 0 when absent or malformed.
    """
    if not isinstance(stamp, str):
        return 0
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


# --- runs and traces ---------------------------------------------------------------------


@dataclass
class RunView:
    """
    One LangChain run as its log lines tell it: the start, the end, the events in between.
    """

    span_id: str
    run_id: str | None = None
    parent_run_id: str | None = None
    name: str = "?"
    run_type: str = "?"
    first: Line | None = None
    end: Line | None = None
    events: list[Line] = field(default_factory=list)
    children: list[RunView] = field(default_factory=list)

    @property
    def start_key(self) -> tuple[int, int]:
        """
        When the run started (its first line), for ordering siblings.
        """
        return (self.first.time_us, self.first.seq) if self.first is not None else (0, 0)

    def tokens(self) -> tuple[int, int]:
        """
        Input and output tokens the end line reports (zero for runs that are not models).
        """
        if self.end is None:
            return 0, 0
        return _int(self.end.get(A.GEN_AI_USAGE_INPUT_TOKENS)), _int(self.end.get(A.GEN_AI_USAGE_OUTPUT_TOKENS))


@dataclass
class TraceView:
    """
    The runs of one trace id, nested by ``langchain.run.parent_id``.
    """

    trace_id: str
    runs: dict[str, RunView]
    roots: list[RunView]
    first_us: int
    last_us: int

    @property
    def root_name(self) -> str:
        """
        The name of the first top-level run.
        """
        return self.roots[0].name if self.roots else "?"

    @property
    def duration_ns(self) -> int:
        """
        The root run's own duration; from first to last line when there is no single root.
        """
        if len(self.roots) == 1 and self.roots[0].end is not None:
            duration = self.roots[0].end.get(A.EVENT_DURATION)
            if isinstance(duration, int):
                return duration
        return (self.last_us - self.first_us) * 1000

    def tokens(self) -> tuple[int, int]:
        """
        Input and output tokens summed over every model call in the trace.
        """
        counts = [run.tokens() for run in self.runs.values()]
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    @property
    def errors(self) -> int:
        """
        Runs that ended in failure.
        """
        return sum(1 for run in self.runs.values() if run.end is not None and run.end.get(A.EVENT_OUTCOME) == "failure")


def build_traces(lines: Iterable[Line]) -> list[TraceView]:
    """
    Group lines into traces by ``trace.id`` and runs by ``span.id``, then nest the runs;
    oldest trace first. Lines with no trace (lc_trace's own notices) are left out.
    """
    grouped: dict[str, dict[str, RunView]] = {}
    bounds: dict[str, list[int]] = {}
    for line in lines:
        trace_id, span_id = line.get(A.TRACE_ID), line.get(A.SPAN_ID)
        if not isinstance(trace_id, str) or not isinstance(span_id, str):
            continue
        runs = grouped.setdefault(trace_id, {})
        run = runs.get(span_id) or runs.setdefault(span_id, RunView(span_id))
        span = bounds.setdefault(trace_id, [line.time_us, line.time_us])
        span[0], span[1] = min(span[0], line.time_us), max(span[1], line.time_us)
        if run.first is None:  # every line of a run repeats what its start said
            run.first = line
            run.run_id = line.get(A.LC_RUN_ID)
            run.parent_run_id = line.get(A.LC_RUN_PARENT_ID)
            run.name = str(line.get(A.LC_RUN_NAME, "?"))
            run.run_type = str(line.get(A.LC_RUN_TYPE, "?"))
        action = str(line.get(A.EVENT_ACTION, ""))
        if action.endswith(("_end", "_error")):
            run.end = line
            run.run_type = str(line.get(A.LC_RUN_TYPE, run.run_type))  # a chain may turn out to be an agent
        elif not action.endswith("_start") and action not in _QUIET_EVENTS:
            run.events.append(line)
    traces = []
    for trace_id, runs in grouped.items():
        by_run_id = {run.run_id: run for run in runs.values() if run.run_id}
        roots: list[RunView] = []
        for run in sorted(runs.values(), key=lambda r: r.start_key):
            parent = by_run_id.get(run.parent_run_id) if run.parent_run_id else None
            (parent.children if parent is not None and parent is not run else roots).append(run)
        traces.append(TraceView(trace_id, runs, roots, *bounds[trace_id]))
    traces.sort(key=lambda t: (t.first_us, t.roots[0].start_key if t.roots else (0, 0)))
    return traces


def find_trace(traces: Sequence[TraceView], prefix: str) -> TraceView:
    """
    The one trace whose id starts with *prefix*.
    """
    wanted = prefix.strip().lower()
    found = [t for t in traces if t.trace_id.lower().startswith(wanted)] if wanted else []
    if not found:
        raise CliError(f"no trace id starts with {prefix!r}", code=1)
    if len(found) > 1:
        ids = ", ".join(t.trace_id for t in found[:5])
        raise CliError(
            f"{prefix!r} matches {len(found)} traces ({ids}{', …' if len(found) > 5 else ''}); give more of the id",
            code=1,
        )
    return found[0]


# --- rendering ---------------------------------------------------------------------------

_HEADER = f"{'TRACE ID':<32}  {'STARTED (UTC)':<19}  {'ROOT':<24}  {'RUNS':>4}  {'DURATION':>11}  {'TOKENS IN/OUT':>13}  {'ERRORS':>6}"


def summary_line(trace: TraceView) -> str:
    """
    One trace on one line: id, start, root run, runs, duration, tokens, errors.
    """
    tokens_in, tokens_out = trace.tokens()
    return (
        f"{trace.trace_id:<32}  {_clock(trace.first_us):<19}  {_cut(trace.root_name, 24):<24}  {len(trace.runs):>4}  "
        f"{_ms(trace.duration_ns):>11}  {f'{tokens_in}/{tokens_out}':>13}  {trace.errors:>6}"
    )


def tree_lines(trace: TraceView) -> Iterator[str]:
    """
    The run tree: two spaces of indent per level; a run's events (``*``) and its child runs
    in the order they happened.
    """
    tokens_in, tokens_out = trace.tokens()
    yield (
        f"trace {trace.trace_id}  {_clock(trace.first_us)} UTC  root {trace.root_name}  {len(trace.runs)} runs  "
        f"{_ms(trace.duration_ns)}  tokens {tokens_in} in / {tokens_out} out  {trace.errors} error(s)"
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
        below += [((event.time_us, event.seq), event) for event in item.events]
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


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.1f} ms"


def _clock(time_us: int) -> str:
    if time_us <= 0:
        return "?"
    return datetime.fromtimestamp(time_us / 1e6, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _cut(value: Any, width: int) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


# --- commands ----------------------------------------------------------------------------


def _cmd_traces(args: argparse.Namespace) -> int:
    path = args.path or default_log_path()
    traces = build_traces(read_lines(log_files(path)))
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
    trace = find_trace(build_traces(read_lines(log_files(args.path or default_log_path()))), args.trace_id)
    for text in tree_lines(trace):
        print(text)
    return 0


def _cmd_tail(args: argparse.Namespace) -> int:
    last: deque[Line] = deque(
        read_lines(log_files(args.path or default_log_path(), rotated=False)), maxlen=max(args.n, 0)
    )
    for line in last:
        stamp = str(line.get(A.TIMESTAMP, "?"))[11:26]
        trace = str(line.get(A.TRACE_ID, ""))[:8] or "-" * 8
        outcome = line.get(A.EVENT_OUTCOME)
        duration = line.get(A.EVENT_DURATION)
        extra = [str(outcome) if outcome else "", _ms(duration) if isinstance(duration, int) else ""]
        if line.get(A.ERROR_TYPE):
            extra.append(f"{line.get(A.ERROR_TYPE)}: {_cut(line.get(A.ERROR_MESSAGE, ''), 80)}")
        print(
            "  ".join(
                x for x in (stamp, trace, f"{line.get(A.LOG_LEVEL, '?'):<7}", str(line.get(A.MESSAGE, "")), *extra) if x
            )
        )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """
    Run the flower shop with a handler from ``lc_trace.configure()``, then summarise its traces.

    ``set_global=False``: the handler is given its provider, and nothing else in this process
    needs a global one. OpenTelemetry lets the global provider be set once per process, so a
    second in-process run (tests, a notebook) would otherwise warn and keep the first one.
    """
    from lc_trace import LogPathError, configure
    from lc_trace._demo import run_demo

    exporter: Literal["otlp", "none"] = "otlp" if args.otlp or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "none"
    options = {"log_path": args.log_path} if args.log_path else {}
    started_us = time.time_ns() // 1000
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
    traces = [t for t in build_traces(read_lines(log_files(path))) if t.first_us >= started_us]
    print(f"\n{len(traces)} traces written:\n{_HEADER}")
    for trace in traces:
        print(summary_line(trace))
    failing = next((t for t in traces if t.errors), traces[-1] if traces else None)
    if failing is not None:
        print(f"\nsee one as a tree:  lc-trace show {failing.trace_id[:8]} {path}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lc-trace", description="Read lc_trace log files; run the flower-shop demo.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    path_help = "log file (default: $LC_TRACE_LOG_PATH or ./lc_trace_logs/lc_trace.jsonl)"

    demo = commands.add_parser("demo", help="run the offline flower-shop demo and summarise the traces it wrote")
    demo.add_argument("--log-path", metavar="PATH", help=path_help)
    demo.add_argument(
        "--otlp", action="store_true", help="also export spans over OTLP (implied by OTEL_EXPORTER_OTLP_ENDPOINT)"
    )
    demo.set_defaults(run=_cmd_demo)

    traces = commands.add_parser("traces", help="list the traces in a log file, newest last")
    traces.add_argument("path", nargs="?", metavar="PATH", help=path_help + "; rotated PATH.1… are read too")
    traces.add_argument("--last", type=int, metavar="N", help="only the newest N traces")
    traces.set_defaults(run=_cmd_traces)

    show = commands.add_parser("show", help="show the run tree of one trace")
    show.add_argument("trace_id", metavar="TRACE_ID", help="a trace id, or a prefix of one that is unique")
    show.add_argument("path", nargs="?", metavar="PATH", help=path_help + "; rotated PATH.1… are read too")
    show.set_defaults(run=_cmd_show)

    tail = commands.add_parser("tail", help="print the last lines of a log file, one short line each")
    tail.add_argument("path", nargs="?", metavar="PATH", help=path_help)
    tail.add_argument("-n", type=int, default=20, metavar="N", help="how many lines (default 20)")
    tail.set_defaults(run=_cmd_tail)
    return parser


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
    except BrokenPipeError:  # `lc-trace traces | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
