"""
What a killed process lost, told at the next start.

Each writing process keeps one small file beside its log, ``.NAME.PID.live``: the writer thread
rewrites it in place (one ``pwrite``) after a batch when its figures changed, and ``close()``
removes it. Nothing on the caller's path touches it. A file whose process is gone (SIGKILL, the
OOM killer, a crash) is found by the next writer that opens a log in that folder, which removes
it and warns once with what it says: when that process last wrote, how many lines it had
accepted and not yet written then, and from when its spans may be missing at the collector.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import orjson

__all__ = ["LiveMarker", "report_dead"]

_SIZE = 512
_logger = logging.getLogger("lc_trace")


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LiveMarker:
    """
    This process's marker for one log path. Every method swallows its errors: a marker that
    cannot be kept only means a crash goes unreported.
    """

    def __init__(self, log_path: Path, flush_interval_s: float) -> None:
        self._log_path = log_path
        self._interval = flush_interval_s
        self._fd: int | None = None
        self._last: tuple[Any, ...] | None = None
        self._open()

    def _open(self) -> None:
        pid = os.getpid()
        self.path = self._log_path.parent / f".{self._log_path.name}.{pid}.live"
        self._head = {"pid": pid, "start_ticks": _start_ticks(pid), "started": _now(), "interval_s": self._interval}
        self._last = None
        self._then, self._rate = time.monotonic(), 0.0
        self._spans_at = self._head["started"]
        with contextlib.suppress(OSError):
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            self.update(0, 0, 0, False)

    def update(self, written: int, pending: int, spans_exported: int, through: bool) -> None:
        """After a batch: lines written so far, lines still queued, spans exported, writing through."""
        state = (written, pending, spans_exported, through)
        if self._fd is None or state == self._last:
            return
        if self._last is None or spans_exported != self._last[2]:
            self._spans_at = _now()
        now = time.monotonic()
        if self._last is not None and now > self._then:  # lines a second over the last batch window
            self._rate = (written - self._last[0]) / (now - self._then)
        self._last, self._then = state, now
        record = {
            **self._head,
            "at": _now(),
            "spans_at": self._spans_at,
            "written": written,
            "pending": pending,
            "spans_exported": spans_exported,
            "through": through,
            "rate": round(self._rate),
        }
        with contextlib.suppress(OSError):
            os.pwrite(self._fd, orjson.dumps(record).ljust(_SIZE), 0)

    def remove(self) -> None:
        """The log was closed cleanly: nothing to report."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def after_fork_in_child(self) -> None:
        """The child keeps its own marker; the parent's stays the parent's."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
            self._open()


def _alive(pid: int, start_ticks: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    return start_ticks is None or _start_ticks(pid) in (None, start_ticks)


def report_dead(log_path: Path) -> list[dict[str, Any]]:
    """
    Remove the markers of processes gone without closing *log_path*, warn once for each that
    may have lost something, and return their records.
    """
    pattern = re.compile(rf"\.{re.escape(log_path.name)}\.(\d+)\.live")
    found: list[dict[str, Any]] = []
    try:
        names = os.listdir(log_path.parent)
    except OSError:
        return found
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        path = log_path.parent / name
        try:
            record = orjson.loads(path.read_bytes().rstrip(b" \0") or b"{}")
        except (OSError, orjson.JSONDecodeError):
            record = {"pid": int(match.group(1))}
        if _alive(int(record.get("pid", match.group(1))), record.get("start_ticks")):
            continue
        try:
            os.unlink(path)  # one process reports it, whichever removes it first
        except OSError:
            continue
        found.append(record)
        if record.get("through") and not record.get("pending"):
            continue  # stopped while writing through: every line it accepted was written
        try:
            _logger.warning(
                "lc_trace: process %s (started %s) ended without closing %s (killed: SIGKILL, the OOM killer, "
                "a crash). At its last write, %s, it had written %s lines and %s more it had accepted were not yet "
                "written; lines it accepted after that were lost too: at most %.0f ms of them, about %d at its last "
                "rate (%d lines/s). Spans it ended after "
                "its last export, %s, may be missing at the collector: lc-trace export --since %s sends those the "
                "file has",
                record.get("pid", "?"),
                record.get("started", "?"),
                log_path,
                record.get("at", "?"),
                record.get("written", "?"),
                record.get("pending", "?"),
                float(record.get("interval_s", 0.5)) * 1000,
                float(record.get("interval_s", 0.5)) * int(record.get("rate", 0)),
                int(record.get("rate", 0)),
                record.get("spans_at", "?"),
                record.get("spans_at", "?"),
            )
        except (TypeError, ValueError):  # a marker someone else wrote, or damaged: say less, never fail
            _logger.warning("lc_trace: process %s ended without closing %s (killed)", match.group(1), log_path)
    return found
