"""
lc_trace.configure() with the collector down: the app exits promptly, every span that could not
be exported is counted in ``handler.stats`` and reported once, memory stays bounded, and export
resumes when a collector is back (issue 9, point 4).

Everything here is real: the SDK's own OTLP exporters (gRPC and http/protobuf) sending to a
loopback port nobody listens on, apps run as subprocesses and timed from their last call to
their exit, and the suite's real OpenTelemetry Collector and Jaeger (tests/stack) stopped and
started again.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.error
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import lc_trace
from lc_trace._configure import _shutdown_at_exit
from lc_trace.testing import read_log
from tests.conftest import flower_chain
from tests.stack import servers
from tests.stack.cache import free_port

pytestmark = pytest.mark.faults

PROTOCOLS = ["grpc", "http/protobuf"]
EXIT_BOUND_S = 5.0  # issue 9: the process exits within 5 s of its last call

# The app a user would write: configure(), some calls, the end of the script. An atexit hook
# registered before configure() runs after lc_trace's own (LIFO), so it sees the final stats.
APP = """
import atexit, json, sys, time
import lc_trace
from lc_trace.testing import FakeChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

calls, log_path = int(sys.argv[1]), sys.argv[2]
atexit.register(lambda: print("STATS " + json.dumps({k: v for k, v in vars(handler.stats).items() if not k.startswith("_")}), flush=True))
handler = lc_trace.configure("down-app", log_path=log_path)
chain = ChatPromptTemplate.from_messages([("human", "Which flower for {who}?")]) | FakeChatModel(responses=["A red rose."]) | StrOutputParser()
for i in range(calls):
    assert "A red rose." == chain.invoke({"who": str(i)}, {"callbacks": [handler]})
print(f"LAST {time.time()!r}", flush=True)
"""


def _dead_endpoint(protocol: str) -> dict[str, str]:
    """OTLP variables that point at a loopback port nobody listens on."""
    return {
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
    }


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LC_TRACE_"))}
    return {**env, **extra}


def _run_app(tmp_path: Path, calls: int, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run APP with *calls* calls; the process and the seconds from its last call to its exit."""
    app = tmp_path / "app.py"
    app.write_text(APP)
    done = subprocess.run(
        [sys.executable, str(app), str(calls), str(tmp_path / "app.jsonl")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    exited = time.time()
    assert 0 == done.returncode, done.stderr
    last = float(next(line for line in done.stdout.splitlines() if line.startswith("LAST "))[5:])
    return done, exited - last


class TestExitWithNothingListening:
    @pytest.mark.parametrize("protocol", PROTOCOLS)
    @pytest.mark.parametrize(
        "calls",
        [
            pytest.param(5, id="first-export-at-exit"),  # the exporter first meets the dead port at exit
            pytest.param(400, id="outage-found-mid-run"),  # 1,600 spans: batches fail while the app runs
        ],
    )
    def test_app_exits_within_5_s_and_counts_every_span(self, protocol, calls, tmp_path):
        """An app with configure() and no collector exits within 5 s of its last call; every span is counted as lost."""
        done, after_last = _run_app(tmp_path, calls, _clean_env(**_dead_endpoint(protocol)))
        assert after_last < EXIT_BOUND_S, f"exited {after_last:.1f} s after the last call\n{done.stderr}"
        stats = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("STATS "))[6:])
        assert 0 == stats["spans_exported"]
        assert 4 * calls == (
            stats["spans_dropped_export_failed"]
            + stats["spans_dropped_unreachable"]
            + stats["spans_dropped_queue_full"]
        )
        assert stats["metric_points_dropped_export_failed"] + stats["metric_points_dropped_unreachable"] > 0
        # Reported once: one warning when the outage starts, one at exit with the count; never per batch.
        ours = [line for line in done.stderr.splitlines() if line.startswith("lc_trace:")]
        assert 2 == len(ours), done.stderr
        assert "cannot export spans" in ours[0]
        assert f"exiting with the collector unreachable; {4 * calls} spans and" in ours[1]
        # The log file is whole: every call's 8 lines are there, the collector being down or not.
        assert 8 * calls == len(read_log(tmp_path / "app.jsonl"))

    @pytest.mark.parametrize("protocol", PROTOCOLS)
    def test_a_collector_that_accepts_and_never_answers_holds_exit_one_timeout(self, protocol, tmp_path):
        """A port that accepts connections and never answers (a hung collector) costs exit one OTLP timeout (2 s), not more."""
        with socket.socket() as hung:
            hung.bind(("127.0.0.1", 0))
            hung.listen(16)  # the kernel completes the handshakes; nobody ever reads
            env = _clean_env(
                OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
                OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{hung.getsockname()[1]}",
                OTEL_EXPORTER_OTLP_INSECURE="true",
            )
            done, after_last = _run_app(tmp_path, 5, env)
        assert after_last < EXIT_BOUND_S, f"exited {after_last:.1f} s after the last call\n{done.stderr}"
        stats = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("STATS "))[6:])
        assert (0, 20) == (stats["spans_exported"], stats["spans_dropped_export_failed"])


# gunicorn --preload's shape: configure() in the parent, then forked workers that make the calls and exit.
FORK_APP = """
import atexit, json, os, sys, time
import lc_trace
from lc_trace.testing import FakeChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

def say(text):  # one write of a whole line: processes sharing the pipe never split each other's lines
    os.write(1, (text + "\\n").encode())

atexit.register(lambda: say(f"STATS {os.getpid()} " + json.dumps({"spans_dropped": handler.stats.spans_dropped, "spans_exported": handler.stats.spans_exported})))
handler = lc_trace.configure("forked-app", log_path=sys.argv[1])
chain = ChatPromptTemplate.from_messages([("human", "Which flower for {who}?")]) | FakeChatModel(responses=["A red rose."]) | StrOutputParser()
chain.invoke({"who": "parent"}, {"callbacks": [handler]})
handler.flush()  # the parent finds the outage before it forks
pids = []
for worker in range(2):
    pid = os.fork()
    if pid == 0:
        for i in range(50):
            chain.invoke({"who": f"{worker}-{i}"}, {"callbacks": [handler]})
        say(f"LAST {time.time()!r}")
        sys.exit(0)
    pids.append(pid)
for pid in pids:
    _, status = os.waitpid(pid, 0)
    say(f"CHILD {pid} {status} {time.time()!r}")
"""


def test_forked_workers_exit_promptly_and_count_their_own_spans(tmp_path):
    """Workers forked after configure() (gunicorn --preload) each exit within 5 s and count exactly their own 200 spans."""
    app = tmp_path / "fork_app.py"
    app.write_text(FORK_APP)
    done = subprocess.run(
        [sys.executable, str(app), str(tmp_path / "app.jsonl")],
        env=_clean_env(**_dead_endpoint("grpc")),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    lines = done.stdout.splitlines()
    lasts = [float(line[5:]) for line in lines if line.startswith("LAST ")]
    ends = [line.split() for line in lines if line.startswith("CHILD ")]
    stats = {line.split()[1]: json.loads(line.split(maxsplit=2)[2]) for line in lines if line.startswith("STATS ")}
    assert 2 == len(lasts) == len(ends), done.stdout + done.stderr
    assert all(status == "0" for _, _, status, _ in ends)
    assert max(float(end) for *_, end in ends) - max(lasts) < EXIT_BOUND_S
    assert [{"spans_dropped": 200, "spans_exported": 0}] * 2 == [stats[pid] for _, pid, _, _ in ends]


@pytest.fixture
def dead_collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """OTLP (gRPC) pointed at a port nobody listens on, retried every 200 ms."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    for name, value in _dead_endpoint("grpc").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    yield


class TestInProcess:
    def test_calls_carry_on_memory_stays_bounded_and_stats_count_every_span(self, dead_collector, tmp_path, caplog):
        """With nothing listening, 1,800 calls all answer, memory stays flat, and every span is counted once."""
        handler = lc_trace.configure("down", set_global=False, log_path=tmp_path / "t.jsonl")
        chain = flower_chain()

        def run(n: int) -> None:
            for i in range(n):
                assert "A red rose." == chain.invoke({"who": f"customer {i}"}, {"callbacks": [handler]})

        try:
            with caplog.at_level(logging.WARNING, logger="lc_trace"):
                tracemalloc.start()
                run(300)
                assert handler.flush(10_000)
                gc.collect()
                before, _ = tracemalloc.get_traced_memory()
                run(1500)
                assert handler.flush(10_000)
                gc.collect()
                after, _ = tracemalloc.get_traced_memory()
                tracemalloc.stop()
            # 6,000 more spans (~7 MB if kept): dropped as they come, so nothing piles up.
            assert after - before < 2_000_000, f"memory grew by {after - before} bytes with the collector down"
            stats = handler.stats
            assert (0, 4 * 1800) == (stats.spans_exported, stats.spans_dropped)
            assert stats.spans_dropped_export_failed > 0 and stats.spans_dropped_unreachable > 0
            assert 0 == stats.dropped  # the log file lost nothing
            warnings = [r.getMessage() for r in caplog.records if r.name == "lc_trace"]
            assert 1 == len(warnings), warnings
            assert "cannot export spans" in warnings[0]
        finally:
            tracemalloc.stop()
            handler.close()
            _shutdown_providers(handler)

    def test_flush_does_not_wait_on_a_collector_known_down(self, dead_collector, tmp_path):
        """Once the collector is found down, handler.flush() returns at once instead of retrying for seconds."""
        handler = lc_trace.configure("down", set_global=False, log_path=None)
        chain = flower_chain()
        chain.invoke({"who": "mom"}, {"callbacks": [handler]})
        handler.flush()  # the first export meets the dead port (up to the 2 s OTLP timeout)
        assert 4 == handler.stats.spans_dropped_export_failed
        chain.invoke({"who": "dad"}, {"callbacks": [handler]})
        started = time.monotonic()
        handler.flush()
        assert time.monotonic() - started < 0.5
        assert 4 == handler.stats.spans_dropped_unreachable
        handler.close()
        _shutdown_providers(handler)

    def test_the_sdk_exporter_logs_why_once_and_not_at_every_try(self, dead_collector, tmp_path, caplog):
        """The OTel exporter's own error is logged for the export that found the outage, not again at later tries."""
        handler = lc_trace.configure("down", set_global=False, log_path=None)
        chain = flower_chain()
        with caplog.at_level(logging.WARNING):
            chain.invoke({"who": "mom"}, {"callbacks": [handler]})
            handler.flush()  # finds the outage: the SDK says why (UNAVAILABLE, connection refused)
            first = [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]
            assert first and "Connection refused" in first[-1].getMessage()
            # The SDK's own DuplicateFilter repeats a message once its 20 s window (time // 20) turns:
            # wait for the turn, then make lc_trace try again.
            window = time.time() // 20
            while time.time() // 20 == window:
                time.sleep(0.1)
            tried = handler.stats.spans_dropped_export_failed
            deadline = time.monotonic() + 10
            while handler.stats.spans_dropped_export_failed == tried:  # a try, not a drop at once
                assert time.monotonic() < deadline
                chain.invoke({"who": "dad"}, {"callbacks": [handler]})
                handler.flush()
                time.sleep(0.05)
        later = [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]
        assert first == later
        assert 1 == len([r for r in caplog.records if r.name == "lc_trace"])
        handler.close()
        _shutdown_providers(handler)


class _GatedExporter(SpanExporter):
    """A real SpanExporter that holds its first export until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.gate.wait(30)
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.gate.set()


def test_spans_the_full_queue_drops_are_counted(monkeypatch, tmp_path):
    """While the exporter is busy, spans the SDK's full queue pushes out are counted, so exported + dropped = made."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "16")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
    exporter = _GatedExporter()
    handler = lc_trace.configure("busy", exporter=exporter, set_global=False, log_path=None)
    chain = flower_chain()
    chain.invoke({"who": "first"}, {"callbacks": [handler]})  # 4 spans: a full batch wakes the worker
    assert exporter.entered.wait(10)
    for i in range(20):  # 80 spans into a queue of 16 while the exporter is held
        chain.invoke({"who": str(i)}, {"callbacks": [handler]})
    exporter.gate.set()
    assert handler.flush(10_000)
    stats = handler.stats
    assert 80 - 16 == stats.spans_dropped_queue_full
    assert (exporter.spans, 84) == (stats.spans_exported, stats.spans_exported + stats.spans_dropped)
    handler.close()


class TestTimeouts:
    @staticmethod
    def _parts(handler: Any) -> tuple[Any, Any, Any]:
        processor = handler._spans.provider._active_span_processor._span_processors[0]
        (reader,) = handler._metrics._provider._metric_readers
        return processor, processor.span_exporter.inner, reader._exporter.inner

    @staticmethod
    def _timeout_s(exporter: Any) -> float:
        return float(exporter._timeout if hasattr(exporter, "_timeout") else exporter._client._timeout)

    @pytest.mark.parametrize("protocol", PROTOCOLS)
    def test_lc_trace_defaults(self, protocol, monkeypatch, fresh_otel_env):
        """Unset, the OTLP exporters get 2 s (retries included) and the last exports 3 s, not the SDK's 10 s and 30 s."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        handler = lc_trace.configure("x", set_global=False, log_path=None)
        processor, spans, metrics = self._parts(handler)
        assert (2.0, 2.0) == (self._timeout_s(spans), self._timeout_s(metrics))
        assert 3000 == processor._batch_processor._export_timeout_millis
        assert 5.0 == processor.span_exporter.outage.retry_interval_s
        handler.close()

    @pytest.mark.parametrize("protocol", PROTOCOLS)
    def test_the_standard_variables_override_them(self, protocol, monkeypatch, fresh_otel_env):
        """OTEL_EXPORTER_OTLP_(TRACES_|METRICS_)TIMEOUT, OTEL_BSP_EXPORT_TIMEOUT and OTEL_BSP_SCHEDULE_DELAY win."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "7")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "9")
        monkeypatch.setenv("OTEL_BSP_EXPORT_TIMEOUT", "12000")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "1500")
        handler = lc_trace.configure("x", set_global=False, log_path=None)
        processor, spans, metrics = self._parts(handler)
        assert (9.0, 7.0) == (self._timeout_s(spans), self._timeout_s(metrics))
        assert 12000 == processor._batch_processor._export_timeout_millis
        assert 1.5 == processor.span_exporter.outage.retry_interval_s
        handler.close()

    def test_exit_follows_a_longer_timeout_the_user_sets(self, tmp_path):
        """OTEL_EXPORTER_OTLP_TIMEOUT=4 is honoured: exit waits for that one try (about 3 s of retries), no longer."""
        env = _clean_env(**_dead_endpoint("http/protobuf"), OTEL_EXPORTER_OTLP_TIMEOUT="4")
        _, after_last = _run_app(tmp_path, 5, env)
        assert 2.0 < after_last < 4.0 + 3.0, f"exited {after_last:.1f} s after the last call"


@pytest.fixture
def fresh_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* variable from the outside world."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


# --- the real collector stopped and started again ---------------------------------------------


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    server = servers.jaeger(tmp_path_factory.mktemp("jaeger")).start()
    yield server
    server.stop()


def _stored_span_ids(jaeger: servers.Server, trace_id: str) -> set[str]:
    """The span ids Jaeger holds for *trace_id* right now (none if it does not know the trace)."""
    url = f"http://127.0.0.1:{jaeger.ports['query_http']}/api/v3/traces/{trace_id}"
    try:
        body = servers.get_json(url)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return set()
        raise
    return {
        span["spanId"]
        for resource_spans in body["result"]["resourceSpans"]
        for scope_spans in resource_spans["scopeSpans"]
        for span in scope_spans["spans"]
    }


def _wait_stored(jaeger: servers.Server, trace_id: str, span_ids: set[str], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _stored_span_ids(jaeger, trace_id) != span_ids:
        assert time.monotonic() < deadline, f"trace {trace_id} incomplete in Jaeger after {timeout_s} s"
        time.sleep(0.2)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_collector_stopped_and_started_export_resumes_and_stats_equal_the_loss(
    protocol, jaeger, tmp_path, monkeypatch, caplog
):
    """
    The real collector is stopped mid-run and started again: calls carry on, export resumes by
    itself, and the spans missing from Jaeger are exactly those handler.stats counts as dropped.
    """
    collector = servers.collector(tmp_path, f"127.0.0.1:{jaeger.ports['otlp_grpc']}").start()
    port = collector.ports["otlp_grpc" if protocol == "grpc" else "otlp_http"]
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "300")
    log_path = tmp_path / "lc_trace.jsonl"
    handler = lc_trace.configure(f"outage-{protocol.replace('/', '-')}", set_global=False, log_path=log_path)
    chain = flower_chain()
    calls = 0

    def run(n: int) -> None:
        nonlocal calls
        for _ in range(n):
            assert "A red rose." == chain.invoke({"who": f"customer {calls}"}, {"callbacks": [handler]})
            calls += 1

    try:
        with caplog.at_level(logging.WARNING, logger="lc_trace"):
            run(10)
            assert handler.flush(10_000)
            assert 40 == handler.stats.spans_exported
            collector.stop()
            run(30)
            handler.flush(10_000)
            run(30)  # the collector is known down now: these are dropped without a try
            handler.flush(10_000)
            assert 240 == handler.stats.spans_dropped
            collector.start()  # same ports
            deadline = time.monotonic() + 30
            while handler.stats.spans_exported == 40:  # export resumes by itself, within a retry interval
                assert time.monotonic() < deadline, "export did not resume within 30 s of the collector's return"
                run(1)
                handler.flush(10_000)
                time.sleep(0.1)
            run(10)
            assert handler.flush(10_000)
        stats = handler.stats
        assert 4 * calls == stats.spans_exported + stats.spans_dropped
        messages = [r.getMessage() for r in caplog.records if r.name == "lc_trace"]
        assert 2 == len(messages), messages
        assert "cannot export spans" in messages[0]
        assert "export resumed after" in messages[1] and f"{stats.spans_dropped} spans" in messages[1]

        # Jaeger against the log file: every span the app made is there unless stats counted it as lost.
        made: dict[str, set[str]] = {}
        for line in read_log(log_path):
            made.setdefault(line["trace.id"], set()).add(line["span.id"])
        assert calls == len(made)
        traces = list(made)
        _wait_stored(jaeger, traces[-1], made[traces[-1]])  # the last call has arrived, so all before it have
        time.sleep(1.5)  # the collector's batch processor sends within a second
        stored = {trace_id: _stored_span_ids(jaeger, trace_id) for trace_id in traces}
        assert all(stored[t] <= made[t] for t in traces)
        # A call's spans may straddle two batches, so a trace may arrive in part: count spans, not traces.
        missing = sum(len(made[t] - stored[t]) for t in traces)
        assert stats.spans_dropped == missing
        assert all(stored[t] for t in traces[:10]) and all(stored[t] for t in traces[-10:])
        assert not any(stored[t] for t in traces[10:70])
    finally:
        handler.close()
        _shutdown_providers(handler)  # while the collector still runs, so exit has nothing left to try
        collector.stop()


def _shutdown_providers(handler: Any) -> None:
    """What configure()'s exit hook does, done now, so the test's outage is not reported at the suite's exit."""
    processor = handler._spans.provider._active_span_processor._span_processors[0]
    outage = processor.span_exporter.outage
    _shutdown_at_exit(handler._spans.provider, handler._metrics._provider, (outage,))
