"""
The reader (``lc_trace._read``: ``_files``, ``_follow``, ``_filters``): following a file across rotation, timestamps, filters; and
the reading commands' filters and ``tail -f`` through the CLI, as a user runs them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lc_trace import TraceHandler
from lc_trace._cli._demo import run_demo
from lc_trace._read._files import Line
from lc_trace._read._filters import Filter, parse_time
from lc_trace._read._follow import follow
from lc_trace.testing import read_log
from tests.cli.test_cli import run_cli
from tests.conftest import flower_chain

DEADLINE_S = 30.0


def line_json(n: int, **extra: Any) -> bytes:
    fields = {
        "@timestamp": f"2026-11-30T12:00:{n % 60:02d}.123456789Z",
        "log.level": "info",
        "message": f"chain_start step{n}",
        "event.action": "chain_start",
        "trace.id": f"{n:032x}",
        "span.id": f"{n:016x}",
        **extra,
    }
    return json.dumps(fields).encode() + b"\n"


class Follower:
    """``follow()`` driven on a thread, collecting the messages of the lines it yields."""

    def __init__(self, path: Path, from_start: bool = False, poll_s: float = 0.02) -> None:
        self.messages: list[str] = []
        self.watching = threading.Event()  # set once follow() has looked at the path (it yields None then)
        self._stop = False
        self._thread = threading.Thread(target=self._run, args=(path, from_start, poll_s), daemon=True)
        self._thread.start()

    def _run(self, path: Path, from_start: bool, poll_s: float) -> None:
        for line in follow(path, poll_s=poll_s, from_start=from_start, stop=lambda: self._stop):
            if line is None:
                self.watching.set()
            else:
                self.messages.append(str(line.get("message")))

    def wait_for(self, count: int) -> list[str]:
        deadline = time.monotonic() + DEADLINE_S
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)

    def stop(self) -> None:
        self._stop = True
        self._thread.join(5)


@pytest.fixture
def follower() -> Iterator[list[Follower]]:
    started: list[Follower] = []
    yield started
    for one in started:
        one.stop()


@pytest.mark.log_schema_exempt("hand-written lines for the follower, not lc_trace's output")
class TestFollow:
    def test_lines_after_a_rename_and_a_new_file(self, tmp_path: Path, follower: list[Follower]) -> None:
        """logrotate's create: the old file's last lines, then every line of the new file under the same name."""
        path = tmp_path / "app.jsonl"
        path.write_bytes(line_json(0))
        f = Follower(path)
        follower.append(f)
        time.sleep(0.2)  # the follower is at the end of the file
        with open(path, "ab") as old:
            old.write(line_json(1))
            path.rename(f"{path}.1")
            old.write(line_json(2))  # written after the rename, through the still-open handle
        path.write_bytes(line_json(3) + line_json(4))
        assert ["chain_start step1", "chain_start step2", "chain_start step3", "chain_start step4"] == f.wait_for(4)

    def test_a_new_log_that_rotates_before_the_first_look_loses_nothing(
        self, tmp_path: Path, follower: list[Follower]
    ) -> None:
        """
        ``tail -f`` started before the log exists, which is created and rotated twice within one
        poll: the copies written since the follow began are read first, oldest first; a copy
        from before it (an earlier run's) is not.
        """
        path = tmp_path / "app.jsonl"
        Path(f"{path}.1").write_bytes(line_json(9))  # an earlier run's copy, last written long before
        os.utime(f"{path}.1", (time.time() - 100, time.time() - 100))
        f = Follower(path, from_start=True, poll_s=1.0)
        follower.append(f)
        assert f.watching.wait(DEADLINE_S)  # it looked, found nothing, and sleeps a second
        for first in (0, 2):  # two rotations as the writer does them: oldest copy first
            path.write_bytes(line_json(first) + line_json(first + 1))
            for index in (2, 1):
                if Path(f"{path}.{index}").exists():
                    os.rename(f"{path}.{index}", f"{path}.{index + 1}")
            os.rename(path, f"{path}.1")
        path.write_bytes(line_json(4))
        expected = [f"chain_start step{n}" for n in range(5)]
        assert expected == f.wait_for(5)
        time.sleep(0.3)
        assert expected == f.messages  # and nothing more (not the earlier run's copy)

    def test_copytruncate_reads_again_from_the_start(self, tmp_path: Path, follower: list[Follower]) -> None:
        """logrotate's copytruncate: the file shrinks in place, and what is written next is read from its start."""
        path = tmp_path / "app.jsonl"
        path.write_bytes(line_json(0) + line_json(1))
        f = Follower(path)
        follower.append(f)
        time.sleep(0.2)
        with open(path, "r+b") as same:
            same.truncate(0)
        time.sleep(0.2)
        with open(path, "ab") as same:
            same.write(line_json(5))
        assert ["chain_start step5"] == f.wait_for(1)

    def test_a_half_written_line_waits_for_its_end(self, tmp_path: Path, follower: list[Follower]) -> None:
        """A line is yielded once whole, never as two broken pieces."""
        path = tmp_path / "app.jsonl"
        path.touch()
        f = Follower(path, from_start=True)
        follower.append(f)
        whole = line_json(7)
        with open(path, "ab", buffering=0) as out:
            out.write(whole[:20])
            time.sleep(0.2)
            assert [] == f.messages
            out.write(whole[20:])
        assert ["chain_start step7"] == f.wait_for(1)

    def test_lc_traces_own_rotation(self, tmp_path: Path, follower: list[Follower]) -> None:
        """The handler rotating its own file (PATH -> PATH.1, a new PATH) loses no line for a follower."""
        path = tmp_path / "lc_trace.jsonl"
        path.touch()  # the file the handler will append to, there first: the follower holds it open
        f = Follower(path, from_start=True)
        follower.append(f)
        assert f.watching.wait(DEADLINE_S)  # it has opened the file before the handler writes (and rotates) it
        handler = TraceHandler(log_path=path, log_max_bytes=4096, log_backups=50, capture_content=False)
        try:
            chain = flower_chain()
            for i in range(30):
                chain.invoke({"who": f"customer {i}"}, {"callbacks": [handler]})
        finally:
            handler.close()
        files = sorted(tmp_path.glob("lc_trace.jsonl.*"), key=lambda p: -int(p.suffix[1:])) + [path]
        assert len(files) > 3  # it did rotate
        written = [line["message"] for file in files for line in read_log(file)]
        assert written == f.wait_for(len(written))


class TestTimes:
    def test_iso_dates_and_ages(self) -> None:
        """--since/--until take an ISO date or date-time (UTC unless it says) or an age back from now."""
        assert 1_796_083_200 * 10**9 == parse_time("2026-12-01")
        assert (1_796_083_200 + 3_600) * 10**9 == parse_time("2026-12-01T02:00+01:00")
        assert 1_000 * 10**9 - 90 * 60 * 10**9 == parse_time("90m", now_ns=1_000 * 10**9)
        with pytest.raises(ValueError, match="not a time"):
            parse_time("yesterday")

    def test_line_filter(self) -> None:
        """A line passes when it matches every option given; actions are shell patterns."""
        line = Line(
            0,
            5,
            {
                "trace.id": "abcd" + "0" * 28,
                "service.name": "shop",
                "event.action": "tool_error",
                "event.outcome": "failure",
            },
        )
        assert Filter(traces=("abc",), services=("shop",), actions=("tool_*",), errors=True).line(line)
        assert not Filter(actions=("llm_*",)).line(line)
        assert not Filter(since_ns=6).line(line)
        assert not Filter(errors=True).line(Line(0, 5, {"event.outcome": "success"}))


# --- through the command line ----------------------------------------------------------------


@pytest.fixture(scope="module")
def shop_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("shop") / "lc_trace.jsonl"
    handler = TraceHandler(log_path=path, service_name="flower-shop")
    try:
        run_demo(handler)
    finally:
        handler.close()
    return path


class TestFiltersOnEveryCommand:
    def test_traces_errors_and_action(self, shop_log: Path) -> None:
        """`traces --errors` keeps the one trace with a failed run; `--action retriever_*` the three catalog questions."""
        code, out, _ = run_cli(["traces", str(shop_log), "--errors"])
        assert 0 == code
        assert ["florist_agent"] == [row.split()[3] for row in out.splitlines()[1:]]
        code, out, _ = run_cli(["traces", str(shop_log), "--action", "retriever_*"])
        assert ["ask_the_catalog"] * 3 == [row.split()[3] for row in out.splitlines()[1:]]

    def test_tail_errors_trace_action_service(self, shop_log: Path) -> None:
        """`tail` keeps the lines that match: the failed tool's line, one trace's lines, one action's, one service's."""
        log = read_log(shop_log)
        code, out, _ = run_cli(["tail", str(shop_log), "--errors", "-n", "50"])
        assert 0 == code
        assert ["tool_error book_delivery"] == [re.split(r"  +", row)[3] for row in out.splitlines()]
        first = log[0]["trace.id"]
        code, out, _ = run_cli(["tail", str(shop_log), "--trace", first[:6], "-n", "1000"])
        assert sum(1 for line in log if line["trace.id"] == first) == len(out.splitlines())
        code, out, _ = run_cli(["tail", str(shop_log), "--action", "custom_event", "-n", "1000"])
        assert sum(1 for line in log if line["event.action"] == "custom_event") == len(out.splitlines())
        assert ("", 0) == (run_cli(["tail", str(shop_log), "--service", "elsewhere"])[1], 0)

    def test_show_and_since_until(self, shop_log: Path) -> None:
        """A trace filtered out is not found by `show`; a window after the run is empty."""
        log = read_log(shop_log)
        code, _, err = run_cli(["show", log[0]["trace.id"], str(shop_log), "--service", "elsewhere"])
        assert 1 == code and "no trace id starts with" in err
        assert (0, f"no traces in {shop_log}\n", "") == run_cli(["traces", str(shop_log), "--since", "2999-01-01"])
        code, _, err = run_cli(["traces", str(shop_log), "--until", "soon"])
        assert 2 == code and "'soon' is not a time" in err


def test_tail_follow_sees_lines_after_a_rename(tmp_path: Path) -> None:
    """`lc-trace tail -f` run as a user runs it: the last lines, then new ones, also after the file is renamed away and recreated."""
    path = tmp_path / "lc_trace.jsonl"
    handler = TraceHandler(log_path=path, service_name="flower-shop")
    chain = flower_chain()
    chain.invoke({"who": "first"}, {"callbacks": [handler]})
    handler.flush()
    tail = subprocess.Popen(
        [sys.executable, "-m", "lc_trace", "tail", "-f", "-n", "2", str(path), "--interval", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen: list[str] = []

        def read_until(count: int) -> None:
            deadline = time.monotonic() + DEADLINE_S
            while len(seen) < count and time.monotonic() < deadline:
                assert tail.stdout is not None
                seen.append(tail.stdout.readline().rstrip("\n"))

        read_until(2)
        assert [line["message"] for line in read_log(path)[-2:]] == [re.split(r"  +", row)[3] for row in seen]
        handler.close()
        path.rename(f"{path}.1")  # logrotate's rename; the next handler creates the file anew
        after = TraceHandler(log_path=path, service_name="flower-shop")
        chain.invoke({"who": "after the rename"}, {"callbacks": [after]})
        after.close()
        new = read_log(path)
        read_until(2 + len(new))
        assert [line["message"] for line in new] == [re.split(r"  +", row)[3] for row in seen[2:]]
    finally:
        tail.terminate()
        tail.wait(10)
        if tail.stdout is not None:
            tail.stdout.close()
        if tail.stderr is not None:
            tail.stderr.close()
    assert os.path.exists(f"{path}.1")


def test_the_handler_never_imports_the_reader(tmp_path: Path) -> None:
    """The library's hot path does not depend on the reader: tracing a chain loads none of the reading modules."""
    code = (
        "import sys, lc_trace\n"
        "from tests.conftest import flower_chain\n"
        "h = lc_trace.TraceHandler(log_path=sys.argv[1])\n"
        "flower_chain().invoke({'who': 'mom'}, {'callbacks': [h]}); h.close()\n"
        "print(sorted(m for m in sys.modules if m.startswith(('lc_trace._read', 'lc_trace._cli'))))\n"
    )
    command = [sys.executable, "-c", code, str(tmp_path / "x.jsonl")]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    assert "[]" == done.stdout.strip()
