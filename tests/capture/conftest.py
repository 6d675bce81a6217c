"""The capture side's metric tests read what the handler records through a real SDK meter provider."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader


@pytest.fixture
def reader() -> InMemoryMetricReader:
    """The test's in-memory metric reader."""
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(reader: InMemoryMetricReader) -> MeterProvider:
    """A real SDK meter provider reading into ``reader``."""
    return MeterProvider(metric_readers=[reader])
