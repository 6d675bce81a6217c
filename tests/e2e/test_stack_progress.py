"""
A first test run builds the stack programs for minutes; it says so on the terminal while it does.

Each case runs a real pytest in a subprocess (output capture on, as a newcomer's ``pytest`` has it) over a
small test that goes through tests/stack's cache the way the fixtures do, and reads what reached the terminal.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from tests.stack.cache import ROOT

TEST = """
import time
from tests.stack import cache

def test_builds(tmp_path):
    cache.HEARTBEAT_S = 0.4
    with cache.locked("progress-demo") as folder:
        with cache.building("a demo program", "1 s", folder):
            time.sleep(1.0)
        print("captured, not shown")
"""


def _pytest(
    test_file: Path, cache_dir: Path, timeout: float = 60, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LC_TRACE_STACK_CACHE": str(cache_dir), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "tests.stack.fixtures", "-p", "no:cacheprovider", *options]
    return subprocess.run(
        [*command, str(test_file)],
        cwd=test_file.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_build_is_announced_with_its_estimate_progress_and_time(tmp_path):
    test_file = tmp_path / "test_demo.py"
    test_file.write_text(textwrap.dedent(TEST))
    done = _pytest(test_file, tmp_path / "cache")
    assert 0 == done.returncode, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("[lc_trace stack]")]
    assert lines[0] == (
        f"[lc_trace stack] building a demo program into {tmp_path / 'cache' / 'progress-demo'}: "
        "first run only, about 1 s ..."
    )
    assert any(line.startswith("[lc_trace stack] ... still building a demo program (") for line in lines[1:-1])
    assert lines[-1] == "[lc_trace stack] built a demo program in 1 s"
    assert "captured, not shown" not in done.stdout  # capture is on: only the progress lines pass through


def test_a_build_in_an_xdist_worker_reaches_the_terminal(tmp_path):
    """The suite runs in xdist workers (pyproject's addopts): a worker's progress lines reach the terminal too."""
    test_file = tmp_path / "test_demo.py"
    test_file.write_text(textwrap.dedent(TEST))
    done = _pytest(test_file, tmp_path / "cache", options=("-n", "2", "--dist", "loadgroup"))
    assert 0 == done.returncode, done.stdout + done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("[lc_trace stack]")]
    assert lines and lines[0].startswith("[lc_trace stack] building a demo program into "), done.stdout + done.stderr
    assert lines[-1] == "[lc_trace stack] built a demo program in 1 s"
    assert "captured, not shown" not in done.stdout + done.stderr


def test_waiting_for_another_build_is_announced(tmp_path):
    test_file = tmp_path / "test_demo.py"
    test_file.write_text(textwrap.dedent(TEST))
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    waiting = f"[lc_trace stack] waiting for another process that is installing progress-demo (lock {cache_dir}"
    with open(cache_dir / ".progress-demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process is building the same thing
        release = threading.Timer(60, fcntl.flock, (lock, fcntl.LOCK_UN))  # never hang the suite
        release.start()
        env = {**os.environ, "LC_TRACE_STACK_CACHE": str(cache_dir), "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "tests.stack.fixtures", "-p", "no:cacheprovider"]
        process = subprocess.Popen(
            [*command, str(test_file)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # told while it waits, not after
            seen.append(line)
            if line.startswith(waiting):
                break
        time.sleep(1)
        fcntl.flock(lock, fcntl.LOCK_UN)
        release.cancel()
        rest, _ = process.communicate(timeout=60)
    output = "".join(seen) + rest
    assert 0 == process.returncode, output
    assert seen and seen[-1].startswith(waiting), output
    assert "[lc_trace stack] ... progress-demo free after " in rest
    assert "[lc_trace stack] built a demo program in 1 s" in rest
