"""
Named counters for everything lc_trace drops or fails at, and a report-once warning.

Nothing is lost silently: every dropped line and every internal error
increments a counter named for its reason, the first of each reason is reported through the
``lc_trace`` logger, and the drop counts are also written into the log file itself.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

__all__ = ["Stats", "report_once"]

_logger = logging.getLogger("lc_trace")
_DROP_NAMES = ("dropped_queue_full", "dropped_after_close", "dropped_write_error")
_EXPORT_NAMES = (
    "spans_exported",
    "spans_dropped_export_failed",
    "spans_dropped_unreachable",
    "spans_dropped_queue_full",
    "metric_points_dropped_export_failed",
    "metric_points_dropped_unreachable",
)


@dataclass
class Stats:
    """
    Counters a handler exposes as ``handler.stats``; read them, never write them.

    Attributes:
        lines_written: lines that reached the file.
        dropped_queue_full: lines dropped because the writer queue was full.
        dropped_after_close: lines emitted after ``close()``.
        dropped_write_error: lines lost because the file could not be written.
        internal_errors: exceptions caught inside lc_trace's callbacks (the app never sees them).
        runs_evicted: open runs closed because the run table reached its cap.
        evaluations_rejected: ``gen_ai.evaluation.result`` custom events not recorded: their data
            was no evaluation, or named a run the handler does not hold (the first is reported).
        spans_exported: spans the exporter delivered (``lc_trace.configure()`` only, as are the rest).
        spans_dropped_export_failed: spans in batches the exporter tried and failed to deliver.
        spans_dropped_unreachable: spans dropped without a try while the collector was unreachable.
        spans_dropped_queue_full: spans the SDK's full span queue pushed out.
        metric_points_dropped_export_failed: metric data points in exports that failed.
        metric_points_dropped_unreachable: metric data points not tried while the collector was unreachable.
    """

    lines_written: int = 0
    dropped_queue_full: int = 0
    dropped_after_close: int = 0
    dropped_write_error: int = 0
    internal_errors: int = 0
    runs_evicted: int = 0
    evaluations_rejected: int = 0
    spans_exported: int = 0
    spans_dropped_export_failed: int = 0
    spans_dropped_unreachable: int = 0
    spans_dropped_queue_full: int = 0
    metric_points_dropped_export_failed: int = 0
    metric_points_dropped_unreachable: int = 0
    _reported: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def dropped(self) -> int:
        """
        All lines lost, whatever the reason.
        """
        return self.dropped_queue_full + self.dropped_after_close + self.dropped_write_error

    @property
    def spans_dropped(self) -> int:
        """
        All spans that did not reach the collector, whatever the reason.
        """
        return self.spans_dropped_export_failed + self.spans_dropped_unreachable + self.spans_dropped_queue_full

    def reset_after_fork(self) -> None:
        """
        In a forked child: count only the child's own lines, spans and errors from here on.
        """
        self._lock = threading.Lock()  # another thread may have held the parent's at fork
        counters = ("lines_written", *_DROP_NAMES, "internal_errors", "runs_evicted", "evaluations_rejected")
        for name in (*counters, *_EXPORT_NAMES):
            setattr(self, name, 0)
        self._reported = set()

    def add(self, name: str, count: int = 1) -> None:
        """
        Increment counter *name* under a lock (callers may be on any thread).
        """
        with self._lock:
            setattr(self, name, getattr(self, name) + count)


def report_once(stats: Stats, reason: str, message: str, *args: object, exc_info: bool = False) -> None:
    """
    Warn through the ``lc_trace`` logger the first time *reason* happens for these stats.
    """
    if reason in stats._reported:
        return
    stats._reported.add(reason)
    _logger.warning("lc_trace: " + message, *args, exc_info=exc_info)
