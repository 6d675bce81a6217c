"""
What a user checks, in each GenAI conventions version a handler can follow: the suite's span and
metric tests run once per version (tests/conftest.py) and ask here for the names and values that
differ. Each difference cites the v0.1.0 section that makes it (docs/conventions.md has the table).
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import SpanKind

from lc_trace._conventions import LATEST

# v0.1.0 client-inference.md, "Metrics": the inference operation's three time metrics renamed.
_RENAMED_METRICS = {
    "gen_ai.client.operation.duration": "gen_ai.client.inference.duration",
    "gen_ai.client.operation.time_to_first_chunk": "gen_ai.client.inference.time_to_first_chunk",
    "gen_ai.client.operation.time_per_output_chunk": "gen_ai.client.inference.time_per_output_chunk",
}


def metrics(reader: InMemoryMetricReader, name: str) -> list[Any]:
    """Every metric called *name* the reader holds (one per scope and resource that recorded it)."""
    data = reader.get_metrics_data()
    if data is None:
        return []
    return [
        m
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for m in scope.metrics
        if m.name == name
    ]


def metric(reader: InMemoryMetricReader, name: str) -> Any:
    """The one metric called *name* the reader holds."""
    found = metrics(reader, name)
    assert 1 == len(found), name
    return found[0]


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    """Every data point the reader holds for the metric *name*."""
    return [point for found in metrics(reader, name) for point in found.data.data_points]


class Expected:
    """The names and values of one conventions version, as the tests' assertions need them."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.latest = version == LATEST

    def retrieval_span(self, retriever: str) -> str:
        """v0.1.0 retrieval.md, "Span name": the operation name alone."""
        return "retrieval" if self.latest else f"retrieval {retriever}"

    @property
    def retrieval_kind(self) -> SpanKind:
        """v0.1.0 retrieval.md, "Span kind": INTERNAL."""
        return SpanKind.INTERNAL if self.latest else SpanKind.CLIENT

    def metric(self, v1_41_name: str) -> str:
        """The name the metric called *v1_41_name* in v1.41.0 has in this version."""
        return _RENAMED_METRICS.get(v1_41_name, v1_41_name) if self.latest else v1_41_name

    @property
    def cache_write(self) -> str:
        """v0.1.0 client-inference.md: ``cache_creation`` became ``cache_write``."""
        return "gen_ai.usage.cache_write.input_tokens" if self.latest else "gen_ai.usage.cache_creation.input_tokens"

    def output_messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """v0.1.0 drops the per-message ``finish_reason`` (``gen_ai.response.finish_reasons`` keeps them)."""
        if not self.latest:
            return messages
        return [{key: value for key, value in message.items() if key != "finish_reason"} for message in messages]

    def output_json(self, text: str) -> Any:
        """*text* (a v1.41.0 ``gen_ai.output.messages`` value) as this version has it, parsed."""
        return self.output_messages(json.loads(text))

    def tokens(self, reader: InMemoryMetricReader) -> dict[str, tuple[int, int]]:
        """Input and output tokens recorded: (sum, calls with a value), from this version's metrics."""
        if not self.latest:
            by_type = {p.attributes["gen_ai.token.type"]: p for p in points(reader, "gen_ai.client.token.usage")}
            return {kind: (int(p.sum), p.count) for kind, p in by_type.items()}
        found = {}
        for kind in ("input", "output"):
            histogram = points(reader, f"gen_ai.client.inference.operation.{kind}_tokens")
            counters = points(reader, f"gen_ai.client.inference.usage.{kind}_tokens")
            if histogram:
                assert sum(p.sum for p in histogram) == sum(p.value for p in counters)
                found[kind] = (int(sum(p.sum for p in histogram)), sum(p.count for p in histogram))
        return found
