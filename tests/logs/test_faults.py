"""
The fault suite: production faults done for real, counted as a user would count them.

Real worker processes (fork, spawn, several apps, a real gunicorn), real renames and a real
logrotate, a real small file system, real resource limits, ``kill -9``. Each test counts the
lines of every run by kind: lost, duplicated, torn, and what ``stats`` said. docs/reliability.md
maps each fault to the test here.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.faults.ledger import LINES_PER_CALL, Ledger, read_ledger, read_stats
from tests.stack.cache import free_port

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tests" / "faults" / "worker.py"
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

exempt_rotated = pytest.mark.log_schema_exempt("checked line by line by the ledger", files=["*.jsonl.*"])


def run_worker(*args: object, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WORKER), *map(str, args)], env=ENV, capture_output=True, text=True, timeout=timeout
    )


_WORKERS: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _reap_workers() -> Iterator[None]:
    """
    A test that fails before it stops its workers leaves no process running and no pipe open: a leaked one would
    be reported, at garbage collection, as an unraisable warning in whichever later test of this process runs then.
    """
    yield
    while _WORKERS:
        proc = _WORKERS.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def start_worker(*args: object) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, args)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _WORKERS.append(proc)
    assert "ready\n" == proc.stdout.readline(), proc.stderr.read()  # type: ignore[union-attr]
    return proc


def _wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll *condition*: a loaded machine (the suite's other workers, a build beside it) can be slow, never wrong."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not there after {timeout_s:.0f} s"
        time.sleep(0.02)


def stop_worker(proc: subprocess.Popen[str]) -> int:
    """SIGTERM a looping worker; return how many calls it made."""
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert 0 == proc.returncode, err
    return int(out.split("calls ")[-1])


# -- many processes, one path ---------------------------------------------------------------


@exempt_rotated
@pytest.mark.parametrize("mode", ["fork-after", "fork-before", "spawn", "apps"])
def test_many_processes_share_one_file_and_one_rotation(tmp_path, mode):
    """
    Four workers, 1,500 calls each, on one log path with a 256 KiB limit: no line lost,
    duplicated or torn; no file over the limit; each worker's stats count exactly its lines.
    """
    log, calls, max_bytes = tmp_path / "logs" / "lc_trace.jsonl", 1500, 256 * 1024
    workers = [f"w{n}" for n in range(4)]
    if mode == "apps":  # four separate apps, started together, pointed at one folder
        procs = [
            subprocess.Popen(
                [sys.executable, str(WORKER), *map(str, ("one", log, tmp_path, "--worker", w, "--calls", calls))],
                env=ENV,
                stderr=subprocess.PIPE,
                text=True,
            )
            for w in workers
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert 0 == proc.returncode, err
    else:
        done = run_worker(mode, log, tmp_path, "--calls", calls)
        assert 0 == done.returncode, done.stderr
        if mode == "fork-after":
            workers.append("parent")

    ledger = read_ledger(log)
    stats = read_stats(tmp_path)
    assert [] == ledger.torn
    assert 0 == ledger.nul_bytes
    assert 0 == ledger.duplicated
    assert {w: 0 for w in workers} == {w: ledger.lost(w, 10 if w == "parent" else calls) for w in workers}
    assert [] == ledger.drop_reports
    assert sorted(workers) == sorted(stats)
    assert len(ledger.traced) == sum(s["lines_written"] for s in stats.values())
    assert 0 == sum(s["dropped_queue_full"] + s["dropped_write_error"] for s in stats.values())
    assert max(ledger.sizes.values()) <= max_bytes
    assert len(ledger.sizes) > 10  # the workers really rotated, many times, together


@exempt_rotated
def test_backups_beyond_the_limit_are_deleted_and_no_others(tmp_path):
    """Four forked workers rotating with log_backups=3: exactly 4 files remain, the newest lines, whole."""
    log = tmp_path / "lc_trace.jsonl"
    done = run_worker("fork-before", log, tmp_path, "--calls", 600, "--max-bytes", 64 * 1024, "--backups", 3)
    assert 0 == done.returncode, done.stderr
    ledger = read_ledger(log)
    assert ["lc_trace.jsonl", "lc_trace.jsonl.1", "lc_trace.jsonl.2", "lc_trace.jsonl.3"] == sorted(ledger.sizes)
    assert [] == ledger.torn and 0 == ledger.duplicated
    kept = [w for w in ("w0", "w1", "w2", "w3") if ledger.calls(w)]
    assert kept
    for worker in kept:  # a worker's kept lines are its latest calls, none missing between (only the oldest files went)
        held = sorted(ledger.calls(worker))
        assert list(range(held[0], 600)) == held
        assert all(LINES_PER_CALL == ledger.calls(worker)[c] for c in held[1:])


GUNICORN_APP = """
import atexit, json, os
from langchain_core.runnables import RunnableLambda
from lc_trace import TraceHandler

handler = TraceHandler(log_path=os.environ["LOG"], service_name="shop", log_max_bytes=128 * 1024, log_backups=1000)
chain = RunnableLambda(lambda x: x.upper(), name="shout") | RunnableLambda(lambda x: x[:40], name="cut")
chain.invoke("warm-up in the master", {"callbacks": [handler], "metadata": {"worker": "master", "call": 0}})

def app(environ, start_response):
    call = int(environ["PATH_INFO"].strip("/"))
    chain.invoke("a long prompt about roses " * 20, {"callbacks": [handler], "metadata": {"worker": "web", "call": call}})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]

@atexit.register
def report():  # what an app that wants the counts does: close, then read stats
    handler.close()
    stats = {k: getattr(handler.stats, k) for k in ("lines_written", "dropped_queue_full", "dropped_write_error")}
    with open(os.path.join(os.environ["OUT"], f"stats-{os.getpid()}.json"), "w") as f:
        json.dump(stats, f)
"""


@exempt_rotated
def test_a_real_gunicorn_with_preload_and_four_workers(tmp_path):
    """
    gunicorn --preload -w 4 (the handler built in the master, inherited by forked workers):
    2,000 requests, every line of every request in the files once, whole; stats add up.
    """
    (tmp_path / "shop.py").write_text(GUNICORN_APP)
    port, log = free_port(), tmp_path / "logs" / "lc_trace.jsonl"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--preload", "-w", "4", "-b", f"127.0.0.1:{port}", "shop:app"],
        cwd=tmp_path,
        env={**ENV, "LOG": str(log), "OUT": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not start"
            time.sleep(0.1)

        def get(call: int) -> str:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request("GET", f"/{call}")
                return conn.getresponse().read().decode()
            finally:
                conn.close()

        with ThreadPoolExecutor(8) as pool:
            pids = set(pool.map(get, range(2000)))
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert len(pids) > 1, "the requests were served by more than one worker"
    ledger = read_ledger(log)
    stats = read_stats(tmp_path)
    assert [] == ledger.torn and 0 == ledger.nul_bytes and 0 == ledger.duplicated
    assert 0 == ledger.lost("web", 2000)
    assert 0 == ledger.lost("master", 1)
    assert {str(p) for p in pids} <= set(stats), err  # every worker that served reported its stats
    assert len(ledger.traced) == sum(s["lines_written"] for s in stats.values())
    assert max(ledger.sizes.values()) <= 128 * 1024


@exempt_rotated
def test_a_killed_worker_leaves_no_torn_line_for_the_others(tmp_path):
    """kill -9 one of two writers mid-burst: the other's lines stay whole; the dead one lost at most its queue."""
    log = tmp_path / "lc_trace.jsonl"
    victim = start_worker("loop", log, tmp_path, "--worker", "victim", "--flush-ms", 5)
    survivor = start_worker("loop", log, tmp_path, "--worker", "survivor", "--flush-ms", 5)
    time.sleep(1.5)
    victim.kill()
    victim.communicate(timeout=30)
    time.sleep(0.5)
    calls = stop_worker(survivor)
    ledger = read_ledger(log)
    assert [] == ledger.torn and 0 == ledger.duplicated
    assert 0 == ledger.lost("survivor", calls)
    victim_calls = ledger.calls("victim")
    assert len(victim_calls) > 100
    complete = max(victim_calls)  # the dead worker's lines end at its last flush: nothing missing before it
    assert 0 == ledger.lost("victim", complete)


# -- rotation done by others ------------------------------------------------------------------


def _logrotate() -> str:
    path = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not os.path.exists(path):
        pytest.skip("logrotate is not installed (Debian package logrotate; .ci/run installs it)")
    return path


def _run_under_logrotate(tmp_path: Path, directive: str, times: int) -> tuple[Ledger, int]:
    """
    A worker writing a line pair every millisecond while real logrotate rotates its file *times*
    with *directive*; the file's ledger and the calls the worker made.
    """
    logrotate = _logrotate()
    log = tmp_path / "logs" / "lc_trace.jsonl"
    worker = start_worker("loop", log, tmp_path, "--flush-ms", 20, "--pace-ms", 1, "--max-bytes", 0)
    conf = tmp_path / "logrotate.conf"
    conf.write_text(f"{log} {{\n    {directive}\n    rotate 50\n    missingok\n    nocompress\n}}\n")
    for _ in range(times):
        time.sleep(0.4)
        _wait_until(lambda: log.exists() and log.stat().st_size > 0, "new lines at the path before rotating")
        done = subprocess.run(
            [logrotate, "-f", "-s", str(tmp_path / "state"), str(conf)], capture_output=True, text=True
        )
        assert 0 == done.returncode, done.stderr
    time.sleep(0.5)
    calls = stop_worker(worker)
    return read_ledger(log), calls


@exempt_rotated
def test_logrotate_create_sends_the_next_batch_to_a_new_file(tmp_path):
    """logrotate's default (rename, create): each rename is followed, later lines land at log_path, none lost."""
    ledger, calls = _run_under_logrotate(tmp_path, "create 0600", times=3)
    assert {"lc_trace.jsonl", "lc_trace.jsonl.1", "lc_trace.jsonl.2", "lc_trace.jsonl.3"} == set(ledger.sizes)
    assert all(size > 0 for size in ledger.sizes.values())  # every rename was followed by new lines at the path
    assert [] == ledger.torn and 0 == ledger.duplicated
    assert 0 == ledger.lost("w0", calls)


@exempt_rotated
def test_logrotate_copytruncate_leaves_no_nul_holes(tmp_path):
    """copytruncate: no NUL bytes, no torn line; what is lost is only logrotate's copy window, one gap a rotation."""
    ledger, calls = _run_under_logrotate(tmp_path, "copytruncate", times=3)
    assert 0 == ledger.nul_bytes
    assert [] == ledger.torn and 0 == ledger.duplicated
    held = ledger.calls("w0")
    missing = [c for c in range(calls) if held.get(c, 0) < LINES_PER_CALL]
    gaps = sum(1 for i, c in enumerate(missing) if i == 0 or missing[i - 1] != c - 1)
    assert gaps <= 3, f"{len(missing)} calls lost in {gaps} gaps"


@exempt_rotated
def test_a_deleted_file_is_recreated(tmp_path):
    """The log file (and then its folder) deleted under a running app: the next lines make them again."""
    log = tmp_path / "logs" / "lc_trace.jsonl"
    worker = start_worker("loop", log, tmp_path, "--flush-ms", 20, "--pace-ms", 1)
    _wait_until(log.exists, "the log file")
    log.unlink()
    _wait_until(log.exists, "the log file made again after it was deleted")
    shutil.rmtree(log.parent)
    _wait_until(log.exists, "the log file and its folder made again after the folder was deleted")
    time.sleep(0.2)  # some lines into the new file
    calls = stop_worker(worker)
    ledger = read_ledger(log)
    assert [] == ledger.torn and 0 == ledger.duplicated
    assert calls - 1 == max(ledger.calls("w0"))  # writing went on to the very last call


# -- write errors -------------------------------------------------------------------------------


@contextlib.contextmanager
def small_filesystem(where: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of *size*; skipped (saying why) where mounting is not allowed."""
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _traced_calls(handler, start: int, count: int) -> None:
    from langchain_core.runnables import RunnableLambda

    chain = RunnableLambda(lambda x: x.upper(), name="shout") | RunnableLambda(lambda x: x[:40], name="cut")
    for call in range(start, start + count):
        chain.invoke(
            "a long prompt about roses " * 20, {"callbacks": [handler], "metadata": {"worker": "w0", "call": call}}
        )


@pytest.mark.log_schema_exempt("the small file system is unmounted before the schema check", files=["disk/*"])
def test_a_full_disk_drops_whole_lines_counts_them_and_recovers(tmp_path, caplog):
    """
    A 256 KiB tmpfs fills mid-batch: no part of a line stays in the file, every line is either
    written and counted or dropped and counted, writing resumes once space is freed, one warning
    at each end of the episode, and the drop line written on recovery says how many were lost.
    """
    from opentelemetry.sdk.trace import TracerProvider

    from lc_trace import TraceHandler

    with small_filesystem(tmp_path / "disk", "256k") as disk:
        log = disk / "lc_trace.jsonl"
        filler = disk / "filler"
        filler.write_bytes(b"x" * 150_000)
        handler = TraceHandler(tracer_provider=TracerProvider(), log_path=log, flush_interval_ms=60_000)
        with caplog.at_level(logging.WARNING, logger="lc_trace"):
            _traced_calls(handler, 0, 300)  # ~1,800 lines, ~1.4 MB: one batch far larger than the free space
            assert handler.flush()
            full = read_ledger(log)
            filler.unlink()
            log.write_bytes(b"")  # the user makes room (a truncating rotation, say)
            _traced_calls(handler, 300, 20)
            assert handler.flush()
        after = read_ledger(log)
        stats = handler.stats
        handler.close()

    assert [] == full.torn and [] == after.torn
    assert stats.dropped_write_error > 0
    assert 1800 == len(full.traced) + stats.dropped_write_error  # each line: in the file, or counted as dropped
    assert len(full.traced) + len(after.traced) == stats.lines_written
    assert {c: LINES_PER_CALL for c in range(300, 320)} == dict(after.calls("w0"))  # every line after recovery
    reports = after.drop_reports
    assert 1 == len(reports) and stats.dropped_write_error == reports[0]["lc_trace.dropped.write_error"]
    episode = [r.getMessage() for r in caplog.records if "lc_trace" in r.name]
    assert 2 == len(episode), episode
    assert "No space left on device" in episode[0] and "again" in episode[1]


RLIMIT_APP = """
import json, resource, sys
from opentelemetry.sdk.trace import TracerProvider
from lc_trace import TraceHandler
from tests.logs.test_faults import _traced_calls
from tests.faults.ledger import read_ledger

log = sys.argv[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))  # Python ignores SIGXFSZ: writes fail with EFBIG
handler = TraceHandler(tracer_provider=TracerProvider(), log_path=log, flush_interval_ms=60_000)
_traced_calls(handler, 0, 100)
handler.flush()
held = len(read_ledger(__import__("pathlib").Path(log)).traced)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
_traced_calls(handler, 100, 10)
handler.close()
print(json.dumps({"held": held, "written": handler.stats.lines_written, "dropped": handler.stats.dropped_write_error}))
"""


def test_a_file_size_limit_efbig_drops_whole_lines_and_recovers(tmp_path):
    """RLIMIT_FSIZE (EFBIG) cuts a batch: the file holds only whole lines, counts are exact, writing resumes."""
    log = tmp_path / "lc_trace.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", RLIMIT_APP, str(log)], env=ENV, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert 0 == done.returncode, done.stderr
    counts = json.loads(done.stdout)
    ledger = read_ledger(log)
    assert [] == ledger.torn
    assert counts["held"] < 600 and counts["dropped"] == 600 - counts["held"]
    assert len(ledger.traced) == counts["written"] == counts["held"] + 60
    assert "File too large" in done.stderr and "again" in done.stderr


def test_a_file_made_read_only_underneath(tmp_path):
    """The open log file made immutable (chattr +i: EPERM even for root) and writable again: lines in between are counted, none torn."""
    from opentelemetry.sdk.trace import TracerProvider

    from lc_trace import TraceHandler

    log = tmp_path / "lc_trace.jsonl"
    handler = TraceHandler(tracer_provider=TracerProvider(), log_path=log, flush_interval_ms=60_000)
    _traced_calls(handler, 0, 10)
    assert handler.flush()
    locked = subprocess.run(["chattr", "+i", str(log)], capture_output=True, text=True)
    if locked.returncode != 0:
        handler.close()
        pytest.skip(f"chattr +i is not supported here: {locked.stderr.strip()}")
    try:
        _traced_calls(handler, 10, 10)
        assert handler.flush()
    finally:
        subprocess.run(["chattr", "-i", str(log)], check=True)
    _traced_calls(handler, 20, 10)
    handler.close()
    ledger = read_ledger(log)
    assert [] == ledger.torn
    assert 60 == handler.stats.dropped_write_error
    assert 120 == handler.stats.lines_written == len(ledger.traced)
    assert 60 == ledger.drop_reports[0]["lc_trace.dropped.write_error"]
    assert {c: 6 for c in (*range(10), *range(20, 30))} == dict(ledger.calls("w0"))


@contextlib.contextmanager
def failing_disk(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A real FUSE file system (tests/faults/eiofs.py) whose writes fail with EIO on demand."""
    try:
        import fuse  # noqa: F401  (fusepy; needs libfuse2 and /dev/fuse)
    except (ImportError, OSError) as exc:
        pytest.skip(f"no FUSE here (fusepy with libfuse2; .ci/run installs them): {exc}")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse on this machine")
    backing, mount = tmp_path / "backing", tmp_path / "mnt"
    backing.mkdir()
    mount.mkdir()
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "faults" / "eiofs.py"), str(backing), str(mount)],
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mount):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"cannot mount a FUSE file system here: {server.communicate()[1].strip()[-300:]}")
            time.sleep(0.05)
        yield backing, mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)
        server.terminate()
        server.communicate(timeout=30)


@pytest.mark.log_schema_exempt("read back through the ledger before the file system is unmounted", files=["mnt/*"])
def test_an_io_error_part_way_through_a_write(tmp_path, caplog):
    """
    A disk that fails with EIO 2,500 bytes into a batch (a real FUSE file system): the part of a
    line it took is cut back, every line is written and counted or dropped and counted, writing
    resumes when the disk does, one warning at each end.
    """
    from opentelemetry.sdk.trace import TracerProvider

    from lc_trace import TraceHandler

    with failing_disk(tmp_path) as (backing, mount):
        log = mount / "logs" / "lc_trace.jsonl"
        handler = TraceHandler(tracer_provider=TracerProvider(), log_path=log, flush_interval_ms=60_000)
        with caplog.at_level(logging.WARNING, logger="lc_trace"):
            _traced_calls(handler, 0, 10)
            assert handler.flush()
            (backing / ".fail").write_text("2500")
            _traced_calls(handler, 10, 10)
            assert handler.flush()
            failed = read_ledger(backing / "logs" / "lc_trace.jsonl")
            (backing / ".fail").unlink()
            _traced_calls(handler, 20, 10)
            handler.close()
        ledger = read_ledger(backing / "logs" / "lc_trace.jsonl")

    assert [] == failed.torn and [] == ledger.torn
    kept = len(failed.traced) - 60  # the whole lines within the 2,500 bytes the disk took; the rest was cut back
    assert 1 <= kept < 5
    assert 60 - kept == handler.stats.dropped_write_error
    assert 120 + kept == handler.stats.lines_written == len(ledger.traced)
    assert 60 - kept == ledger.drop_reports[0]["lc_trace.dropped.write_error"]
    episode = [r.getMessage() for r in caplog.records if r.name == "lc_trace"]
    assert 2 == len(episode) and "Input/output error" in episode[0] and "again" in episode[1]
