"""
MetricSink: the GenAI client metrics of the semantic conventions v1.41, from model runs.

``gen_ai.client.operation.duration`` (seconds), ``gen_ai.client.token.usage`` (tokens, by
``gen_ai.token.type``) and, for streamed calls, ``gen_ai.client.operation.time_to_first_chunk``
and ``gen_ai.client.operation.time_per_output_chunk`` (one value per chunk after the first: the
time since the chunk before), with the conventions' advisory bucket boundaries (the duration's
for all three time metrics) and their low-cardinality attributes only (operation, provider,
request and response model, error type). Recorded at a model call's end, through the
OpenTelemetry metrics API: with no meter provider configured the instruments are no-ops.

v1.41 defines no metric for agents or tools (``gen_ai.execute_tool.duration`` and
``gen_ai.invoke_agent.duration`` exist only in the later, separate GenAI conventions), so none
is recorded for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import Histogram, MeterProvider, NoOpHistogram

from lc_trace import _attributes as A
from lc_trace._lifecycle._flush import flush_provider
from lc_trace._version import SCOPE_NAME, VERSION

__all__ = ["MetricSink"]

_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
_KEYS = (A.GEN_AI_OPERATION_NAME, A.GEN_AI_PROVIDER_NAME, A.GEN_AI_REQUEST_MODEL, A.GEN_AI_RESPONSE_MODEL, A.ERROR_TYPE)
TOKEN_TYPE = "gen_ai.token.type"


class MetricSink:
    """
    Records one model call's duration and token usage on meters from *meter_provider*.
    """

    __slots__ = ("_duration", "_first_chunk", "_per_chunk", "_provider", "_tokens")

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        self._provider = meter_provider
        meter = metrics.get_meter(SCOPE_NAME, VERSION, meter_provider=meter_provider, schema_url=A.SCHEMA_URL)
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk from a streaming response",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._per_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_per_output_chunk",
            unit="s",
            description="Time per output chunk after the first chunk of a streaming response",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )

    def model_call(
        self,
        start: Mapping[str, Any],
        end: Mapping[str, Any],
        duration_s: float,
        first_chunk_s: float | None = None,
        chunk_ns: Sequence[int] | None = None,
    ) -> None:
        """
        One finished model call: *start* and *end* are its span attributes; a streamed one also
        its time to the first chunk and when each chunk came (monotonic ns).
        """
        if not _records(self._duration):
            return
        attributes = {key: value for key in _KEYS if (value := end.get(key, start.get(key))) is not None}
        self._duration.record(duration_s, attributes)
        if first_chunk_s is not None:
            self._first_chunk.record(first_chunk_s, attributes)
        if chunk_ns:
            record = self._per_chunk.record
            for before, after in zip(chunk_ns, chunk_ns[1:], strict=False):
                record((after - before) / 1e9, attributes)
        for key, kind in ((A.GEN_AI_USAGE_INPUT_TOKENS, "input"), (A.GEN_AI_USAGE_OUTPUT_TOKENS, "output")):
            count = end.get(key)
            if count is not None:
                self._tokens.record(count, {**attributes, TOKEN_TYPE: kind})

    def times_chunks(self) -> bool:
        """Whether the gaps between streamed chunks are recorded: if not, only the first is timed."""
        return _records(self._per_chunk)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """
        Ask the provider (the given one, else the current global one) to export what it holds.
        """
        return flush_provider(self._provider or metrics.get_meter_provider(), timeout_millis)


def _records(instrument: Histogram) -> bool:
    """
    False only for an instrument known to drop every value: the API's no-op, or the global
    provider's proxy while no provider is set (it forwards once one is; the attribute is the
    API's own, and without it every call records). Skips building attributes for nothing.
    """
    return type(instrument) is not NoOpHistogram and getattr(instrument, "_real_instrument", instrument) is not None
