"""
A log path's files, the current one and its rotated copies, read in chunks into parsed lines.

Every reading command starts here. It imports only ``_attributes`` and ``_paths`` from
the core: the library's hot path never imports it, and reading a file never needs LangChain or
the OpenTelemetry SDK.
"""

from __future__ import annotations

import calendar
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from lc_trace import _attributes as A
from lc_trace._paths import default_log_path, rotated_copies

__all__ = [
    "Line",
    "LogFiles",
    "LogReadError",
    "StampParser",
    "log_files",
    "open_log",
    "parse_line",
    "read_lines",
]

_CHUNK_BYTES = 1 << 20  # files are read in chunks this size and split into lines here: faster than line iteration


class LogReadError(Exception):
    """
    A log path that is missing or cannot be read.
    """


@dataclass(slots=True)
class Line:
    """
    One parsed log line, with its position (to keep file order among equal timestamps).
    """

    seq: int
    time_ns: int
    fields: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        """
        A field of the line.
        """
        return self.fields.get(key, default)

    @property
    def action(self) -> str:
        """
        ``event.action``, or an empty string.
        """
        action = self.fields.get(A.EVENT_ACTION)
        return action if isinstance(action, str) else ""

    @property
    def is_error(self) -> bool:
        """
        A run that failed, or a line logged at level error.
        """
        return self.fields.get(A.EVENT_OUTCOME) == "failure" or self.fields.get(A.LOG_LEVEL) == "error"


def log_files(path: str | os.PathLike[str], *, rotated: bool = True) -> list[Path]:
    """
    The file and, oldest first, its rotated copies ``path.N`` … ``path.1`` before it.

    Raises:
        LogReadError: neither the file nor a rotated copy exists.
    """
    main_file = Path(path).expanduser()
    files = [file for _, file in sorted(rotated_copies(main_file), reverse=True)] if rotated else []
    if main_file.exists():
        files.append(main_file)
    if not files:
        raise LogReadError(
            f"no log file at {main_file.resolve()} "
            "(pass PATH, set LC_TRACE_LOG_PATH, or run `lc-trace demo` to write one)"
        )
    return files


def open_log(paths: Sequence[str] | str | None, *, rotated: bool = True) -> LogFiles:
    """
    The files of every log path of *paths* (default: the handler's log path), rotated ones first.

    Raises:
        LogReadError: a path has no file, or one cannot be opened.
    """
    names = [paths] if isinstance(paths, str) else paths or [default_log_path()]
    return LogFiles([file for name in names for file in log_files(name, rotated=rotated)])


def read_lines(
    files: Iterable[Path],
    on_invalid: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Line]:
    """
    Every JSON-object line of *files*, in order. A line that is not one (a crash mid-write, a
    stray edit) is skipped and reported to *on_invalid* as ``file:line``, never fatal. Each
    chunk's size in bytes is reported to *progress*.

    Raises:
        LogReadError: a file cannot be opened or read.
    """
    with LogFiles(files) as log:
        yield from log.lines(on_invalid, progress)


class LogFiles:
    """
    A log's files opened once and read, as often as asked, up to the size each had when opened.

    Commands that read twice (a summary pass, then the lines of the traces it picked) see the
    same lines both times, even while the app appends and rotates: an open file keeps its
    contents through a rename or a deletion.

    Raises:
        LogReadError: a file cannot be opened.
    """

    def __init__(self, files: Iterable[Path]) -> None:
        self._open: list[tuple[Path, Any, int]] = []
        try:
            for file in files:
                handle = open(file, "rb")
                self._open.append((file, handle, os.fstat(handle.fileno()).st_size))
        except OSError as exc:
            self.close()
            raise LogReadError(f"cannot read {exc.filename}: {exc.strerror or exc}") from None

    @property
    def size(self) -> int:
        """
        Bytes a pass reads.
        """
        return sum(size for _, _, size in self._open)

    def close(self) -> None:
        """
        Close every file.
        """
        for _, handle, _ in self._open:
            handle.close()

    def __enter__(self) -> LogFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lines(
        self,
        on_invalid: Callable[[str], None] | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        contains: bytes | None = None,
    ) -> Iterator[Line]:
        """
        One pass over every file's lines, as ``read_lines`` says; with *contains*, only the
        lines that hold those bytes are parsed (a trace id: the others cannot be its lines).

        Raises:
            LogReadError: a file cannot be read.
        """
        seq = 0
        stamps = StampParser()
        loads, decode_error, timestamp = orjson.loads, orjson.JSONDecodeError, A.TIMESTAMP
        for file, handle, size in self._open:
            number = 0
            rest = b""
            left = size
            try:
                handle.seek(0)
                while left > 0 or rest:
                    chunk = handle.read(min(_CHUNK_BYTES, left)) if left > 0 else b""
                    left -= len(chunk)
                    if not chunk:
                        left = 0
                        pieces, rest = [rest], b""  # the file's last line, with no newline
                    else:
                        if progress is not None:
                            progress(len(chunk))
                        pieces = chunk.split(b"\n")
                        if rest:  # the line the last chunk ended inside (not the whole chunk copied onto it)
                            pieces[0] = rest + pieces[0]
                        rest = pieces.pop()
                    for raw in pieces:
                        number += 1
                        if contains is not None and contains not in raw:
                            continue
                        try:
                            fields = loads(raw)
                        except decode_error:
                            fields = None
                        if type(fields) is not dict:
                            if raw.strip() and on_invalid is not None:
                                on_invalid(f"{file}:{number}")
                            continue
                        yield Line(seq, stamps(fields.get(timestamp)), fields)
                        seq += 1
            except OSError as exc:
                raise LogReadError(f"cannot read {file}: {exc.strerror or exc}") from None


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """
    One raw line's fields; None when it is not a JSON object (a torn or stray line).
    """
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return fields if isinstance(fields, dict) else None


class StampParser:
    """
    ``@timestamp`` (``YYYY-MM-DDTHH:MM:SS.fffffffffZ``, 6 or 9 digits) to epoch nanoseconds:
    the date is converted once per distinct day, the time of day by hand once per distinct
    second (``strptime`` per line would cost more than parsing the line). 0 when absent or
    malformed.
    """

    __slots__ = ("_day", "_day_seconds", "_prefix", "_second_ns")

    def __init__(self) -> None:
        self._day = self._prefix = ""
        self._day_seconds = self._second_ns = 0

    def __call__(self, stamp: Any) -> int:
        if type(stamp) is not str or len(stamp) < 20:
            return 0
        prefix = stamp[:19]
        if prefix == self._prefix and len(stamp) == 30 and stamp[19] == "." and stamp[29] == "Z":  # the writer's form
            fraction = stamp[20:29]
            if fraction.isdigit():
                return self._second_ns + int(fraction)
        if prefix != self._prefix:
            clock = prefix[11:13] + prefix[14:16] + prefix[17:19]
            if prefix[10] != "T" or prefix[13] != ":" or prefix[16] != ":" or not clock.isdigit():
                return _slow_stamp(stamp)
            day = prefix[:10]
            if day != self._day:
                try:
                    self._day_seconds = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
                except ValueError:
                    return _slow_stamp(stamp)
                self._day = day
            hours, minutes, seconds = int(clock[:2]), int(clock[2:4]), int(clock[4:])
            seconds += self._day_seconds + hours * 3600 + minutes * 60
            self._prefix, self._second_ns = prefix, seconds * 1_000_000_000
        fraction = stamp[20:-1] if stamp[19] == "." and stamp[-1] == "Z" else ""
        if not fraction.isdigit():
            return _slow_stamp(stamp)
        return self._second_ns + int(fraction.ljust(9, "0")[:9])


def _slow_stamp(stamp: str) -> int:
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000
