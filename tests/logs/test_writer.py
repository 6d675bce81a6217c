"""The background writer: nothing lost silently, nothing half-written, never in the caller's way."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from langchain_core.runnables import RunnableLambda
from opentelemetry.sdk.trace import TracerProvider

from lc_trace import AsyncTraceHandler, LogPathError, TraceHandler
from lc_trace._logs._writer import LineWriter
from lc_trace._stats import Stats
from lc_trace.testing import read_log
from tests.conftest import flower_chain, log_lines

REPO = Path(__file__).resolve().parents[2]


def line(i: int) -> bytes:
    return json.dumps({"n": i, "pad": "x" * 100}).encode() + b"\n"


raw_lines = pytest.mark.log_schema_exempt(
    "a LineWriter unit test: its file holds the test's own raw lines, not log lines"
)


class TestLineWriter:
    @raw_lines
    def test_burst_is_written_whole_and_in_order(self, tmp_path):
        """20,000 lines emitted at once all reach the file, in order."""
        writer = LineWriter(tmp_path / "burst.jsonl", flush_interval_s=0.05)
        for i in range(20_000):
            writer.emit(line(i))
        assert writer.flush()
        assert list(range(20_000)) == [d["n"] for d in read_log(writer.path)]
        assert 20_000 == writer.stats.lines_written
        assert writer.close()

    @raw_lines
    def test_emit_from_many_threads(self, tmp_path):
        """Eight threads emitting at once lose nothing."""
        writer = LineWriter(tmp_path / "threads.jsonl")
        threads = [
            threading.Thread(target=lambda k=k: [writer.emit(line(k * 10_000 + i)) for i in range(2_000)])
            for k in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        writer.close()
        assert 16_000 == len(read_log(writer.path))

    @raw_lines
    def test_full_queue_drops_are_counted_and_reported_in_the_file(self, tmp_path, caplog):
        """With a tiny queue, every dropped line is counted and the count is written into the log itself."""
        writer = LineWriter(
            tmp_path / "small.jsonl",
            queue_size=8,
            max_batch=8,
            drop_line=lambda new, total: json.dumps({"dropped": new, "total": total}).encode() + b"\n",
        )
        with caplog.at_level(logging.WARNING, logger="lc_trace"):
            for i in range(5_000):
                writer.emit(line(i))
        writer.close()
        rows = read_log(writer.path)
        written = [r for r in rows if "n" in r]
        reports = [r for r in rows if "dropped" in r]
        assert writer.stats.dropped_queue_full > 0
        assert 5_000 == len(written) + writer.stats.dropped_queue_full
        assert writer.stats.dropped_queue_full == sum(r["dropped"]["dropped_queue_full"] for r in reports)
        assert 1 == sum("queue is full" in r.message for r in caplog.records)  # reported once, not per line

    @raw_lines
    def test_wait_policy_loses_nothing(self, tmp_path):
        """on_full='wait' makes the producer wait for room instead of dropping."""
        writer = LineWriter(tmp_path / "wait.jsonl", queue_size=8, max_batch=8, on_full="wait")
        for i in range(3_000):
            writer.emit(line(i))
        writer.close()
        assert 0 == writer.stats.dropped_queue_full
        assert list(range(3_000)) == [d["n"] for d in read_log(writer.path)]

    def test_lines_after_close_are_counted(self, tmp_path, caplog):
        """A line emitted after close() is counted as dropped and reported once."""
        writer = LineWriter(tmp_path / "closed.jsonl")
        writer.close()
        with caplog.at_level(logging.WARNING, logger="lc_trace"):
            writer.emit(line(1))
            writer.emit(line(2))
        assert 2 == writer.stats.dropped_after_close
        assert 1 == len(caplog.records)

    @raw_lines
    def test_rotation_keeps_the_configured_number_of_files(self, tmp_path):
        """Past max_bytes the file rotates to .1, .2…; only `backups` old files are kept, every line intact."""
        path = tmp_path / "rot.jsonl"
        writer = LineWriter(path, max_bytes=20_000, backups=2, max_batch=50)
        for i in range(1_000):
            writer.emit(line(i))
            if i % 100 == 99:
                writer.flush()
        writer.close()
        files = sorted(p.name for p in tmp_path.iterdir())
        assert ["rot.jsonl", "rot.jsonl.1", "rot.jsonl.2"] == files
        numbers = [d["n"] for name in ("rot.jsonl.2", "rot.jsonl.1", "rot.jsonl") for d in read_log(tmp_path / name)]
        assert numbers == sorted(numbers) and 999 == numbers[-1]
        assert all(p.stat().st_size <= 20_000 for p in tmp_path.iterdir())

    @raw_lines
    def test_one_large_batch_still_respects_the_size_limit(self, tmp_path):
        """A batch bigger than max_bytes is split at line boundaries across rotated files."""
        path = tmp_path / "big.jsonl"
        writer = LineWriter(path, max_bytes=10_000, backups=20, flush_interval_s=60)
        for i in range(500):  # ~57 KB, queued before the writer wakes: one drain
            writer.emit(line(i))
        writer.close()
        files = list(tmp_path.iterdir())
        assert len(files) >= 6
        assert all(p.stat().st_size <= 10_000 for p in files)
        assert 500 == sum(len(read_log(p)) for p in files)

    @raw_lines
    def test_a_failing_rotation_is_counted_and_the_writer_goes_on(self, tmp_path, caplog):
        """When rotation fails (the backup name is a folder), the lost batch is counted, reported once, and writing continues."""
        path = tmp_path / "stuck.jsonl"
        (tmp_path / "stuck.jsonl.1").mkdir()
        writer = LineWriter(path, max_bytes=2_000, backups=1, flush_interval_s=60)
        with caplog.at_level(logging.WARNING, logger="lc_trace"):
            for round_ in range(3):
                for i in range(30):
                    writer.emit(line(round_ * 100 + i))
                assert writer.flush()
        writer.close()
        assert writer.stats.dropped_write_error > 0
        assert 90 == writer.stats.dropped_write_error + writer.stats.lines_written
        assert writer.stats.lines_written == len(read_log(path))
        assert 1 == len([r for r in caplog.records if "cannot write" in r.message])

    def test_file_and_folder_are_private(self, tmp_path):
        """The log holds prompts: its folder is created 0700 and the file 0600."""
        writer = LineWriter(tmp_path / "private" / "trace.jsonl")
        writer.close()
        assert 0o700 == stat.S_IMODE((tmp_path / "private").stat().st_mode)
        assert 0o600 == stat.S_IMODE(writer.path.stat().st_mode)

    @raw_lines
    def test_half_line_left_by_a_crash_is_cut_at_open(self, tmp_path):
        """A partial last line (a killed writer) is removed when the file is opened again."""
        path = tmp_path / "crashed.jsonl"
        path.write_bytes(line(1) + line(2) + b'{"n": 3, "pa')
        writer = LineWriter(path)
        writer.emit(line(4))
        writer.close()
        assert [1, 2, 4] == [d["n"] for d in read_log(path)]

    def test_bad_arguments_are_refused(self, tmp_path):
        """Out-of-range settings fail at construction with a message naming the setting."""
        with pytest.raises(ValueError, match="on_queue_full"):
            LineWriter(tmp_path / "a.jsonl", on_full="block")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="flush_interval"):
            LineWriter(tmp_path / "a.jsonl", flush_interval_s=0)


class TestBadPaths:
    def test_parent_is_a_file(self, tmp_path):
        """A log path under a regular file fails at construction, saying how to fix it."""
        (tmp_path / "afile").write_text("")
        with pytest.raises(LogPathError, match="cannot write its log file .*log_path=None"):
            TraceHandler(log_path=tmp_path / "afile" / "trace.jsonl")

    def test_path_is_a_directory(self, tmp_path):
        """A directory given as the log file fails at construction."""
        with pytest.raises(LogPathError, match="is a directory"):
            AsyncTraceHandler(log_path=tmp_path)

    def test_environment_variable_sets_the_path(self, tmp_path, monkeypatch, tracing):
        """LC_TRACE_LOG_PATH is used when no log_path is given."""
        monkeypatch.setenv("LC_TRACE_LOG_PATH", str(tmp_path / "env" / "t.jsonl"))
        handler = TraceHandler(tracer_provider=tracing[0])
        try:
            assert str(tmp_path / "env" / "t.jsonl") == handler.log_path
        finally:
            handler.close()

    def test_none_turns_file_logging_off(self, tmp_path, monkeypatch, tracing):
        """log_path=None writes no file and starts no writer, spans still flow."""
        monkeypatch.chdir(tmp_path)
        before = threading.active_count()
        handler = TraceHandler(tracer_provider=tracing[0], log_path=None)
        flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
        handler.close()
        assert [] == list(tmp_path.iterdir())
        assert before == threading.active_count()
        assert 4 == len(tracing[1].get_finished_spans())


class TestHandlerLifecycle:
    def test_handlers_on_one_file_share_one_writer(self, make_handler, log_path):
        """Handlers built per request share one writer thread; closing one keeps the others writing."""
        first = make_handler()
        threads = threading.active_count()
        second = make_handler(AsyncTraceHandler)
        assert threads == threading.active_count()
        first.close()
        flower_chain().invoke({"who": "mom"}, {"callbacks": [second]})
        flower_chain().invoke({"who": "dad"}, {"callbacks": [first]})  # closed: counted, not written
        assert 8 == len(log_lines(second))
        assert 8 == first.stats.dropped_after_close

    def test_after_close_spans_flow_and_lines_are_counted(self, make_handler, exporter, caplog):
        """A closed handler still makes spans; its lines are dropped, counted and reported once."""
        handler = make_handler()
        handler.close()
        with caplog.at_level(logging.WARNING, logger="lc_trace"):
            flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
        assert 4 == len(exporter.get_finished_spans())
        assert 8 == handler.stats.dropped_after_close
        assert 1 == len([r for r in caplog.records if "after close" in r.message])

    def test_close_closes_open_runs_and_is_idempotent(self, make_handler, exporter):
        """close() ends runs still open as 'shutdown' and may be called twice."""
        handler = make_handler()
        handler.on_chain_start(None, {"x": 1}, run_id=__import__("uuid").uuid4(), name="never_ends")
        assert 1 == handler.open_runs
        assert handler.close() and handler.close()
        (span,) = exporter.get_finished_spans()
        assert "shutdown" == span.attributes["langchain.run.end_reason"]

    async def test_aflush_and_aclose_in_async_code(self, make_handler):
        """aflush()/aclose() work from a coroutine and leave every line on disk."""
        handler = make_handler(AsyncTraceHandler)
        await flower_chain().ainvoke({"who": "mom"}, {"callbacks": [handler]})
        assert await handler.aflush()
        assert 8 == len(read_log(handler.log_path))
        assert await handler.aclose()


def run_script(body: str, tmp_path: Path, **kwargs: object) -> subprocess.Popen[str]:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )  # type: ignore[call-overload]


def test_asyncio_run_without_close_ends_with_every_line_on_disk(tmp_path):
    """An app that never closes the handler still has every line written when the interpreter exits."""
    proc = run_script(
        """
        import asyncio
        from lc_trace import AsyncTraceHandler
        from lc_trace.testing import FakeChatModel
        from langchain_core.prompts import ChatPromptTemplate

        async def main():
            handler = AsyncTraceHandler(log_path="out.jsonl", flush_interval_ms=60_000)
            chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | FakeChatModel()
            await asyncio.gather(*(chain.ainvoke({"q": str(i)}, {"callbacks": [handler]}) for i in range(50)))

        asyncio.run(main())
        """,
        tmp_path,
    )
    _, err = proc.communicate(timeout=120)
    assert 0 == proc.returncode, err
    lines = read_log(tmp_path / "out.jsonl")
    assert 50 * 6 == len(lines)  # 3 runs per call, a start and an end line each
    assert 50 == len({l["trace.id"] for l in lines})


def test_a_killed_process_leaves_only_whole_lines(tmp_path):
    """SIGKILL during a burst loses at most the queued lines; the file holds only whole lines once reopened."""
    proc = run_script(
        """
        import sys
        from lc_trace import TraceHandler
        from langchain_core.runnables import RunnableLambda
        handler = TraceHandler(log_path="out.jsonl", flush_interval_ms=5)
        step = RunnableLambda(lambda x: x, name="step")
        print("ready", flush=True)
        while True:
            step.invoke("x" * 2000, {"callbacks": [handler]})
        """,
        tmp_path,
    )
    assert "ready\n" == proc.stdout.readline()
    deadline = time.monotonic() + 30
    while (
        not (tmp_path / "out.jsonl").exists() or (tmp_path / "out.jsonl").stat().st_size < 2_000_000
    ) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    writer = LineWriter(tmp_path / "out.jsonl", stats=Stats())  # reopening repairs a torn tail
    writer.close()
    rows = read_log(tmp_path / "out.jsonl")
    assert len(rows) > 500
    assert {"chain_start", "chain_end"} == {r["event.action"] for r in rows}


def test_a_forked_worker_writes_its_own_lines(tmp_path):
    """After fork (gunicorn-style workers), parent and child each get every one of their own lines written."""
    proc = run_script(
        """
        import os
        from lc_trace import TraceHandler
        from langchain_core.runnables import RunnableLambda
        handler = TraceHandler(log_path="out.jsonl")
        step = RunnableLambda(lambda x: x, name="step")
        step.invoke("before fork", {"callbacks": [handler]})
        pid = os.fork()
        who = "child" if pid == 0 else "parent"
        for _ in range(100):
            step.invoke(who, {"callbacks": [handler]})
        handler.close()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        """,
        tmp_path,
    )
    _, err = proc.communicate(timeout=120)
    assert 0 == proc.returncode, err
    inputs = [l["langchain.input"] for l in read_log(tmp_path / "out.jsonl") if l["event.action"] == "chain_start"]
    assert 1 == inputs.count('"before fork"')
    assert 100 == inputs.count('"child"') == inputs.count('"parent"')


def test_handler_writes_its_drop_count_as_an_ecs_line(make_handler, tmp_path):
    """With a tiny queue, the handler's file says how many lines were dropped, in an ECS line of its own."""
    from langchain_core.runnables import RunnableLambda

    handler = make_handler(log_path=tmp_path / "tiny.jsonl", queue_size=4, flush_interval_ms=60_000)
    step = RunnableLambda(lambda x: x, name="step")
    for i in range(200):
        step.invoke(i, {"callbacks": [handler]})
    handler.close()
    rows = read_log(tmp_path / "tiny.jsonl")
    reports = [r for r in rows if r["event.action"] == "lc_trace_dropped"]
    assert handler.stats.dropped_queue_full > 0
    assert handler.stats.dropped_queue_full == sum(r["lc_trace.dropped.queue_full"] for r in reports)
    assert {"warning"} == {r["log.level"] for r in reports}
    assert all(r["ecs.version"] and r["service.name"] and r["@timestamp"] for r in reports)
    assert 400 == handler.stats.dropped_queue_full + len(rows) - len(reports)


def test_lines_waiting_for_a_stalled_disk_hold_only_their_own_bytes(tmp_path):
    """
    While the disk stalls, the 10,000 lines of 5,000 traced calls wait in the queue at about
    their own size (~5 MiB), not in orjson's 4 KiB output buffers (59 MiB before the fix). The
    stalled disk is a FIFO nobody reads; once it is drained, every line arrives.
    """
    fifo = tmp_path / "stalled.jsonl"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open but unread: the pipe fills, writes block
    handler = TraceHandler(tracer_provider=TracerProvider(), log_path=fifo, queue_size=20_000)
    step = RunnableLambda(lambda x: x + 1, name="step")
    step.invoke(0, {"callbacks": [handler]})  # first-call caches are not the backlog
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(5_000):
            step.invoke(i, {"callbacks": [handler]})
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        drained = bytearray()
        os.set_blocking(reader, True)
        drain = threading.Thread(
            target=lambda: [drained.extend(b) for b in iter(lambda: os.read(reader, 1 << 16), b"")]
        )
        drain.start()
        handler.close()
        drain.join(30)
        os.close(reader)
    assert held < 16 * 1024 * 1024, f"{held / 2**20:.1f} MiB held by 10,000 queued lines"
    (tmp_path / "drained.jsonl").write_bytes(drained)  # the schema check reads it after the test
    lines = read_log(tmp_path / "drained.jsonl")
    assert 10_002 == len(lines)
    assert list(range(5_000)) == [
        json.loads(d["langchain.input"]) for d in lines[2:] if d["event.action"] == "chain_start"
    ]
