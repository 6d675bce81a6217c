"""
The filters every reading command shares (``--since``, ``--until``, ``--trace``, ``--service``,
``--action``, ``--errors``), and the times they are given in.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from lc_trace import _attributes as A
from lc_trace._read._files import Line

if TYPE_CHECKING:
    from lc_trace._read._runs import TraceView

__all__ = ["Filter", "parse_time"]


def parse_time(text: str, *, now_ns: int | None = None) -> int:
    """
    A time given on the command line, as epoch nanoseconds: an ISO 8601 date or date-time
    (UTC unless it says otherwise), or a span back from now: ``30m``, ``2h``, ``1d``, ``90s``.

    Raises:
        ValueError: neither form.
    """
    text = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text[:-1].isdigit() and text[-1:] in units:
        now = time.time_ns() if now_ns is None else now_ns
        return now - int(text[:-1]) * units[text[-1]] * 1_000_000_000
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: give an ISO date or date-time (2026-11-30, 2026-11-30T17:05) "
            "or an age (30m, 2h, 1d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


@dataclass(frozen=True, slots=True)
class Filter:
    """
    What the user asked to see; the same options on every reading command.

    A line passes when it matches every option given; a trace passes when it starts inside
    ``since``/``until``, its id starts with one of ``traces``, and it has a line of one of
    ``services``, a line of one of ``actions`` (shell patterns: ``tool_*``) and, with
    ``errors``, a failed run.
    """

    since_ns: int | None = None
    until_ns: int | None = None
    traces: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    errors: bool = False

    def line(self, line: Line) -> bool:
        """
        Whether one line passes (``tail``).
        """
        if self.since_ns is not None and line.time_ns < self.since_ns:
            return False
        if self.until_ns is not None and line.time_ns >= self.until_ns:
            return False
        if self.traces and not str(line.get(A.TRACE_ID, "")).startswith(self.traces):
            return False
        if self.services and line.get(A.SERVICE_NAME) not in self.services:
            return False
        if self.actions and not any(fnmatch.fnmatchcase(line.action, p) for p in self.actions):
            return False
        return not self.errors or line.is_error

    def window(self, first_ns: int) -> bool:
        """
        Whether a trace that starts at *first_ns* is inside ``since``/``until``.
        """
        if self.since_ns is not None and first_ns < self.since_ns:
            return False
        return self.until_ns is None or first_ns < self.until_ns

    def trace(self, trace: TraceView) -> bool:
        """
        Whether a whole trace passes (every other command).
        """
        if not self.window(trace.first_ns):
            return False
        if self.traces and not trace.trace_id.startswith(self.traces):
            return False
        runs = trace.runs.values()
        if self.services and not any(run.service in self.services for run in runs):
            return False
        if self.actions and not any(
            fnmatch.fnmatchcase(line.action, p)
            for run in runs
            for line in (run.first, *run.events, run.end)
            if line is not None
            for p in self.actions
        ):
            return False
        return not self.errors or trace.errors > 0
