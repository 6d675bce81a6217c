"""
``lc-trace export``: the spans of a log file rebuilt and sent over OTLP, as if exported live.

The log is the durable record: an app that ran with no collector, a
collector outage, a day of traces moved to another backend. Each run becomes one finished
``ReadableSpan`` with the ids, parent, name, kind, start and end, attributes, events, status and
``service.name`` its live span had, so a backend stores the same span; re-exporting the same
file sends the same ids again, and what a backend does with them is its own choice: Jaeger v2
keeps both copies (its API returns each span twice, one flagged "duplicate span IDs"), so export
a time range once.

A run with no end line (the process was killed, or is still running) is exported as ended at
its last line, with ``langchain.run.end_reason=never_ended``. A top-level run whose parent span
is in no file (the web request it ran in, exported by nobody) is counted; with
``detach_missing_parents`` it is sent as a root that keeps that parent as a span link, so a
backend shows the trace with a root instead of an orphan, and the reference stays machine
readable (followable once the parent does arrive) where an attribute would only be text.
Spans are sent under one resource per process that wrote them (``service.name``, and
``service.instance.id`` and ``process.pid`` where the lines carry them). Not in the lines, so not rebuilt: a
remote parent's ``tracestate`` and its is-remote flag (a root continuing another service's trace).
The exporter is configured as ``lc_trace.configure()`` configures it: the standard
``OTEL_EXPORTER_OTLP_*`` variables, gRPC or ``http/protobuf``, with an endpoint the caller may
override.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from lc_trace import __version__
from lc_trace import _attributes as A
from lc_trace._read._files import Line
from lc_trace._read._runs import LINE_KEYS, PROMOTED_KEYS, RunView, TraceView
from lc_trace._records import AGENT, CHAT_MODEL, LLM, NEVER_ENDED, RETRIEVER, TOOL

__all__ = [
    "DETACHED_PARENT",
    "ExportSummary",
    "NEVER_ENDED",
    "export_runs",
    "export_traces",
    "otlp_exporter",
    "run_spans",
]

# The attribute of the link a detached root keeps to the parent span that is in no file.
DETACHED_PARENT = "lc_trace.link.detached_parent"
_ResourceKey = tuple[str, str | None, int | None]
_DEFAULT_BATCH = 512
_YOUNG_COLLECTION_EVERY = 50_000  # allocations, while spans are built (the default: 700)
_GIVE_UP_AFTER_FAILURES = 3  # consecutive refused batches: the collector is down, stop trying
_SCOPE = InstrumentationScope("lc_trace", __version__, schema_url=A.SCHEMA_URL)  # the live spans' scope
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)
_TRACE_ID_MAX, _SPAN_ID_MAX = 2**128 - 1, 2**64 - 1
_new_tuple = tuple.__new__
_SCALARS = frozenset({str, bool, int, float})
_KINDS = {kind.name: kind for kind in SpanKind}
_LINE_KEYS = tuple(LINE_KEYS)
_NONES = (None,) * len(_LINE_KEYS)
# Span names of runs logged before span.name was (the mapping's naming rule).
_OPERATION = {CHAT_MODEL: A.OP_CHAT, LLM: A.OP_TEXT_COMPLETION}
_CLIENT_TYPES = frozenset({CHAT_MODEL, LLM, RETRIEVER})


@dataclass
class ExportSummary:
    """
    What an export did: spans sent and refused, runs that never ended, traces covered.
    """

    traces: int = 0
    sent: int = 0
    refused: int = 0
    never_ended: int = 0
    missing_parents: int = 0
    detached: bool = False
    stopped_early: bool = False


def otlp_exporter(endpoint: str | None = None) -> SpanExporter:
    """
    The OTLP span exporter ``configure()`` would build: ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``
    or ``OTEL_EXPORTER_OTLP_PROTOCOL`` picks ``grpc`` (default) or ``http/protobuf``; the other
    ``OTEL_EXPORTER_OTLP_*`` variables (headers, timeout, certificates) apply as usual.
    *endpoint* overrides the endpoint as ``OTEL_EXPORTER_OTLP_ENDPOINT`` would (for HTTP,
    ``/v1/traces`` is added to a URL that has no path).

    Raises:
        ValueError: an unknown protocol.
    """
    from opentelemetry.sdk.environment_variables import OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL

    protocol = (
        os.environ.get(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) or os.environ.get(OTEL_EXPORTER_OTLP_PROTOCOL) or "grpc"
    ).strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPSpanExporter

        if endpoint and urlsplit(endpoint).path in ("", "/"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        return HTTPSpanExporter(endpoint=endpoint) if endpoint else HTTPSpanExporter()
    raise ValueError(f"OTLP protocol must be 'grpc' or 'http/protobuf', got {protocol!r}")


def run_spans(
    trace: TraceView, resources: dict[_ResourceKey, Resource] | None = None, *, detach_missing_parents: bool = False
) -> Iterator[ReadableSpan]:
    """
    One finished span per run of *trace*, parents before children; with
    *detach_missing_parents*, a root whose parent span is not in the trace links to it instead.
    """
    resources = {} if resources is None else resources
    stack = [(run, detach_missing_parents) for run in reversed(trace.roots)]
    while stack:
        run, detach = stack.pop()
        yield _span(trace.trace_id, run, resources, detach)
        stack.extend((child, False) for child in reversed(run.children))


def _resource(run: RunView, resources: dict[_ResourceKey, Resource]) -> Resource:
    """
    One resource per process that wrote lines: lines without the process's keys (older logs)
    share one per ``service.name``, as before those keys were logged.
    """
    pid = run.pid if type(run.pid) is int else None  # JSON's ints (not its booleans)
    instance = run.instance if type(run.instance) is str else None
    key = (run.service or "lc_trace", instance, pid)
    resource = resources.get(key)
    if resource is None:
        attributes: dict[str, str | int] = {SERVICE_NAME: key[0]}
        if instance is not None:
            attributes[A.SERVICE_INSTANCE_ID] = instance
        if pid is not None:
            attributes[A.PROCESS_PID] = pid
        resource = resources[key] = Resource.create(attributes)
    return resource


def _span(
    trace_id: str, run: RunView, resources: dict[_ResourceKey, Resource], detach: bool, consume: bool = False
) -> ReadableSpan:
    """
    The run's span; with *consume*, the run's start line is used up for it (the one-pass
    export drops each run once sent: no copy of its fields is made).
    """
    trace_number = int(trace_id, 16)
    resource = _resource(run, resources)
    parent_id = run.parent_span_id
    links: tuple[Link, ...] = ()
    if detach and parent_id:
        parent = SpanContext(trace_number, int(parent_id, 16), is_remote=False, trace_flags=_SAMPLED)
        links = (Link(parent, {DETACHED_PARENT: True}),)
        parent_id = None
    events = [_event(run, line) for line in run.events] if run.events else []
    attributes = _attributes(run, consume)
    status = _UNSET
    if run.end is None:
        attributes[A.LC_END_REASON] = NEVER_ENDED
    elif run.failed:
        message = str(attributes.get(A.ERROR_MESSAGE, ""))
        events.append(
            Event(
                "exception",
                {
                    "exception.type": attributes.get(A.ERROR_TYPE, ""),
                    "exception.message": message,
                    "exception.stacktrace": attributes.get(A.ERROR_STACK_TRACE, ""),
                },
                run.end_ns,
            )
        )
        status = Status(StatusCode.ERROR, message[:1024])
    return ReadableSpan(  # positionally: keywords cost more than the call does
        run.span_name or _span_name(run, attributes),
        _context(trace_number, int(run.span_id, 16)),
        _context(trace_number, int(parent_id, 16)) if parent_id else None,
        resource,
        attributes,
        events,
        links,
        _kind(run),
        None,
        status,
        run.start_ns,
        run.end_ns,
        _SCOPE,
    )


def _context(trace_number: int, span_number: int) -> SpanContext:
    """
    ``SpanContext(trace_number, span_number, False, SAMPLED)``, made as its ``__new__`` makes it
    (the tuple, validity included) without the call through its defaults: two a span.
    """
    valid = 0 < trace_number <= _TRACE_ID_MAX and 0 < span_number <= _SPAN_ID_MAX
    return _new_tuple(SpanContext, (trace_number, span_number, False, _SAMPLED, DEFAULT_TRACE_STATE, valid))


def _public_context(trace_number: int, span_number: int) -> SpanContext:
    """
    The same through the API's constructor: where an OpenTelemetry API lays ``SpanContext`` out
    otherwise than the shortcut assumes.
    """
    return SpanContext(trace_number, span_number, is_remote=False, trace_flags=_SAMPLED)


def _shortcut_fits() -> bool:
    probes = ((1, 2), (0, 2), (_TRACE_ID_MAX, _SPAN_ID_MAX), (_TRACE_ID_MAX + 1, 1))
    try:
        return all(
            tuple(_context(t, s)) == tuple(_public_context(t, s))
            and _context(t, s).is_valid == _public_context(t, s).is_valid
            for t, s in probes
        )
    except Exception:
        return False


if not _shortcut_fits():  # checked once, at import, against the installed API
    _context = _public_context  # noqa: F811


def _event(run: RunView, line: Line) -> Event:
    """
    A point event: ``run.event_attributes(line)`` as OTLP values, in one pass.
    """
    start = run.first.fields if run.first is not None else {}
    line_keys, promoted, scalars = LINE_KEYS, PROMOTED_KEYS, _SCALARS
    attributes = {
        k: v if type(v) in scalars else _value(v)
        for k, v in line.fields.items()
        if v is not None and k not in line_keys and k not in start and k not in promoted
    }
    return Event(line.action, attributes, line.time_ns)


def _attributes(run: RunView, consume: bool = False) -> dict[str, Any]:
    """
    ``run.attributes()`` as OTLP values (the export's hot path: merged by ``dict.update``, then
    the line's own keys dropped and the few values that are not scalars fixed): the start
    line's, then the end line's (a ``null`` there drops the key), else what a promotion to
    agent added. With *consume*, the start line's fields become the attributes (no copy).
    """
    first = run.first
    action = first.fields.get(A.EVENT_ACTION) if first is not None else None
    start = first if type(action) is str and action.endswith("_start") else None
    end = run.end
    out: dict[str, Any] = (start.fields if consume else dict(start.fields)) if start is not None else {}
    if end is not None:
        out.update(end.fields)
    else:
        out.update(run.promoted)
    list(map(out.pop, _LINE_KEYS, _NONES))  # the line's own keys dropped, in one C loop
    scalars = _SCALARS
    for key in [key for key, value in out.items() if type(value) not in scalars]:
        value = out[key]
        if value is None:
            del out[key]
        else:
            out[key] = _value(value)
    return out


def _value(value: Any) -> Any:
    """
    An attribute value OTLP carries: lc_trace writes only scalars and lists of strings, but a
    user's structlog processor may add any JSON; anything else becomes its JSON text.
    """
    if type(value) in _SCALARS:
        return value
    if type(value) is list and value:
        kinds = set(map(type, value))
        if len(kinds) == 1 and kinds <= _SCALARS:  # every item of one scalar type
            return value
    return orjson.dumps(value).decode()


def _kind(run: RunView) -> SpanKind:
    kind = _KINDS.get(run.span_kind) if type(run.span_kind) is str else None
    if kind is not None:
        return kind
    return SpanKind.CLIENT if run.run_type in _CLIENT_TYPES else SpanKind.INTERNAL  # logged before span.kind was


def _span_name(run: RunView, attributes: dict[str, object]) -> str:
    """
    The mapping's span name, for a run logged before ``span.name`` was.
    """
    if run.run_type in _OPERATION:
        model = attributes.get(A.GEN_AI_REQUEST_MODEL)
        return f"{_OPERATION[run.run_type]} {model}" if model else _OPERATION[run.run_type]
    prefix = {TOOL: A.OP_EXECUTE_TOOL, RETRIEVER: A.OP_RETRIEVAL, AGENT: A.OP_INVOKE_AGENT}.get(run.run_type)
    return f"{prefix} {run.name}" if prefix else run.name


def export_traces(
    traces: Iterable[TraceView],
    exporter: SpanExporter,
    *,
    batch_size: int = _DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
    detach_missing_parents: bool = False,
) -> ExportSummary:
    """
    Send every run of *traces* as a span, parents first, as ``export_runs`` does.
    """

    def runs() -> Iterator[tuple[RunView, bool]]:
        for trace in traces:
            stack = [(run, run.parent_span_id is not None) for run in reversed(trace.roots)]
            while stack:
                run, missing = stack.pop()
                yield run, missing
                stack.extend((child, False) for child in reversed(run.children))

    return export_runs(
        runs(), exporter, batch_size=batch_size, progress=progress, detach_missing_parents=detach_missing_parents
    )


def export_runs(
    runs: Iterable[tuple[RunView, bool]],
    exporter: SpanExporter,
    *,
    batch_size: int = _DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
    detach_missing_parents: bool = False,
    consume: bool = False,
) -> ExportSummary:
    """
    Send each run of *runs* (with whether its parent span is in no line: ``stream_runs``) as a
    span, *batch_size* at a time; report each batch's size to *progress*. After three refused
    batches in a row the rest are counted as refused unsent. Runs whose parent is missing are
    counted, and with *detach_missing_parents* sent as roots linking to it. With *consume* the
    runs' start lines are used up (for runs nobody reads again).
    """
    summary = ExportSummary(detached=detach_missing_parents)
    resources: dict[_ResourceKey, Resource] = {}
    batch: list[ReadableSpan] = []
    failures = 0
    traces: set[str] = set()

    def send() -> None:
        nonlocal failures
        if failures >= _GIVE_UP_AFTER_FAILURES:
            summary.refused += len(batch)
            summary.stopped_early = True
        elif exporter.export(batch) == SpanExportResult.SUCCESS:
            summary.sent += len(batch)
            failures = 0
        else:
            summary.refused += len(batch)
            failures += 1
        if progress is not None:
            progress(len(batch))
        batch.clear()

    with _fewer_collections():
        for run, missing in runs:
            traces.add(run.trace_id)
            summary.missing_parents += missing
            if run.end is None:
                summary.never_ended += 1
            batch.append(_span(run.trace_id, run, resources, missing and detach_missing_parents, consume))
            if len(batch) >= batch_size:
                send()
        if batch:
            send()
    summary.traces = len(traces)
    return summary


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """
    The garbage collector's youngest generation collected every ``_YOUNG_COLLECTION_EVERY``
    allocations instead of every 700, then as before: a run's lines, dicts and span are
    containers that live for a batch, so at 700 most are scanned and promoted before they are
    freed (about a tenth of an export's CPU time); nothing here makes cycles, so memory is not
    held longer.
    """
    young, *older = gc.get_threshold()
    gc.set_threshold(max(young, _YOUNG_COLLECTION_EVERY), *older)
    try:
        yield
    finally:
        gc.set_threshold(young, *older)
