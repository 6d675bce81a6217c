"""
The writer pool: handlers are often built per request; they share one writer (one thread) per
file, which stops when the last handler using it closes, or at interpreter exit.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from lc_trace import _attributes as A
from lc_trace._logs._sink import LogSink, Processor
from lc_trace._logs._writer import LineWriter
from lc_trace._stats import Stats

__all__ = ["acquire_writer", "release_writer"]

_writers: dict[str, tuple[LineWriter, int]] = {}  # path -> (writer, handlers using it)
_writers_lock = threading.Lock()


def acquire_writer(
    path: str, service_name: str, processors: Sequence[Processor], options: dict[str, Any], tracer_provider: Any = None
) -> tuple[LineWriter, LogSink]:
    """
    The writer for *path*, shared with every handler already writing there, and a log sink on it
    for one more handler (its service name, processors and provider).
    """
    key = os.path.abspath(os.path.expanduser(path))
    with _writers_lock:
        entry = _writers.get(key)
        if entry is not None and not entry[0].closed:
            writer, users = entry
        else:
            reporter = LogSink(lambda line: None, service_name)  # renders the writer's own drop lines

            def drop_line(new: Mapping[str, int], total: int) -> bytes:
                full, refused = new["dropped_queue_full"], new["dropped_write_error"]
                why = [f"{full} because the writer queue was full"] if full else []
                why += [f"{refused} because the file could not be written"] if refused else []
                return reporter.render(
                    "warning",
                    f"lc_trace dropped {full + refused} log lines: " + ", ".join(why),
                    {
                        A.EVENT_ACTION: "lc_trace_dropped",
                        A.LC_TRACE_DROPPED_QUEUE_FULL: full,
                        A.LC_TRACE_DROPPED_WRITE_ERROR: refused,
                        A.LC_TRACE_DROPPED_TOTAL: total,
                    },
                )

            writer, users = LineWriter(key, stats=Stats(), drop_line=drop_line, **options), 0
        _writers[key] = (writer, users + 1)
    return writer, LogSink(writer.emit, service_name, processors, tracer_provider=tracer_provider)


def release_writer(writer: LineWriter, timeout_millis: int) -> bool:
    """One handler fewer on *writer*: the last one closes it, the others flush."""
    with _writers_lock:
        key = str(writer.path)
        entry = _writers.get(key)
        last = entry is not None and entry[0] is writer and entry[1] == 1
        if last:
            del _writers[key]
        elif entry is not None and entry[0] is writer:
            _writers[key] = (writer, entry[1] - 1)
    return writer.close(timeout_millis) if last else writer.flush(timeout_millis)
