"""
Between the SDK's processors and the collector: exporters that keep a dead collector from
costing the application anything, and count what it could not take.

The SDK's OTLP exporters retry a failed batch with backoff for up to their timeout (10 s by
default), on the processor's thread, and at shutdown the ``BatchSpanProcessor`` exports every
queued batch that way: with nothing listening, an app took 30 s to exit. Wrapped here, the
first failed export marks the collector unreachable; after that a batch is dropped at once and
counted, one batch is tried per retry interval, and the first one that gets through ends the
outage. Each outage is reported twice through the ``lc_trace`` logger, when it starts and when
it ends (with how many were lost), never once per batch; the SDK
exporter's own log records are kept for the export that found the outage (they say why) and
dropped for the tries during it, which would only repeat them.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from lc_trace._stats import Stats

__all__ = ["CountingBatchSpanProcessor", "GuardedMetricExporter", "GuardedSpanExporter", "Outage"]

_logger = logging.getLogger("lc_trace")

_trying = threading.local()  # .on: this thread is in an export tried during an outage


class _QuietTries(logging.Filter):
    """
    Drops the OTel exporters' log records from a try during an outage already reported.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_trying, "on", False)


_QUIET_TRIES = _QuietTries()


def _quiet_tries_of(exporter: object) -> None:
    """
    Put the filter on the loggers of the modules *exporter*'s class comes from (OTel's only).
    """
    for cls in type(exporter).__mro__:
        if cls.__module__.startswith("opentelemetry.exporter."):
            logger = logging.getLogger(cls.__module__)
            if _QUIET_TRIES not in logger.filters:
                logger.addFilter(_QUIET_TRIES)


class Outage:
    """
    Whether one collector is reachable, decided by the last export to it, and what was lost
    since it was not. The span and the metric exporter share one when they send to the same
    address, so a collector found down by one is not waited for again by the other.
    """

    __slots__ = ("__weakref__", "_down_since", "_lock", "_lost", "_retry_at", "closing", "retry_interval_s", "stats")

    def __init__(self, retry_interval_s: float, stats: Stats | None = None) -> None:
        self.retry_interval_s = retry_interval_s
        self.stats = stats if stats is not None else Stats()
        self.closing = False  # set at exit: an unreachable collector is then not tried again
        self._lock = threading.Lock()  # the span and metric exporters run on different threads
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._lost: dict[str, int] = {}  # what (spans, metric points) was lost in the outage on
        if hasattr(os, "register_at_fork"):  # weakly: a dead Outage must not be kept alive by fork hooks
            os.register_at_fork(after_in_child=functools.partial(_after_fork, weakref.ref(self)))

    @property
    def down(self) -> bool:
        """
        True from a failed export until one gets through.
        """
        return self._down_since is not None

    def should_try(self, what: str, count: int) -> bool:
        """
        Whether to hand a batch of *count* *what* to the exporter now; when not, it is dropped
        and counted (``{what}_dropped_unreachable``).
        """
        with self._lock:
            if self._down_since is None:
                return True
            if not self.closing and time.monotonic() >= self._retry_at:
                self._retry_at = time.monotonic() + self.retry_interval_s  # one try per interval, whoever tries
                return True
            self._lose(what, "unreachable", count)
            return False

    def failed(self, what: str, count: int) -> None:
        """
        An export of *count* *what* failed: count it, and start an outage if none is on.
        """
        with self._lock:
            self._lose(what, "export_failed", count)
            now = time.monotonic()
            self._retry_at = now + self.retry_interval_s
            if self._down_since is not None:
                return
            self._down_since = now
        _logger.warning(
            "lc_trace: cannot export %s (the exporter failed: is the collector down?); spans and metric points "
            "are dropped and counted in handler.stats until an export gets through again, tried every %g s",
            _NAMES[what],
            self.retry_interval_s,
        )

    def succeeded(self) -> None:
        """
        An export got through: end the outage, saying how long it lasted and what it cost.
        """
        with self._lock:
            if self._down_since is None:
                return
            lasted, lost = time.monotonic() - self._down_since, self._lost
            self._down_since, self._lost = None, {}
        _logger.warning(
            "lc_trace: export resumed after %.1f s; %s could not be exported meanwhile (counted in handler.stats)",
            lasted,
            _describe(lost),
        )

    def report_at_exit(self) -> None:
        """
        At shutdown, say what an outage still on has cost (its end will never be reported).
        """
        with self._lock:
            lost, self._lost = self._lost, {}
        if self._down_since is not None and lost:
            _logger.warning(
                "lc_trace: exiting with the collector unreachable; %s could not be exported (counted in handler.stats)",
                _describe(lost),
            )

    def _after_fork(self) -> None:
        """
        In a forked child: a new lock (the parent's may have been held at fork), and only the
        child's own losses from here on (its stats start at zero too).
        """
        self._lock = threading.Lock()
        self._lost = {}

    def _lose(self, what: str, reason: str, count: int) -> None:
        self.stats.add(f"{what}_dropped_{reason}", count)
        self._lost[what] = self._lost.get(what, 0) + count


def _after_fork(ref: weakref.ref[Outage]) -> None:
    outage = ref()
    if outage is not None:
        outage._after_fork()


_SPANS = "spans"
_POINTS = "metric_points"
_NAMES = {_SPANS: "spans", _POINTS: "metric points"}


def _describe(lost: dict[str, int]) -> str:
    return " and ".join(f"{lost.get(what, 0)} {name}" for what, name in _NAMES.items() if what in lost) or "nothing"


class GuardedSpanExporter(SpanExporter):
    """
    A span exporter that counts what it exports and what it cannot, and stops calling *inner*
    while the collector is unreachable (one batch per retry interval still goes through).
    """

    def __init__(self, inner: SpanExporter, outage: Outage) -> None:
        self.inner = inner
        self.outage = outage
        self._shut_down = False
        _quiet_tries_of(inner)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """
        Export through *inner* unless the collector is known to be unreachable; never raises.
        """
        outage = self.outage
        if not outage.should_try(_SPANS, len(spans)):
            return SpanExportResult.FAILURE
        _trying.on = outage.down
        try:
            result = self.inner.export(spans)
        except Exception:  # an exporter must not raise, but a third-party one may
            _logger.debug("lc_trace: span exporter raised", exc_info=True)
            result = SpanExportResult.FAILURE
        finally:
            _trying.on = False
        if result is SpanExportResult.SUCCESS:
            outage.stats.add("spans_exported", len(spans))
            outage.succeeded()
        else:
            outage.failed(_SPANS, len(spans))
        return result

    def shutdown(self) -> None:
        """
        Shut *inner* down once.
        """
        if self._shut_down:
            return
        self._shut_down = True
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """
        Flush *inner* (the OTLP exporters hold nothing; others may).
        """
        return bool(self.inner.force_flush(timeout_millis))


class GuardedMetricExporter(MetricExporter):
    """
    The metric twin of :class:`GuardedSpanExporter`: counts the data points of exports that fail.
    """

    def __init__(self, inner: MetricExporter, outage: Outage) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,  # the reader asks the exporter for these
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.outage = outage
        self._shut_down = False
        _quiet_tries_of(inner)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        """
        Export through *inner* unless the collector is known to be unreachable; never raises.
        """
        outage = self.outage
        points = _count_points(metrics_data)
        if not outage.should_try(_POINTS, points):
            return MetricExportResult.FAILURE
        _trying.on = outage.down
        try:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:
            _logger.debug("lc_trace: metric exporter raised", exc_info=True)
            result = MetricExportResult.FAILURE
        finally:
            _trying.on = False
        if result is MetricExportResult.SUCCESS:
            outage.succeeded()
        else:
            outage.failed(_POINTS, points)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """
        Flush *inner*.
        """
        return bool(self.inner.force_flush(timeout_millis=timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """
        Shut *inner* down once.
        """
        if self._shut_down:
            return
        self._shut_down = True
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def _count_points(data: MetricsData) -> int:
    return sum(
        len(metric.data.data_points)
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    )


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """
    A ``BatchSpanProcessor`` that counts the spans its full queue drops, which the SDK only
    logs (once per 20 s). Configured as the SDK's, by ``OTEL_BSP_*``.
    """

    def __init__(self, exporter: GuardedSpanExporter, export_timeout_millis: float | None = None) -> None:
        super().__init__(exporter, export_timeout_millis=export_timeout_millis)
        self._outage = exporter.outage
        # The SDK's bounded deque (a private attribute; without it nothing is counted, nothing breaks).
        queue = getattr(getattr(self, "_batch_processor", None), "_queue", None)
        self._queue: deque[ReadableSpan] | None = (
            queue if isinstance(queue, deque) and queue.maxlen is not None else None
        )

    def on_end(self, span: ReadableSpan) -> None:
        """
        Count a sampled span the full queue is about to push out, then hand it to the SDK.
        """
        queue = self._queue
        if queue is not None and len(queue) == queue.maxlen and span.context and span.context.trace_flags.sampled:
            self._outage.stats.add("spans_dropped_queue_full")
        super().on_end(span)
