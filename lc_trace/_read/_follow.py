"""
``tail -f``: the lines appended to a log path, followed across rotation (lc_trace's own, and
logrotate's ``create`` and ``copytruncate``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from lc_trace import _attributes as A
from lc_trace._paths import rotated_copies, rotated_path
from lc_trace._read._files import Line, LogReadError, StampParser, parse_line

__all__ = ["follow"]

_CLOCK_TICK_NS = 100_000_000
"""A file's modification time comes from a clock that may lag the system's by a tick: compare with a margin."""


def follow(
    path: str | os.PathLike[str],
    *,
    poll_s: float = 0.2,
    from_start: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Line | None]:
    """
    Lines appended to *path* from now on (from its start with *from_start*), across rotation:
    when the name comes to point at a new file (lc_trace's own rotation, or logrotate's
    ``create``), the old file is read to its end and the new one from its start; when the
    file shrinks (logrotate's ``copytruncate``), it is read again from its start. With
    *from_start* on a path that does not exist yet, the rotated copies written while it waited
    (a new log that rotated within one poll) are read first, oldest first. A line is yielded once
    it is whole; ``None`` is yielded each time the reader has caught up and waits. Polls every
    *poll_s* until *stop()* says so.
    """
    name = Path(path).expanduser()
    handle: Any = None
    pending = b""
    seq = 0
    stamps = StampParser()

    def lines_from(chunk: bytes) -> Iterator[Line]:
        nonlocal pending, seq
        pending += chunk
        *whole, pending = pending.split(b"\n")
        for raw in whole:
            fields = parse_line(raw)
            if fields is not None:
                yield Line(seq, stamps(fields.get(A.TIMESTAMP)), fields)
                seq += 1

    waiting_since_ns: int | None = None  # while a from_start follow waits for the file to exist at first
    opened = False
    while not stop():
        if handle is None:
            try:
                handle = open(name, "rb")
            except FileNotFoundError:
                if from_start and not opened and waiting_since_ns is None:
                    waiting_since_ns = time.time_ns() - _CLOCK_TICK_NS
                yield None
                time.sleep(poll_s)
                continue
            except OSError as exc:
                raise LogReadError(f"cannot read {name}: {exc.strerror or exc}") from None
            if not from_start:
                handle.seek(0, os.SEEK_END)
            if waiting_since_ns is not None:
                for copy in _written_since(name, waiting_since_ns, os.fstat(handle.fileno())):
                    with copy:
                        yield from lines_from(copy.read())
                    pending = b""
                waiting_since_ns = None
            opened = from_start = True  # every file after the first is new: read it whole
        chunk = handle.read()
        if chunk:
            yield from lines_from(chunk)
            continue
        try:
            now = os.stat(name)
        except FileNotFoundError:  # renamed away, the new one not yet created
            yield None
            time.sleep(poll_s)
            continue
        current = os.fstat(handle.fileno())
        if (now.st_ino, now.st_dev) != (current.st_ino, current.st_dev):
            yield from lines_from(handle.read())  # whatever the old file got before the rename
            handle.close()
            handle, pending = _successor(name, current), b""
            continue
        if now.st_size < handle.tell():  # truncated in place
            handle.seek(0)
            pending = b""
            continue
        yield None
        time.sleep(poll_s)
    if handle is not None:
        handle.close()


def _written_since(name: Path, since_ns: int, current: os.stat_result) -> list[Any]:
    """
    The rotated copies of *name* last written at or after *since_ns* and older than *current*
    (the file just opened at *name*, which may itself have rotated since), opened, oldest first:
    a new log that rotated before the follower's first look. A rotation while they are opened
    (a copy not where it was seen) looks again.
    """
    for _ in range(20):
        seen = _copies_by_index(name)
        current_index = next((i for i, f in seen.items() if _same(f, current)), 0)
        wanted = sorted(
            ((i, f) for i, f in seen.items() if i > current_index and f.st_mtime_ns >= since_ns), key=lambda c: -c[0]
        )
        handles = []
        try:
            for index, found in wanted:
                handles.append(open(rotated_path(name, index), "rb"))
                if not _same(os.fstat(handles[-1].fileno()), found):
                    raise FileNotFoundError
        except OSError:
            for handle in handles:
                handle.close()
            continue
        return handles
    return []


def _same(one: os.stat_result, other: os.stat_result) -> bool:
    return (one.st_ino, one.st_dev) == (other.st_ino, other.st_dev)


def _copies_by_index(name: Path) -> dict[int, os.stat_result]:
    """The rotated copies of *name* now, by index, in one look."""
    found = {}
    for index, path in rotated_copies(name):
        try:
            found[index] = os.stat(path)
        except FileNotFoundError:
            continue
    return found


def _successor(name: Path, done: os.stat_result) -> Any:
    """
    The file written after the one just read to its end, opened: when that one is now
    ``name.K``, it is ``name.K-1`` (``name`` after ``name.1``), so rotations faster than the
    polling skip no file. None (open *name* next) when it is not among the numbered copies.

    Rotation renames the oldest copy first, so if the finished file is still ``name.K`` once
    the next one is open, that one was ``name.K-1`` when it was opened. A rotation under way
    can spoil a look (a file moved while the copies were being looked at): look again, a little
    later each time, for up to about two seconds (ten looks when the file is not seen at all).
    """
    missing = 0
    for attempt in range(200):
        if attempt:
            time.sleep(min(0.0005 * attempt, 0.02))
        index = _index_of(name, done)
        if index is None:
            missing += 1
            if missing == 10:  # not a numbered copy (deleted past log_backups, or logrotate's dateext)
                return None
            continue
        try:
            handle = open(rotated_path(name, index - 1) if index > 1 else name, "rb")
        except OSError:
            continue
        if _index_of(name, done, index) == index:
            return handle
        handle.close()
    return None


def _index_of(name: Path, wanted: os.stat_result, only: int | None = None) -> int | None:
    """
    K such that ``name.K`` is the file *wanted*, in one look (None if not seen).
    """
    if only is not None:
        indexes: Iterable[int] = [only]
    else:
        numbers = [index for index, _ in rotated_copies(name)]
        indexes = range(1, max(numbers, default=0) + 3)  # one past the last: it may be moving there
    for index in indexes:
        try:
            found = os.stat(rotated_path(name, index))
        except FileNotFoundError:
            continue
        if (found.st_ino, found.st_dev) == (wanted.st_ino, wanted.st_dev):
            return index
    return None
