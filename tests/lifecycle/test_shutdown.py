"""
Every way a Python service is stopped, done for real: the servers from PyPI (uvicorn alone and
with ``--workers``, gunicorn with sync and uvicorn workers, hypercorn), a Celery prefork worker,
a plain script on SIGTERM and SIGINT, and SIGTERM followed by SIGKILL after a grace period, as
Kubernetes stops a pod. The apps (``tests/shutdown/``) call ``lc_trace.configure()`` and put its
handler in ``config["callbacks"]``, nothing more. Clients talk to them over loopback; the spans
go to a small OTLP/HTTP receiver in this process (``tests/shutdown/receiver.py``).

Each test counts by run id what the clients got answers for: every run of every answered call
has its start and its end line, whole and once, and its span arrived once. The exit status is
compared with the same server's without lc_trace (``LC_TRACE_OFF=1``): lc_trace changes nothing
in how the server stops. docs/reliability.md, *Stopping*, maps each row to its test.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.shutdown.chains import RUNS
from tests.shutdown.receiver import Receiver
from tests.stack.cache import free_port

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 60.0
_PROCS: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    """
    Every process a test started is gone after it, children too (each runs in a session of its own),
    and its pipes closed: a leaked one would fail a later test as an unraisable warning at collection.
    """
    yield
    while _PROCS:
        proc = _PROCS.pop()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # workers the server left behind


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def _env(tmp_path: Path, receiver: Receiver | None, **extra: str) -> dict[str, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LC_TRACE_"))},
        "PYTHONPATH": str(REPO),
        "LC_TRACE_LOG_PATH": str(tmp_path / "logs" / "lc_trace.jsonl"),
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url if receiver is not None else "http://127.0.0.1:9",
        "CELERY_DIR": str(tmp_path / "celery"),
        **extra,
    }
    return env


def start(command: list[str], tmp_path: Path, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    output = open(tmp_path / f"{name}.out", "wb")
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    output.close()
    _PROCS.append(proc)
    return proc


def wait_listening(port: int, proc: subprocess.Popen[bytes], tmp_path: Path, name: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        assert proc.poll() is None, (tmp_path / f"{name}.out").read_text()
        assert time.monotonic() < deadline, f"{name} did not listen in 60 s"
        time.sleep(0.05)


def get(port: int, path: str, timeout: float = 30) -> int | None:
    """The call number the server answered, or None (refused, reset, an error status)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return int(body) if response.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()


def calls(port: int, numbers: range, threads: int = 4) -> set[int]:
    with ThreadPoolExecutor(threads) as pool:
        return {n for n in pool.map(lambda n: get(port, f"/call/{n}"), numbers) if n is not None}


def stop(proc: subprocess.Popen[bytes], sig: int) -> tuple[int, float]:
    """
    Send *sig* (SIGINT to the whole process group, as a terminal's Ctrl-C does: a supervisor's
    workers get it too); return the exit status and the seconds to exit.
    """
    began = time.monotonic()
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    code = proc.wait(timeout=STOP_TIMEOUT_S)
    return code, time.monotonic() - began


# -- counting -------------------------------------------------------------------------------


def read_log(tmp_path: Path) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The log's lines as rows, and whatever is not a whole JSON line (torn)."""
    path = tmp_path / "logs" / "lc_trace.jsonl"
    if not path.exists():
        return [], []
    data = path.read_bytes()
    *whole, tail = data.split(b"\n")
    rows, torn = [], [tail] if tail else []
    for raw in whole:
        try:
            rows.append(json.loads(raw))
        except ValueError:
            torn.append(raw)
    return rows, torn


def check(
    tmp_path: Path, receiver: Receiver | None, answered: set[int], kind: str = "fast", runs: int | None = None
) -> dict[str, int]:
    """
    Every run of every answered call: one start and one end line, whole; its span arrived once.
    Returns the counts, for the test's message and docs/reliability.md.
    """
    result = count(tmp_path, receiver, answered, kind, runs)
    assert 0 == result["missing_lines"] == result["duplicated_lines"], result
    if receiver is not None:
        assert 0 == result["missing_spans"] == result["duplicated_spans"], result
    return result


def count(
    tmp_path: Path, receiver: Receiver | None, answered: set[int], kind: str = "fast", runs: int | None = None
) -> dict[str, int]:
    """What ``check`` checks, counted: lines and spans of the answered calls, missing and duplicated."""
    rows, torn = read_log(tmp_path)
    assert [] == torn
    lines: dict[int, Counter[tuple[str, str]]] = {}
    for row in rows:
        call = row.get("langchain.metadata.call")
        if call is not None:
            lines.setdefault(int(call), Counter())[
                (row["langchain.run.id"], row["event.action"].rsplit("_", 1)[-1])
            ] += 1
    per_call = runs if runs is not None else RUNS[kind]
    missing_lines = duplicated_lines = 0
    for call in answered:
        held = lines.get(call, Counter())
        runs_seen = {run for run, _ in held}
        missing_lines += 2 * per_call - sum(min(1, held[(run, side)]) for run in runs_seen for side in ("start", "end"))
        duplicated_lines += sum(n - 1 for n in held.values() if n > 1)
    result = {
        "calls": len(answered),
        "lines": sum(sum(lines.get(c, Counter()).values()) for c in answered),
        "missing_lines": missing_lines,
        "duplicated_lines": duplicated_lines,
    }
    if receiver is not None:
        spans = receiver.spans_by_call()
        result["spans"] = sum(len(spans.get(c, [])) for c in answered)
        result["missing_spans"] = sum(max(0, per_call - len(set(spans.get(c, [])))) for c in answered)
        result["duplicated_spans"] = sum(len(spans.get(c, [])) - len(set(spans.get(c, []))) for c in answered)
        for call in answered:  # the spans are those of the lines' runs (the lines of a run lost whole aside)
            assert set(spans.get(call, [])) >= {run for run, _ in lines.get(call, Counter())}, call
    return result


def baseline_status(command: list[str], tmp_path: Path, sig: int, port: int | None, ready: Callable[..., None]) -> int:
    """The same server and app without lc_trace, one call, the same signal: the status to keep."""
    folder = tmp_path / "baseline"
    folder.mkdir()
    proc = start(command, folder, _env(folder, None, LC_TRACE_OFF="1"), "baseline")
    ready(proc, folder)
    if port is not None:
        assert {0} == calls(port, range(1))
    code, _ = stop(proc, sig)
    return code


# -- the servers ----------------------------------------------------------------------------

SERVERS: dict[str, Callable[[int], list[str]]] = {
    "uvicorn": lambda port: [sys.executable, "-m", "uvicorn", "tests.shutdown.app:asgi", "--port", str(port)],
    "uvicorn --workers 2": lambda port: [
        *(sys.executable, "-m", "uvicorn", "tests.shutdown.app:asgi", "--port", str(port), "--workers", "2")
    ],
    "gunicorn sync": lambda port: [
        *(sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "tests.shutdown.app:wsgi")
    ],
    "gunicorn uvicorn worker": lambda port: [
        *(sys.executable, "-m", "gunicorn", "-w", "2", "-k", "uvicorn.workers.UvicornWorker"),
        *("-b", f"127.0.0.1:{port}", "tests.shutdown.app:asgi"),
    ],
    "gunicorn uvicorn worker --preload": lambda port: [
        *(sys.executable, "-m", "gunicorn", "-w", "2", "-k", "uvicorn.workers.UvicornWorker", "--preload"),
        *("-b", f"127.0.0.1:{port}", "tests.shutdown.app:asgi"),
    ],
    "hypercorn": lambda port: [
        *(sys.executable, "-m", "hypercorn", "-b", f"127.0.0.1:{port}", "tests.shutdown.app:asgi")
    ],
}

ROWS = [
    ("uvicorn", signal.SIGTERM),
    ("uvicorn", signal.SIGINT),
    ("uvicorn --workers 2", signal.SIGTERM),
    ("uvicorn --workers 2", signal.SIGINT),
    ("gunicorn sync", signal.SIGTERM),
    ("gunicorn uvicorn worker", signal.SIGTERM),
    ("gunicorn uvicorn worker --preload", signal.SIGTERM),
    ("hypercorn", signal.SIGTERM),
]


@pytest.mark.parametrize(("server", "sig"), ROWS, ids=lambda v: v.name if isinstance(v, signal.Signals) else v)
def test_a_server_stopped_by_a_signal_loses_nothing_and_exits_as_without_lc_trace(server, sig, tmp_path, receiver):
    """
    21 calls from 4 client threads, then the signal a deploy (or Ctrl-C) sends: every line and
    span of every answered call is there once, whole; the exit status is the server's own. With
    60 s timers, so only what happens at the stop can save them.
    """
    port = free_port()
    command = SERVERS[server](port)
    proc = start(command, tmp_path, _env(tmp_path, receiver, **SLOW_TIMERS), "server")
    wait_listening(port, proc, tmp_path, "server")
    answered = calls(port, range(21))
    assert 21 == len(answered)
    code, seconds = stop(proc, sig)
    counts = check(tmp_path, receiver, answered)
    logging.getLogger(__name__).warning("%s %s: %s, exit %s after %.2f s", server, sig.name, counts, code, seconds)

    base_port = free_port()
    expected = baseline_status(
        SERVERS[server](base_port), tmp_path, sig, base_port, lambda p, f: wait_listening(base_port, p, f, "baseline")
    )
    assert expected == code, (tmp_path / "server.out").read_text()
    assert seconds < 15, f"{server} took {seconds:.1f} s to stop"


# -- Celery ---------------------------------------------------------------------------------

SLOW_TIMERS = {"LC_TRACE_FLUSH_INTERVAL_MS": "60000", "OTEL_BSP_SCHEDULE_DELAY": "60000"}
"""No timer writes or exports anything during a test that uses these: only the stop can."""

CELERY = [sys.executable, "-m", "celery", "-A", "tests.shutdown.celery_app", "worker", "--pool", "prefork", "-c", "2"]
CELERY += ["-l", "warning", "--without-heartbeat", "--without-mingle", "--without-gossip"]


def _celery_round(folder: Path, receiver: Receiver | None, tasks: int, off: bool) -> tuple[set[int], int, float]:
    """Start a prefork worker, run *tasks* tasks and one still running at SIGTERM; return answered, status, time."""
    from tests.shutdown.celery_broker import make

    env = _env(folder, receiver, **({"LC_TRACE_OFF": "1"} if off else SLOW_TIMERS))
    producer = make(Path(env["CELERY_DIR"]))
    worker = start(CELERY, folder, env, "celery")
    first = producer.send_task("rose", args=[0])
    assert 0 == first.get(timeout=60), (folder / "celery.out").read_text()
    results = [producer.send_task("rose", args=[n]) for n in range(1, tasks)]
    answered = {0} | {r.get(timeout=60) for r in results}
    running = producer.send_task("rose", args=[tasks, 1.5])  # in a child when the warm shutdown starts
    deadline = time.monotonic() + 30
    while running.state != "STARTED" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "STARTED" == running.state
    time.sleep(0.3)
    code, seconds = stop(worker, signal.SIGTERM)
    answered.add(running.get(timeout=10))
    return answered, code, seconds


def test_a_celery_prefork_worker_warm_shutdown_loses_nothing(tmp_path, receiver):
    """
    A prefork worker (2 children, which leave through ``os._exit``), 21 tasks and one still
    running at SIGTERM (Celery's warm shutdown lets it finish): every task's lines and spans,
    with timers too slow to write or export anything before the stop.
    """
    answered, code, seconds = _celery_round(tmp_path, receiver, 21, off=False)
    assert set(range(22)) == answered
    counts = check(tmp_path, receiver, answered)
    logging.getLogger(__name__).warning("celery prefork SIGTERM: %s, exit %s after %.2f s", counts, code, seconds)
    (tmp_path / "baseline").mkdir()
    _, expected, _ = _celery_round(tmp_path / "baseline", None, 1, off=True)
    assert expected == code


# -- a plain script -------------------------------------------------------------------------

SCRIPT = [sys.executable, "-m", "tests.shutdown.script"]


def _script_round(
    folder: Path, receiver: Receiver | None, sig: int, *args: str, off: bool = False
) -> tuple[set[int], int, float, str]:
    env = _env(folder, receiver, **({"LC_TRACE_OFF": "1"} if off else SLOW_TIMERS))
    proc = subprocess.Popen(
        [*SCRIPT, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    _PROCS.append(proc)  # type: ignore[arg-type]
    assert proc.stdout is not None
    assert b"ready\n" == proc.stdout.readline(), proc.stderr.read() if proc.stderr else b""
    for _ in range(30):  # thirty calls done, then the signal mid-loop
        proc.stdout.readline()
    began = time.monotonic()
    proc.send_signal(sig)  # the script is its process group's only member: as a terminal's Ctrl-C
    out, err = proc.communicate(timeout=STOP_TIMEOUT_S)
    seconds = time.monotonic() - began
    lines = out.decode().split()
    return (
        {int(n) for n in lines if n.isdigit()} | set(range(30)),
        proc.returncode,
        seconds,
        " ".join(lines) + err.decode(),
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_plain_script_stopped_by_a_signal_loses_nothing(sig, tmp_path, receiver):
    """A script in a loop of calls, signalled mid-loop: every finished call is there; it dies of the signal as before."""
    answered, code, seconds, output = _script_round(tmp_path, receiver, sig)
    counts = check(tmp_path, receiver, answered)
    logging.getLogger(__name__).warning("script %s: %s, exit %s after %.2f s", sig.name, counts, code, seconds)
    (tmp_path / "baseline").mkdir()
    _, expected, _, _ = _script_round(tmp_path / "baseline", None, sig, off=True)
    assert expected == code == -sig, output


def test_a_worker_stopped_by_ctrl_c_then_its_supervisors_sigterm_loses_nothing(tmp_path, receiver):
    """
    The order that lost lines under ``uvicorn --workers 2`` on a loaded machine, made certain: the
    worker shuts down on its SIGINT, restores the default SIGTERM it found before the app loaded,
    and the supervisor's SIGTERM ends it before ``atexit``. lc_trace stopped at the SIGINT, so every
    finished call is there; the worker dies of that SIGTERM as it does without lc_trace.
    """
    answered, code, seconds, output = _script_round(tmp_path, receiver, signal.SIGINT, "--worker")
    counts = check(tmp_path, receiver, answered)
    logging.getLogger(__name__).warning("worker SIGINT then SIGTERM: %s, exit %s after %.2f s", counts, code, seconds)
    (tmp_path / "baseline").mkdir()
    _, expected, _, _ = _script_round(tmp_path / "baseline", None, signal.SIGINT, "--worker", off=True)
    assert expected == code == -signal.SIGTERM, output


def test_sigint_is_chained_only_in_front_of_a_handler_of_the_app_or_server(tmp_path):
    """
    In this process (pytest's main thread): Python's own ``KeyboardInterrupt`` stays SIGINT's
    handler after a handler is built; a server's SIGINT handler set before it gets lc_trace's in
    front, which calls it. The handlers the test found are put back.
    """
    import lc_trace

    found = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    got: list[int] = []
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        lc_trace.TraceHandler(log_path=tmp_path / "a.jsonl").close()
        assert signal.default_int_handler is signal.getsignal(signal.SIGINT)

        def server(signum: int, frame: object) -> None:
            got.append(signum)

        signal.signal(signal.SIGINT, server)
        handler = lc_trace.TraceHandler(log_path=tmp_path / "b.jsonl")
        ours = signal.getsignal(signal.SIGINT)
        assert ours is not server and callable(ours)
        handler.close()
        ours(signal.SIGINT, None)
        assert [signal.SIGINT] == got
    finally:
        from lc_trace._lifecycle import _shutdown

        _shutdown._end_stopping()  # the stop this test set off, undone for the tests after it in this process
        for sig, handler_found in found.items():
            signal.signal(sig, handler_found)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_sigterm_handler_of_the_app_still_runs_and_decides(when, tmp_path, receiver):
    """
    The app's own SIGTERM handler, set before ``configure()`` (lc_trace's goes in front and calls
    it) or after (it replaces lc_trace's): it runs, it decides (the loop ends, exit status 3), and
    nothing is lost either way.
    """
    answered, code, _, output = _script_round(tmp_path, receiver, signal.SIGTERM, "--own-handler", when)
    assert "own handler" in output
    assert 3 == code, output
    check(tmp_path, receiver, answered)


# -- SIGTERM, a grace period, SIGKILL ---------------------------------------------------------


def test_sigterm_then_sigkill_after_a_grace_period_keeps_every_finished_call(tmp_path, receiver):
    """
    Kubernetes' stop: SIGTERM, then SIGKILL after a 5 s grace period. uvicorn drains: three calls that
    finish during the grace period are answered, one that never finishes is killed. Every answered
    call's lines and spans are there, with a 30 s flush interval and 30 s span batches (no timer
    fires): from SIGTERM on, lc_trace writes and exports as things end, so no interval matters.
    """
    port = free_port()
    env = _env(tmp_path, receiver, LC_TRACE_FLUSH_INTERVAL_MS="30000", OTEL_BSP_SCHEDULE_DELAY="30000")
    proc = start(SERVERS["uvicorn"](port), tmp_path, env, "server")
    wait_listening(port, proc, tmp_path, "server")
    answered = calls(port, range(12))
    assert 12 == len(answered)
    with ThreadPoolExecutor(4) as pool:
        draining = [pool.submit(get, port, f"/slow/{n}/1.0") for n in (100, 101, 102)]
        killed = pool.submit(get, port, "/slow/199/60")
        time.sleep(0.5)  # all four in flight
        proc.send_signal(signal.SIGTERM)
        time.sleep(5.0)  # the grace period (the three 1 s calls end in it, even on a loaded machine)
        proc.send_signal(signal.SIGKILL)
        assert -signal.SIGKILL == proc.wait(timeout=30)
        assert [100, 101, 102] == [f.result() for f in draining]
        assert killed.result() is None
    counts = check(tmp_path, receiver, answered)
    check(tmp_path, receiver, {100, 101, 102}, kind="slow")
    logging.getLogger(__name__).warning("SIGTERM, 5 s, SIGKILL: %s + 3 slow calls", counts)


# -- SIGKILL mid-burst: the next start says what was lost ---------------------------------------


LAST_BATCH_BOUND = 5_000  # lines one batch of the writer can take at this rate (~600 calls a second, 300 ms)


def test_sigkill_mid_burst_is_reported_at_the_next_start(tmp_path, caplog):
    """
    ``kill -9`` while the script writes: the lines lost are at most a flush interval's, and the
    next handler on that log path warns, once, naming the dead process and how far it had written.
    """
    env = _env(tmp_path, None, LC_TRACE_FLUSH_INTERVAL_MS="300")
    proc = subprocess.Popen(
        SCRIPT, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    _PROCS.append(proc)  # type: ignore[arg-type]
    assert proc.stdout is not None
    assert b"ready\n" == proc.stdout.readline()
    finished_at: dict[int, float] = {}
    while len(finished_at) < 20 or time.monotonic() - min(finished_at.values()) < 4.0:
        finished_at[int(proc.stdout.readline())] = time.monotonic()
    killed_at = time.monotonic()
    proc.kill()
    proc.communicate(timeout=30)
    rows, torn = read_log(tmp_path)
    written = sum(1 for r in rows if r.get("langchain.metadata.pid") == str(proc.pid))
    # one flush interval, and a margin for a writer thread a loaded machine runs late
    safe = {c for c, at in finished_at.items() if at < killed_at - 0.3 - 2.5}
    assert safe, "no call finished early enough"
    check(tmp_path, None, safe)
    lost = count(tmp_path, None, set(finished_at))
    logging.getLogger(__name__).warning("kill -9 mid-burst: %s of %s calls' lines lost", lost, len(finished_at))

    from lc_trace import TraceHandler

    with caplog.at_level(logging.WARNING, logger="lc_trace"):
        handler = TraceHandler(log_path=tmp_path / "logs" / "lc_trace.jsonl")
        handler.close()
        TraceHandler(log_path=tmp_path / "logs" / "lc_trace.jsonl").close()  # reported once, not again
    reports = [r.getMessage() for r in caplog.records if f"process {proc.pid} " in r.getMessage()]
    assert 1 == len(reports), caplog.text
    # The count is the marker's, rewritten after each batch: the kill can fall between a batch's write
    # and that rewrite, so it is what the file holds, less at most that last batch (never more).
    match = re.search(r"had written (\d+) lines and (\d+) more", reports[0])
    assert match is not None, reports[0]
    reported, queued = int(match.group(1)), int(match.group(2))
    assert reported <= written <= reported + max(queued, 1) + LAST_BATCH_BOUND, reports[0]
    assert [] == list((tmp_path / "logs").glob(".*.live"))


# -- the second line of defence: the lifespan -------------------------------------------------


def test_the_lifespan_helper_alone_saves_everything(tmp_path, receiver):
    """
    ``FastAPI(lifespan=lc_trace.lifespan(handler))`` with lc_trace's signal handling turned off
    (``LC_TRACE_SIGTERM=off``): the lifespan's shutdown, which uvicorn runs after its drain and
    before it re-raises SIGTERM, closes the handler; nothing is lost, the exit status is uvicorn's.
    """
    port = free_port()
    env = _env(tmp_path, receiver, LIFESPAN="1", LC_TRACE_SIGTERM="off", **SLOW_TIMERS)
    proc = start(SERVERS["uvicorn --workers 2"](port), tmp_path, env, "server")
    wait_listening(port, proc, tmp_path, "server")
    answered = calls(port, range(21))
    assert 21 == len(answered)
    code, _ = stop(proc, signal.SIGTERM)
    check(tmp_path, receiver, answered)
    assert 0 == code, (tmp_path / "server.out").read_text()


def test_without_either_the_loss_is_real(tmp_path, receiver):
    """
    The control for the test above: signal handling off and no lifespan, the children of
    ``uvicorn --workers 2`` die of the SIGTERM their supervisor sends, and lines and spans are lost.
    """
    port = free_port()
    env = _env(tmp_path, receiver, LC_TRACE_SIGTERM="off", **SLOW_TIMERS)
    proc = start(SERVERS["uvicorn --workers 2"](port), tmp_path, env, "server")
    wait_listening(port, proc, tmp_path, "server")
    answered = calls(port, range(21))
    stop(proc, signal.SIGTERM)
    with pytest.raises(AssertionError):
        check(tmp_path, receiver, answered)


def test_an_app_that_goes_on_after_sigterm_goes_back_to_batching(tmp_path, receiver):
    """
    An app whose SIGTERM handler decides to go on (a reload, say): lc_trace writes through only
    for a while (120 s; 1 s here), then batches again, as before the signal; nothing is lost.
    """
    code = """
import os, signal, sys, time
import lc_trace, lc_trace._lifecycle._shutdown as shutdown
from tests.shutdown.chains import FAST, config
shutdown._STOPPING_FOR_S = 1.0
signal.signal(signal.SIGTERM, lambda *_: print("own handler: going on", flush=True))
handler = lc_trace.configure("goes-on")
writer = handler._writer
FAST.invoke("a rose", config(0, [handler]))
os.kill(os.getpid(), signal.SIGTERM)
FAST.invoke("a rose", config(1, [handler]))
print("through", writer._through, flush=True)
deadline = time.monotonic() + 10
while writer._through and time.monotonic() < deadline:
    time.sleep(0.05)
FAST.invoke("a rose", config(2, [handler]))
print("through", writer._through, flush=True)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=_env(tmp_path, receiver), capture_output=True, text=True, timeout=60
    )
    assert 0 == done.returncode, done.stderr
    assert ["own handler: going on", "through True", "through False"] == done.stdout.split("\n")[:3]
    check(tmp_path, receiver, {0, 1, 2})


def test_a_hung_collector_holds_a_sigterm_stop_for_one_export_timeout_at_most(tmp_path):
    """
    The collector accepts connections and never answers: SIGTERM still ends the script within
    the export timeouts (2 s OTLP, 3 s metrics, flushed side by side), every line is in the file,
    and the process still dies of SIGTERM.
    """
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)  # connections complete in the kernel's backlog; nothing ever reads or answers
        env = _env(tmp_path, None, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{hung.getsockname()[1]}")
        proc = subprocess.Popen(
            SCRIPT, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        _PROCS.append(proc)  # type: ignore[arg-type]
        assert proc.stdout is not None
        assert b"ready\n" == proc.stdout.readline()
        done = {int(proc.stdout.readline()) for _ in range(30)}
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=STOP_TIMEOUT_S)
        seconds = time.monotonic() - began
    done |= {int(n) for n in out.split()}
    assert -signal.SIGTERM == proc.returncode
    assert seconds < 5.0, f"{seconds:.1f} s"
    logging.getLogger(__name__).warning("hung collector, SIGTERM: exit after %.2f s", seconds)
    check(tmp_path, None, done)


def test_a_damaged_marker_is_reported_briefly_and_never_fails_a_handler(tmp_path, caplog):
    """A marker of a dead process that is not what lc_trace writes: the handler is built, one short warning."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / ".lc_trace.jsonl.999999999.live").write_bytes(b'{"pid": 999999999, "interval_s": "soon"}')
    (logs / ".lc_trace.jsonl.999999998.live").write_bytes(b"\0garbage")
    from lc_trace import TraceHandler

    with caplog.at_level(logging.WARNING, logger="lc_trace"):
        TraceHandler(log_path=logs / "lc_trace.jsonl").close()
    assert 2 == sum("ended without closing" in r.getMessage() for r in caplog.records), caplog.text
    assert [] == list(logs.glob(".*.live"))
