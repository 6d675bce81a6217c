"""
``lc-trace html``: one self-contained HTML page of a log's traces, to open from a file anywhere.

No network, no CDN: the styles, the script and the data are all in the page. The trace list
(root, service, start, duration, runs, tokens, errors, cost) holds every trace that passes the
filters, is sortable and filterable, adds up the cost of the traces shown (``_cost``), and draws
only the rows in view, so a day's file stays quick. The spans of the newest traces
(``DEFAULT_DETAILS``, or as many as asked) are in the page too, a JSON string each parsed only
when that trace is opened: a waterfall (bars placed by start and sized by duration, nested by
parent, failures in red, events as ticks) and a detail pane (attributes, content, events, error
and stack trace). An older trace's row says how to get its spans (``lc-trace html --trace ID``,
``lc-trace show ID``): a page of a whole rotation's 600 MB stays tens of MB, not the log's size.
Data reaches the page as JSON in a non-executed script element and is only ever set as text,
never as markup.
"""

from __future__ import annotations

import functools
import html
import importlib.resources
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import orjson

from lc_trace import _attributes as A
from lc_trace._read._cost import Cost, price_source
from lc_trace._read._runs import RunView, TraceView

__all__ = ["DEFAULT_DETAILS", "page_row", "render_page", "trace_details"]

DEFAULT_DETAILS = 1000  # traces whose spans the page holds: ~10-20 kB each
_DEFAULT_MAX_VALUE_CHARS = 4000  # per attribute in the page; the log keeps the whole value
_ERROR_KEYS = (A.ERROR_TYPE, A.ERROR_MESSAGE, A.ERROR_STACK_TRACE)


class _Row(Protocol):
    """
    What a list row shows: a ``TraceSummary`` or a ``TraceView``.
    """

    trace_id: str
    first_ns: int

    @property
    def duration_ns(self) -> int: ...

    @property
    def root_name(self) -> str: ...

    @property
    def service(self) -> str: ...

    @property
    def run_count(self) -> int: ...

    @property
    def errors(self) -> int: ...

    def tokens(self) -> tuple[int, int]: ...


def page_row(trace: _Row) -> list[Any]:
    """
    A trace's row in the list.
    """
    tokens_in, tokens_out = trace.tokens()
    return [
        trace.trace_id,
        trace.first_ns // 1_000_000,
        round(trace.duration_ns / 1e6, 3),
        trace.root_name,
        trace.service,
        trace.run_count,
        tokens_in,
        tokens_out,
        trace.errors,
    ]


def trace_details(trace: TraceView, max_value_chars: int = _DEFAULT_MAX_VALUE_CHARS) -> str:
    """
    A trace's spans as the page's JSON text (parsed in the browser only when it is opened).
    """
    return orjson.dumps(list(_spans(trace, max_value_chars))).decode()


def render_page(
    rows: Sequence[list[Any]],
    details: Mapping[str, str],
    title: str,
    costs: Mapping[str, Cost] | None = None,
    evaluations: Mapping[str, list[list[Any]]] | None = None,
) -> bytes:
    """
    The page: the list of *rows*, the spans of the traces in *details*, the evaluations of those
    traces (``_evaluations.page_evaluations``, by trace id); with *costs*, each listed trace's
    cost (amount or null when no call was priced, calls not priced). UTF-8 bytes, joined once
    from orjson's: a page of tens of MB is never also a str (2-4 bytes a character once it holds
    any non-ASCII text) nor copied by each replacement.
    """
    page_data: dict[str, Any] = {
        "rows": rows,
        "details": details,
        "detailCount": len(details),
        "evaluations": evaluations or {},
    }
    if costs is not None:
        page_data["costs"] = {
            row[0]: [float(cost.amount) if cost.priced else None, cost.unpriced_calls]
            for row in rows
            if (cost := costs.get(row[0])) is not None
        }
        page_data["price"] = price_source()
    data = orjson.dumps(page_data).replace(b"<", b"\\u003c")  # never "</script>" inside the element
    head, tail = _page().replace("%TITLE%", html.escape(title)).split("%DATA%")
    return b"".join((head.encode(), data, tail.encode()))


@functools.cache
def _page() -> str:
    """
    The page template (``page.html``, package data beside this module): read once, when first drawn.
    """
    return importlib.resources.files("lc_trace._read").joinpath("page.html").read_text(encoding="utf-8")


def _spans(trace: TraceView, limit: int) -> Iterator[list[Any]]:
    """
    The trace's runs depth first (siblings by start): what the waterfall row and the detail
    pane of each need; times in milliseconds from the trace's start.
    """
    origin = min((run.start_ns for run in trace.runs.values()), default=trace.first_ns)
    stack: list[tuple[int, RunView]] = [(0, root) for root in reversed(trace.roots)]
    while stack:
        depth, run = stack.pop()
        attributes = {k: _cut(v, limit) for k, v in run.attributes().items()}
        content = {k: attributes.pop(k) for k in list(attributes) if k in A.CONTENT_KEYS}
        error = {k: attributes.pop(k) for k in _ERROR_KEYS if k in attributes}
        events = [
            [
                line.action,
                round((line.time_ns - origin) / 1e6, 3),
                {k: _cut(v, limit) for k, v in run.event_attributes(line).items()},
            ]
            for line in run.events
        ]
        status = "error" if run.failed else "open" if run.end is None else "ok"
        passed_up = run.passed_up_from
        yield [
            run.span_id,
            depth,
            run.span_name or run.name,
            run.run_type,
            (run.span_kind or "INTERNAL").lower(),
            round((run.start_ns - origin) / 1e6, 3),
            round(run.duration_ns / 1e6, 3),
            status,
            attributes,
            content,
            events,
            error,
            (passed_up.span_name or passed_up.name) if passed_up is not None else None,
        ]
        stack.extend((depth + 1, child) for child in reversed(run.children))


def _cut(value: Any, limit: int) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"…[{len(value) - limit} more chars in the log]"
    return value
