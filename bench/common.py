"""
Small helpers the writer and memory parts share: a counting tracer provider, RSS, medians.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from bench.contenders import CountingExporter

__all__ = ["counting_provider", "median", "rss_bytes"]

_PAGE = os.sysconf("SC_PAGE_SIZE")


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
