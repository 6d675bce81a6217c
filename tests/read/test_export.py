"""
``lc-trace export`` (``lc_trace._read._export``): spans rebuilt from the log equal the live ones.

The flower shop runs with a real TraceHandler whose provider keeps the live spans in memory; the
spans rebuilt from its log file are compared with them field by field. End to end, the app runs
with no collector (its OTLP exporter points at a closed port), ``lc-trace export`` sends the log
through the real collector to one Jaeger, the live spans go straight to a second Jaeger, and the
two Jaegers' ``/api/v3/traces/{id}`` answers are compared span by span.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lc_trace import TraceHandler
from lc_trace._cli._demo import run_demo
from lc_trace._read._export import NEVER_ENDED, otlp_exporter, run_spans
from lc_trace._read._files import log_files, read_lines
from lc_trace._read._runs import build_traces
from lc_trace.testing import read_log
from tests.cli.test_cli import run_cli
from tests.conftest import flower_chain
from tests.stack import servers
from tests.stack.cache import free_port

SERVICE = "flower-shop"


def shop_with_live_spans(
    log_path: Path, otlp_endpoint: str | None = None, conventions: str = "v1.41.0"
) -> list[ReadableSpan]:
    """
    The flower shop traced into *log_path* following the GenAI *conventions*; its live spans,
    kept in memory (and, with *otlp_endpoint*, also handed to an OTLP exporter there, as an app
    configured for a collector would).
    """
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    if otlp_endpoint is not None:
        exporter = OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True, timeout=1)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=100))
    handler = TraceHandler(
        tracer_provider=provider,
        log_path=log_path,
        service_name=SERVICE,
        capture_content=True,
        genai_conventions=conventions,
    )
    try:
        run_demo(handler)
    finally:
        handler.close()
        provider.shutdown()
    return list(memory.get_finished_spans())


def rebuilt(log_path: Path) -> list[ReadableSpan]:
    return [span for trace in build_traces(read_lines(log_files(log_path))) for span in run_spans(trace)]


def described(span: ReadableSpan) -> dict[str, Any]:
    """Everything an exporter sends of a span, as plain data."""

    def plain(attributes: Any) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in dict(attributes or {}).items()}

    return {
        "name": span.name,
        "trace_id": span.context.trace_id,
        "span_id": span.context.span_id,
        "parent": span.parent.span_id if span.parent else None,
        "kind": span.kind,
        "start": span.start_time,
        "end": span.end_time,
        "attributes": plain(span.attributes),
        "events": [(e.name, e.timestamp, plain(e.attributes)) for e in span.events],
        "status": (span.status.status_code, span.status.description),
        "service": span.resource.attributes.get("service.name"),
        "scope": (span.instrumentation_scope.name, span.instrumentation_scope.version)
        if span.instrumentation_scope
        else None,
    }


@pytest.fixture(scope="module", params=["v1.41.0", "v0.1.0"])
def shop(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> tuple[Path, list[ReadableSpan]]:
    """The shop's log and live spans, in each GenAI conventions version: export reads both."""
    path = tmp_path_factory.mktemp("shop") / "lc_trace.jsonl"
    return path, shop_with_live_spans(path, conventions=request.param)


class TestRebuild:
    def test_every_span_equals_the_live_one(self, shop: tuple[Path, list[ReadableSpan]]) -> None:
        """Each run of the log becomes the span the app made: ids, parent, name, kind, times to the ns, attributes, events, status, service."""
        path, live = shop
        expected = {span.context.span_id: described(span) for span in live}
        got = {span.context.span_id: described(span) for span in rebuilt(path)}
        assert sorted(expected) == sorted(got)
        for span_id, want in expected.items():
            assert want == got[span_id], want["name"]

    def test_parents_come_before_children(self, shop: tuple[Path, list[ReadableSpan]]) -> None:
        """A trace's spans are yielded parents first, so a backend never sees an orphan it must wait for."""
        seen: set[int] = set()
        for span in rebuilt(shop[0]):
            assert span.parent is None or span.parent.span_id in seen
            seen.add(span.context.span_id)

    def test_never_ended_runs_end_at_their_last_line_marked(
        self, shop: tuple[Path, list[ReadableSpan]], tmp_path: Path
    ) -> None:
        """A process killed mid-trace leaves runs with no end line: they are spans ended at their last line, marked never_ended, status unset."""
        lines = shop[0].read_text(encoding="utf-8").splitlines(keepends=True)
        agent = next(json.loads(x)["trace.id"] for x in lines if json.loads(x)["langchain.run.name"] == "florist_agent")
        cut = [
            x
            for x in lines
            if not (json.loads(x)["trace.id"] == agent and json.loads(x)["event.action"] == "chain_end")
        ]
        path = tmp_path / "killed.jsonl"
        path.write_text("".join(cut), encoding="utf-8")
        [trace] = [t for t in build_traces(read_lines(log_files(path))) if t.trace_id == agent]
        spans = {span.name: span for span in run_spans(trace)}
        root = spans["invoke_agent florist_agent"]
        last_line = max(
            json.loads(x)["@timestamp"] for x in cut if json.loads(x)["span.id"] == format(root.context.span_id, "016x")
        )
        assert NEVER_ENDED == root.attributes["langchain.run.end_reason"]
        assert root.end_time is not None and root.start_time is not None and root.end_time > root.start_time
        assert last_line[:26] == _iso(root.end_time)[:26]
        assert "UNSET" == root.status.status_code.name
        assert NEVER_ENDED != spans["chat fake-chat-1"].attributes.get("langchain.run.end_reason")
        with pytest.MonkeyPatch.context() as env:  # the summary says how many never ended
            env.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
            out = run_cli(
                ["export", str(path), "--trace", agent, "-q", "--endpoint", f"http://127.0.0.1:{free_port()}"]
            )[1]
        assert "; 1 never ended (sent as ended at their last line, end_reason never_ended)" in out

    @pytest.mark.log_schema_extra_keys("deploy.region", "deploy.tags", "deploy.empty")
    def test_fields_a_users_processor_adds_become_attributes_otlp_carries(self, tmp_path: Path) -> None:
        """A structlog processor's extra fields reach the span: scalars and flat lists as they are, anything else as JSON text."""

        def add_deploy(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
            return {
                **event,
                "deploy.region": {"name": "eu", "zone": 3},
                "deploy.tags": ["a", "b"],
                "deploy.empty": None,
            }

        path = tmp_path / "extra.jsonl"
        handler = TraceHandler(log_path=path, log_processors=[add_deploy])
        try:
            RunnableLambda(lambda x: x, name="echo").invoke(1, {"callbacks": [handler]})
        finally:
            handler.close()
        [span] = rebuilt(path)
        assert ('{"name":"eu","zone":3}', ["a", "b"]) == (
            span.attributes["deploy.region"],
            span.attributes["deploy.tags"],
        )
        assert "deploy.empty" not in span.attributes
        assert SpanExportResult.SUCCESS == InMemorySpanExporter().export([span])
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        assert 1 == len(encode_spans([span]).resource_spans)  # the OTLP encoder takes every value


def _iso(ns: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 10**9:09d}Z"


class TestExporterChoice:
    def test_http_protobuf_from_the_environment_with_endpoint_override(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf gives the HTTP exporter; --endpoint is a base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPSpanExporter

        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        exporter = otlp_exporter("http://127.0.0.1:4318")
        assert isinstance(exporter, HTTPSpanExporter)
        assert "http://127.0.0.1:4318/v1/traces" == exporter._endpoint
        exporter.shutdown()

    def test_unknown_protocol_is_a_usage_error(
        self, shop: tuple[Path, list[ReadableSpan]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A protocol OTLP does not have exits 2 with one line naming it."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "carrier-pigeon")
        code, out, err = run_cli(["export", str(shop[0])])
        assert (2, "") == (code, out)
        assert "lc-trace: OTLP protocol must be 'grpc' or 'http/protobuf', got 'carrier-pigeon'\n" == err

    def test_refused_spans_are_counted_and_the_exit_code_says_so(
        self, shop: tuple[Path, list[ReadableSpan]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With no collector listening, nothing is sent: the summary counts the spans refused and the command exits 1."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
        code, out, err = run_cli(["export", str(shop[0]), "--endpoint", f"http://127.0.0.1:{free_port()}", "-q"])
        assert 1 == code
        assert f"5 traces: 0 spans sent, {len(shop[1])} refused, 0 lines skipped (not JSON, or no span)\n" == out
        assert "refused three batches in a row" not in err  # one batch: it was tried


def test_progress_bar_on_a_terminal_and_early_stop(shop: tuple[Path, list[ReadableSpan]]) -> None:
    """On a terminal, stderr shows a progress bar to the last span; after three refused batches in a row the rest is counted refused, unsent."""
    import pty

    leader, follower = pty.openpty()
    env = {**os.environ, "OTEL_EXPORTER_OTLP_TIMEOUT": "1"}
    command = [sys.executable, "-m", "lc_trace", "export", str(shop[0]), "--batch-size", "5"]
    command += ["--endpoint", f"http://127.0.0.1:{free_port()}"]
    done = subprocess.run(
        command, env=env, stdout=subprocess.PIPE, stderr=follower, text=True, timeout=120, check=False
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    terminal = b"".join(chunks).decode(errors="replace")
    total = len(shop[1])
    size = sum(f.stat().st_size for f in [shop[0]]) / 1e6
    assert f"] {size:,.1f}/{size:,.1f} MB read, {total:,} spans\n" in terminal.replace("\r\n", "\n")
    assert "refused three batches in a row; the rest was not sent" in terminal
    assert 1 == done.returncode
    assert f"0 spans sent, {total} refused" in done.stdout


# --- end to end: the real collector and two Jaegers ------------------------------------------


@pytest.fixture(scope="module")
def jaegers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[servers.Server, servers.Server]]:
    first = servers.jaeger(tmp_path_factory.mktemp("jaeger-export")).start()
    second = servers.jaeger(tmp_path_factory.mktemp("jaeger-live")).start()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture(scope="module")
def collector(
    jaegers: tuple[servers.Server, servers.Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[servers.Server]:
    target = f"127.0.0.1:{jaegers[0].ports['otlp_grpc']}"
    server = servers.collector(tmp_path_factory.mktemp("collector-export"), target).start()
    yield server
    server.stop()


def jaeger_spans(jaeger: servers.Server, trace_id: str, expect: int) -> dict[str, dict[str, Any]]:
    """A trace as Jaeger's API returns it: each span with its resource, attribute and event lists as dicts."""
    from tests.e2e.test_e2e_jaeger import jaeger_trace

    spans = jaeger_trace(jaeger, trace_id, expect)
    out = {}
    for span_id, span in spans.items():
        span = dict(span)
        span["attributes"] = {a["key"]: a["value"] for a in span.get("attributes", [])}
        span["events"] = [
            {**e, "attributes": {a["key"]: a["value"] for a in e.get("attributes", [])}} for e in span.get("events", [])
        ]
        out[span_id] = span
    return out


def raw_spans(jaeger: servers.Server, trace_id: str) -> list[dict[str, Any]]:
    """The spans Jaeger's API returns for a trace, duplicates included."""
    body = servers.get_json(f"http://127.0.0.1:{jaeger.ports['query_http']}/api/v3/traces/{trace_id}")
    return [  # (Jaeger can answer a scope with no "spans" beside a copy's)
        span for rs in body["result"]["resourceSpans"] for scope in rs["scopeSpans"] for span in scope.get("spans", [])
    ]


def test_app_with_no_collector_then_export_equals_live_in_jaeger(
    jaegers: tuple[servers.Server, servers.Server], collector: servers.Server, tmp_path: Path
) -> None:
    """
    The shop runs while no collector listens; `lc-trace export` then sends its log through the
    collector to Jaeger, and every trace there equals, span by span and field by field, the
    live spans sent to a second Jaeger. Exporting again sends the same ids under the same
    resource (each line names its process): Jaeger answers each span with equal copies only.
    """
    exported_to, live_to = jaegers
    log_path = tmp_path / "lc_trace.jsonl"
    live = shop_with_live_spans(log_path, otlp_endpoint=f"127.0.0.1:{free_port()}")  # nobody listens there
    assert SpanExportResult.SUCCESS == OTLPSpanExporter(
        endpoint=f"127.0.0.1:{live_to.ports['otlp_grpc']}", insecure=True
    ).export(live)

    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.ports['otlp_grpc']}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    command = [sys.executable, "-m", "lc_trace", "export", str(log_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert (0, "") == (done.returncode, done.stderr)
    assert f"5 traces: {len(live)} spans sent, 0 refused, 0 lines skipped (not JSON, or no span)\n" == done.stdout

    by_trace: dict[str, int] = {}
    for span in live:
        trace_id = format(span.context.trace_id, "032x")
        by_trace[trace_id] = by_trace.get(trace_id, 0) + 1
    assert 5 == len(by_trace)
    for trace_id, count in by_trace.items():
        want = jaeger_spans(live_to, trace_id, count)
        got = jaeger_spans(exported_to, trace_id, count)
        assert sorted(want) == sorted(got)
        for span_id, span in want.items():
            assert span == got[span_id], span["name"]

    # Again: the same ids are sent a second time, under the same resource. Once a later trace has
    # arrived through the same collector (it forwards in order), Jaeger v2 answers every span of the
    # first traces with copies equal bar the warning it may add ("duplicate span IDs"), never another span.
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert 0 == again.returncode, again.stderr
    marker_log = tmp_path / "later.jsonl"
    marker = shop_with_live_spans(marker_log)
    marker_id = format(marker[0].context.trace_id, "032x")
    later = subprocess.run(
        [*command[:-1], str(marker_log), "--trace", marker_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == later.returncode, later.stderr
    jaeger_spans(exported_to, marker_id, sum(1 for s in marker if s.context.trace_id == marker[0].context.trace_id))
    for trace_id, count in by_trace.items():
        copies = raw_spans(exported_to, trace_id)
        assert count <= len(copies) <= 2 * count  # same resource both times: Jaeger may fold the copies
        warnings = {str(a["value"]) for x in copies for a in x.get("attributes", []) if a["key"] == "@jaeger@warnings"}
        assert all("duplicate span IDs" in w for w in warnings)
        plain = [{**x, "attributes": [a for a in x["attributes"] if a["key"] != "@jaeger@warnings"]} for x in copies]
        assert count == len({x["spanId"] for x in plain}) == len({json.dumps(x, sort_keys=True) for x in plain})


def test_export_filters_by_trace_and_service(
    collector: servers.Server, jaegers: tuple[servers.Server, servers.Server], tmp_path: Path
) -> None:
    """--trace sends one trace's spans only (here over OTLP http/protobuf); --service with a name nobody logged sends nothing."""
    log_path = tmp_path / "lc_trace.jsonl"
    live = shop_with_live_spans(log_path)
    one = format(live[0].context.trace_id, "032x")
    endpoint = f"http://127.0.0.1:{collector.ports['otlp_http']}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        code, out, _ = run_cli(["export", str(log_path), "--trace", one[:10], "--endpoint", endpoint, "-q"])
    count = sum(1 for s in live if s.context.trace_id == live[0].context.trace_id)
    assert (0, f"1 traces: {count} spans sent, 0 refused, 0 lines skipped (not JSON, or no span)\n") == (code, out)
    assert count == len(jaeger_spans(jaegers[0], one, count))
    code, out, _ = run_cli(["export", str(log_path), "--service", "no-such-shop", "--endpoint", endpoint])
    assert (0, "no traces to export (check the path and the filters)\n") == (code, out)


# --- an app whose parents are elsewhere, and its processes ------------------------------------


WEB_SERVICE = "flower-web"


def add_process(pid: int | None, instance: str | None) -> Any:
    """A structlog processor naming another process on every line (None: none, as an older lc_trace wrote)."""

    def processor(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        if pid is None:
            return {k: v for k, v in event.items() if k not in ("process.pid", "service.instance.id")}
        return {**event, "process.pid": pid, "service.instance.id": instance}

    return processor


def web_app_log(log_path: Path, requests: int, workers: tuple[tuple[int | None, str | None], ...] = ()) -> list[str]:
    """
    A web app with no collector: each request is a span of the app's own tracer (exported by
    nobody) and the chain runs inside it, so each root run's parent.id is the request's span.
    With *workers*, each request is served by the next worker, whose lines name its process.
    Returns the request spans' ids (hex), one per request.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": WEB_SERVICE}))  # no exporter
    tracer = provider.get_tracer("web")
    handlers = [
        TraceHandler(
            tracer_provider=provider, log_path=log_path, service_name=WEB_SERVICE, log_processors=[add_process(*w)]
        )
        for w in workers
    ] or [TraceHandler(tracer_provider=provider, log_path=log_path, service_name=WEB_SERVICE)]
    chain = flower_chain()
    ids = []
    try:
        for i in range(requests):
            with tracer.start_as_current_span("POST /order") as request:
                chain.invoke({"who": f"customer {i}"}, {"callbacks": [handlers[i % len(handlers)]]})
                ids.append(format(request.get_span_context().span_id, "016x"))
    finally:
        for handler in handlers:
            handler.close()
        provider.shutdown()
    return ids


def jaeger_warnings(span: dict[str, Any]) -> list[Any]:
    return [a["value"] for a in span.get("attributes", []) if a["key"] == "@jaeger@warnings"]


def test_web_app_export_into_jaeger_with_and_without_detaching(
    collector: servers.Server, jaegers: tuple[servers.Server, servers.Server], tmp_path: Path
) -> None:
    """
    A web app's log, exported as it is: the summary counts the three roots whose parent (the
    request span) is in no file, and Jaeger stores them as children of a span it never gets.
    With --detach-missing-parents (another three requests): they arrive as roots, each with a
    link to its request span, and Jaeger shows them with no parent. The two workers' spans
    arrive under their own resources (process.pid, service.instance.id).
    """
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.ports['otlp_grpc']}"}
    runs = {}
    for detach in (False, True):
        log_path = tmp_path / f"web-{detach}" / "lc_trace.jsonl"
        log_path.parent.mkdir()
        requests = web_app_log(log_path, 3, workers=((4101, "web-a"), (4102, "web-b")))
        command = [sys.executable, "-m", "lc_trace", "export", str(log_path)] + (
            ["--detach-missing-parents"] if detach else []
        )
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert (0, "") == (done.returncode, done.stderr)
        runs[detach] = (log_path, requests, done.stdout)
    assert runs[False][2] == (
        "3 traces: 12 spans sent, 0 refused, 0 lines skipped (not JSON, or no span); 3 roots point at a parent span "
        "that is in no file (a web request's, for instance: --detach-missing-parents sends them as roots linked to it)\n"
    )
    assert runs[True][2] == (
        "3 traces: 12 spans sent, 0 refused, 0 lines skipped (not JSON, or no span); "
        "3 roots whose parent span is in no file sent as roots, linked to that parent\n"
    )
    for detach, (log_path, requests, _) in runs.items():
        lines = read_log(log_path)
        trace_ids = list(dict.fromkeys(line["trace.id"] for line in lines))
        assert 3 == len(trace_ids)
        for number, (trace_id, request) in enumerate(zip(trace_ids, requests, strict=True)):
            jaeger_spans(jaegers[0], trace_id, 4)  # all four arrived
            body = servers.get_json(f"http://127.0.0.1:{jaegers[0].ports['query_http']}/api/v3/traces/{trace_id}")
            [resource_spans] = body["result"]["resourceSpans"]  # one worker served the whole request
            resource = {a["key"]: a["value"] for a in resource_spans["resource"]["attributes"]}
            assert {"intValue": str(4101 + number % 2)} == resource["process.pid"]
            assert {"stringValue": f"web-{'ab'[number % 2]}"} == resource["service.instance.id"]
            spans = [span for scope in resource_spans["scopeSpans"] for span in scope["spans"]]
            ids = {span["spanId"] for span in spans}
            [root] = [span for span in spans if span.get("parentSpanId", "") not in ids]
            assert "RunnableSequence" == root["name"]
            if detach:
                assert "" == root.get("parentSpanId", "")
                [link] = root["links"]
                assert (trace_id, request) == (link["traceId"], link["spanId"])
                assert [{"key": "lc_trace.link.detached_parent", "value": {"boolValue": True}}] == link["attributes"]
                assert all(span.get("parentSpanId", "") in ids | {""} for span in spans)
            else:  # Jaeger keeps the parent it never got, and says so
                assert request == root["parentSpanId"] and request not in ids
                assert "links" not in root or not root["links"]
                assert f"parent span ID={request} is not in the trace" in json.dumps(jaeger_warnings(root))
            if detach:
                assert [] == [w for span in spans for w in jaeger_warnings(span)]


def test_one_pass_export_sends_the_spans_of_whole_traces(shop: tuple[Path, list[ReadableSpan]]) -> None:
    """The command's one pass (each run sent when it ends) sends exactly the spans the whole traces rebuild."""
    from lc_trace._read._export import export_runs
    from lc_trace._read._runs import stream_runs

    memory = InMemorySpanExporter()
    summary = export_runs(stream_runs(read_lines(log_files(shop[0]))), memory)
    assert (5, len(shop[1]), 0) == (summary.traces, summary.sent, summary.missing_parents)
    got = {span.context.span_id: described(span) for span in memory.get_finished_spans()}
    assert {span.context.span_id: described(span) for span in rebuilt(shop[0])} == got


@pytest.mark.log_schema_exempt("lines of an older lc_trace, without process keys, written on purpose")
def test_each_process_gets_its_own_resource_and_older_lines_keep_one(tmp_path: Path) -> None:
    """Lines naming their process are sent under one resource per (service.name, service.instance.id, process.pid); lines without those keys (older logs) under one per service.name, as before."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from lc_trace._read._export import export_runs
    from lc_trace._read._runs import stream_runs

    log_path = tmp_path / "lc_trace.jsonl"
    web_app_log(log_path, 4, workers=((4101, "web-a"), (4102, "web-b")))
    web_app_log(log_path, 1, workers=((None, None),))  # an older worker: no process keys
    memory = InMemorySpanExporter()
    export_runs(stream_runs(read_lines(log_files(log_path))), memory)
    resources = {}
    for span in memory.get_finished_spans():
        attributes = dict(span.resource.attributes)
        key = (attributes["service.name"], attributes.get("service.instance.id"), attributes.get("process.pid"))
        resources.setdefault(key, []).append(span)
    older = [key for key in resources if key[2] is None]  # the SDK's own default instance id, as before
    assert 1 == len(older) and older[0][1] not in ("web-a", "web-b")
    assert {(WEB_SERVICE, "web-a", 4101): 8, (WEB_SERVICE, "web-b", 4102): 8, older[0]: 4} == {
        key: len(spans) for key, spans in resources.items()
    }
    assert 3 == len(encode_spans(list(memory.get_finished_spans())).resource_spans)


@pytest.mark.log_schema_exempt("a hand-made notice line and a torn last line, written on purpose")
def test_skipped_lines_are_counted_once_in_one_pass_and_two(
    shop: tuple[Path, list[ReadableSpan]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line of no span and a torn last line are the 2 lines skipped, whether export reads once (no filter) or twice (--errors)."""
    path = tmp_path / "torn.jsonl"
    notice = {"@timestamp": "2026-12-01T00:00:00.000000000Z", "event.action": "lc_trace_dropped", "message": "x"}
    path.write_bytes(shop[0].read_bytes() + json.dumps(notice).encode() + b"\n" + b'{"torn')
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    endpoint = f"http://127.0.0.1:{free_port()}"
    for extra, traces in (([], 5), (["--errors"], 1)):
        code, out, err = run_cli(["export", str(path), "-q", "--endpoint", endpoint, *extra])
        assert out.startswith(f"{traces} traces: 0 spans sent, ") and ", 2 lines skipped (not JSON, or no span)" in out
        assert 1 == err.count("skipped 1 invalid line(s)")


@pytest.mark.parametrize(
    ("trace_number", "span_number"), [(1, 1), (0, 1), (1, 0), (2**128 - 1, 2**64 - 1), (2**128, 1), (1, 2**64)]
)
def test_span_context_made_as_the_sdk_makes_it(trace_number: int, span_number: int) -> None:
    """
    Export makes its span contexts without ``SpanContext.__new__``'s call: the same tuple, validity included.
    """
    from opentelemetry.trace import SpanContext, TraceFlags

    from lc_trace._read._export import _context

    made, sdk = _context(trace_number, span_number), SpanContext(trace_number, span_number, False, TraceFlags(1))
    assert type(made) is SpanContext and tuple(made) == tuple(sdk)
    assert made.is_valid is sdk.is_valid and made.trace_state is sdk.trace_state
