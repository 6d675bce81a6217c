"""
Small helpers the bench parts share: a counting tracer provider, RSS, medians.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

__all__ = ["CountingExporter", "counting_provider", "median", "rss_bytes"]

_PAGE = os.sysconf("SC_PAGE_SIZE")


class CountingExporter(SpanExporter):
    """
    Exports nowhere; counts spans, so the report can show each contender really traced.
    """

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def counting_provider() -> tuple[TracerProvider, CountingExporter]:
    """
    The same export path the contenders get: BatchSpanProcessor over a counting no-op.
    """
    exporter = CountingExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


def rss_bytes() -> int:
    """
    This process's resident set size, from /proc (no psutil needed).
    """
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")
