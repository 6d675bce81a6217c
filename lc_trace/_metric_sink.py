"""
MetricSink: the GenAI client metrics of the semantic conventions v1.41, from model runs.

``gen_ai.client.operation.duration`` (seconds) and ``gen_ai.client.token.usage`` (tokens, by
``gen_ai.token.type``), with the conventions' advisory bucket boundaries and their low-cardinality
attributes only (operation, provider, request and response model, error type). Recorded once per
model call, at its end, through the OpenTelemetry metrics API: with no meter provider configured
the instruments are no-ops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider

from lc_trace import _attributes as A
from lc_trace._flush import flush_provider

__all__ = ["MetricSink"]

_VERSION = "0.1.0"
_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
_KEYS = (A.GEN_AI_OPERATION_NAME, A.GEN_AI_PROVIDER_NAME, A.GEN_AI_REQUEST_MODEL, A.GEN_AI_RESPONSE_MODEL, A.ERROR_TYPE)
TOKEN_TYPE = "gen_ai.token.type"


class MetricSink:
    """
    Records one model call's duration and token usage on meters from *meter_provider*.
    """

    __slots__ = ("_duration", "_provider", "_tokens")

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        self._provider = meter_provider
        meter = metrics.get_meter("lc_trace", _VERSION, meter_provider=meter_provider, schema_url=A.SCHEMA_URL)
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

    def model_call(self, start: Mapping[str, Any], end: Mapping[str, Any], duration_s: float) -> None:
        """
        One finished model call: *start* and *end* are its span attributes.
        """
        attributes = {key: value for key in _KEYS if (value := end.get(key, start.get(key))) is not None}
        self._duration.record(duration_s, attributes)
        for key, kind in ((A.GEN_AI_USAGE_INPUT_TOKENS, "input"), (A.GEN_AI_USAGE_OUTPUT_TOKENS, "output")):
            count = end.get(key)
            if count is not None:
                self._tokens.record(count, {**attributes, TOKEN_TYPE: kind})

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """
        Ask the provider (the given one, else the current global one) to export what it holds.
        """
        return flush_provider(self._provider or metrics.get_meter_provider(), timeout_millis)
