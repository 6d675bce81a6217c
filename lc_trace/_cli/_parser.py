"""
``lc-trace``'s command line: the commands, their arguments and their help.

One grammar for every reading command (``traces``, ``show``, ``tail``, ``usage``, ``export``,
``html``): ``lc-trace COMMAND [PATH…] [--trace ID] [filters]`` (``show TRACE_ID [PATH]`` names
the one trace it draws); a command that writes a log (``demo``) takes ``--log-path``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from lc_trace._cli import _commands
from lc_trace._paths import DEFAULT_LOG_PATH
from lc_trace._read._html import DEFAULT_DETAILS
from lc_trace._version import VERSION

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """
    ``lc-trace``'s arguments. Every reading command has the same grammar: the log path(s) as
    positional arguments, the filters (``--trace`` among them) as options; ``show`` takes the
    one trace it shows before the path.
    """
    parser = argparse.ArgumentParser(
        prog="lc-trace", description="Read lc_trace log files: list, show, follow, add up, export, draw; run the demo."
    )
    parser.add_argument("--version", action="version", version=f"lc-trace {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    path_help = f"log file (default: $LC_TRACE_LOG_PATH or {os.path.join('.', DEFAULT_LOG_PATH)})"
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
    demo.set_defaults(run=_commands.demo)

    traces = commands.add_parser("traces", parents=[filters], help="list the traces in a log file, newest last")
    traces.add_argument("path", nargs="?", metavar="PATH", help=path_help + rotated)
    traces.add_argument("--last", type=int, metavar="N", help="only the newest N traces")
    traces.set_defaults(run=_commands.traces)

    show = commands.add_parser("show", parents=[filters], help="show the run tree of one trace")
    show.add_argument("trace_id", metavar="TRACE_ID", help="a trace id, or a prefix of one that is unique")
    show.add_argument("path", nargs="?", metavar="PATH", help=path_help + rotated)
    show.set_defaults(run=_commands.show)

    tail = commands.add_parser(
        "tail", parents=[filters], help="print the last lines of a log file, one short line each"
    )
    tail.add_argument("path", nargs="?", metavar="PATH", help=path_help)
    tail.add_argument("-n", type=int, default=20, metavar="N", help="how many lines (default 20)")
    tail.add_argument(
        "-f", "--follow", action="store_true", help="then print new lines as they come, across rotation (Ctrl-C stops)"
    )
    tail.add_argument("--interval", type=float, default=0.2, metavar="SECONDS", help=argparse.SUPPRESS)
    tail.set_defaults(run=_commands.tail)

    usage = commands.add_parser(
        "usage",
        parents=[filters],
        help="tokens, calls, errors and latency of the model calls, by model, conversation, service and day",
    )
    usage.add_argument("path", nargs="?", metavar="PATH", help=path_help + rotated)
    usage.add_argument("--hourly", action="store_true", help="by hour instead of by day")
    usage.add_argument("--json", action="store_true", help="the figures as JSON, for scripts")
    usage.set_defaults(run=_commands.usage)

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
    export.set_defaults(run=_commands.export)

    html = commands.add_parser(
        "html", parents=[filters], help="write one self-contained HTML page: the trace list, a waterfall per trace"
    )
    html.add_argument("path", nargs="?", metavar="PATH", help=path_help + rotated)
    html.add_argument(
        "-o", "--output", default="lc_trace.html", metavar="FILE", help="where to write (default lc_trace.html)"
    )
    html.add_argument(
        "--details",
        type=_not_negative,
        default=DEFAULT_DETAILS,
        metavar="N",
        help=f"the page holds the spans of the newest N traces listed (default {DEFAULT_DETAILS}); "
        "every trace is listed",
    )
    html.add_argument("--log", action=_MovedLogOption, nargs="?", help=argparse.SUPPRESS)
    html.set_defaults(run=_commands.html)
    return parser


class _MovedLogOption(argparse.Action):
    """
    ``html --log PATH``, the form before every reading command took the path the same way: an
    error that shows the form to use instead.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        path = values if isinstance(values, str) else "PATH"
        parser.error(
            f"--log is no longer an option: give the log path as an argument, as every reading command takes it: "
            f"{parser.prog} {path} (trace ids: --trace ID)"
        )


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
