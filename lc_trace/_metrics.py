"""
MetricSink: the GenAI metrics, from the runs LangChain reports.

Model calls, by the version the handler follows (``_conventions``):

- v1.41.0: ``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage`` (by
  ``gen_ai.token.type``, only when the call reported usage) and, for streamed calls,
  ``gen_ai.client.operation.time_to_first_chunk`` and ``.time_per_output_chunk``;
- v0.1.0: the same three times as ``gen_ai.client.inference.*``; token counters by kind
  (``gen_ai.client.inference.usage.*``, by ``gen_ai.token.modality``: LangChain names audio
  tokens apart and nothing else, so the rest is ``unknown``), for every call that reported usage,
  failed ones too; the per-call histograms ``gen_ai.client.inference.operation.input_tokens`` and
  ``.output_tokens`` for every call that succeeded and reported usage. Neither carries
  ``error.type``.

In both versions, being additive (new names that break no one's dashboard): agents'
``gen_ai.invoke_agent.duration``, ``.inference_calls`` and ``.tool_calls``, tools'
``gen_ai.execute_tool.duration`` and retrievers' ``gen_ai.retrieval.duration``.

Each with the conventions' units, advisory buckets and low-cardinality attributes only;
recorded at the run's end through the OpenTelemetry metrics API: with no meter provider
configured the instruments are no-ops, and nothing is built for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import Counter, Histogram, MeterProvider, NoOpCounter, NoOpHistogram

from lc_trace import _attributes as A
from lc_trace._conventions import LATEST, V1_41, Conventions
from lc_trace._lifecycle._flush import flush_provider
from lc_trace._version import SCOPE_NAME, VERSION

__all__ = ["TOKEN_MODALITY", "TOKEN_TYPE", "MetricSink"]

_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
_AGENT_BUCKETS = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 409.6]
_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
_CALL_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128]
_MODEL_KEYS = (
    A.GEN_AI_OPERATION_NAME,
    A.GEN_AI_PROVIDER_NAME,
    A.GEN_AI_REQUEST_MODEL,
    A.GEN_AI_RESPONSE_MODEL,
    A.ERROR_TYPE,
)
_TOOL_KEYS = (A.GEN_AI_TOOL_NAME, A.GEN_AI_TOOL_TYPE, A.ERROR_TYPE)
_TOKEN_KEYS = _MODEL_KEYS[:-1]  # no error.type
_RETRIEVAL_KEYS = (A.GEN_AI_OPERATION_NAME, A.GEN_AI_DATA_SOURCE_ID, A.ERROR_TYPE)
_NO_OPS = (NoOpHistogram, NoOpCounter)  # the API's instruments that drop every value
TOKEN_TYPE = "gen_ai.token.type"
TOKEN_MODALITY = "gen_ai.token.modality"
# v0.1.0's usage counters: (instrument name suffix, the span attribute that holds the count, the
# span attribute that holds its audio part, if LangChain reports one).
_USAGE_COUNTERS = (
    ("input_tokens", A.GEN_AI_USAGE_INPUT_TOKENS, A.GEN_AI_USAGE_AUDIO_INPUT_TOKENS),
    ("output_tokens", A.GEN_AI_USAGE_OUTPUT_TOKENS, A.GEN_AI_USAGE_AUDIO_OUTPUT_TOKENS),
    ("cache_read.input_tokens", A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, None),
    ("cache_write.input_tokens", A.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, None),
    ("reasoning.output_tokens", A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, None),
)


class MetricSink:
    """
    Records runs' durations, token usage and agents' call counts on meters from *meter_provider*.
    """

    __slots__ = (
        "_agent_duration",
        "_duration",
        "_first_chunk",
        "_inference_calls",
        "_input_tokens",
        "_latest",
        "_output_tokens",
        "_per_chunk",
        "_provider",
        "_retrieval_duration",
        "_tokens",
        "_tool_calls",
        "_tool_duration",
        "_usage",
    )

    def __init__(self, meter_provider: MeterProvider | None = None, conventions: Conventions = V1_41) -> None:
        self._provider = meter_provider
        self._latest = latest = conventions == LATEST
        meter = metrics.get_meter(SCOPE_NAME, VERSION, meter_provider=meter_provider, schema_url=A.SCHEMA_URL)
        stem = "gen_ai.client.inference" if latest else "gen_ai.client.operation"
        self._duration = meter.create_histogram(
            f"{stem}.duration",
            unit="s",
            description="GenAI inference duration" if latest else "GenAI operation duration",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._first_chunk = meter.create_histogram(
            f"{stem}.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk from a streaming response",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._per_chunk = meter.create_histogram(
            f"{stem}.time_per_output_chunk",
            unit="s",
            description="Time per output chunk after the first chunk of a streaming response",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._tokens: Histogram | None = None
        self._usage: tuple[tuple[Counter, str, str | None], ...] = ()
        self._input_tokens: Histogram | None = None
        self._output_tokens: Histogram | None = None
        if latest:
            self._usage = tuple(
                (
                    meter.create_counter(
                        f"gen_ai.client.inference.usage.{suffix}",
                        unit="{token}",
                        description=f"Tokens used by inference calls: {suffix.replace('.', ' ').replace('_', ' ')}",
                    ),
                    attribute,
                    audio,
                )
                for suffix, attribute, audio in _USAGE_COUNTERS
            )
            self._input_tokens, self._output_tokens = (
                meter.create_histogram(
                    f"gen_ai.client.inference.operation.{kind}_tokens",
                    unit="{token}",
                    description=f"Number of {kind} tokens used per inference call",
                    explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
                )
                for kind in ("input", "output")
            )
        else:
            self._tokens = meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used",
                explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
            )
        self._agent_duration = meter.create_histogram(
            "gen_ai.invoke_agent.duration",
            unit="s",
            description="Duration of an agent invocation",
            explicit_bucket_boundaries_advisory=_AGENT_BUCKETS,
        )
        self._inference_calls = meter.create_histogram(
            "gen_ai.invoke_agent.inference_calls",
            unit="{inference_call}",
            description="Inference calls an agent invocation made itself",
            explicit_bucket_boundaries_advisory=_CALL_BUCKETS,
        )
        self._tool_calls = meter.create_histogram(
            "gen_ai.invoke_agent.tool_calls",
            unit="{tool_call}",
            description="Tool calls an agent invocation made itself",
            explicit_bucket_boundaries_advisory=_CALL_BUCKETS,
        )
        self._tool_duration = meter.create_histogram(
            "gen_ai.execute_tool.duration",
            unit="s",
            description="Duration of a tool execution",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._retrieval_duration = meter.create_histogram(
            "gen_ai.retrieval.duration",
            unit="s",
            description="Duration of a retrieval",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )

    def model_call(
        self,
        start: Mapping[str, Any],
        end: Mapping[str, Any],
        duration_s: float,
        first_chunk_s: float | None = None,
        chunk_ns: Sequence[int] | None = None,
    ) -> bool:
        """
        One finished model call: *start* and *end* are its span attributes; a streamed one also
        its time to the first chunk and when each chunk came (monotonic ns). False if nothing
        records (no meter provider): then neither do the agent metrics, of the same meter.
        """
        if not _records(self._duration):
            return False
        attributes = _pick(_MODEL_KEYS, start, end)
        self._duration.record(duration_s, attributes)
        if first_chunk_s is not None:
            self._first_chunk.record(first_chunk_s, attributes)
        if chunk_ns:
            record = self._per_chunk.record
            for before, after in zip(chunk_ns, chunk_ns[1:], strict=False):
                record((after - before) / 1e9, attributes)
        if self._latest:
            self._usage_counts(attributes, end)
            return True
        tokens = self._tokens
        assert tokens is not None
        for key, kind in ((A.GEN_AI_USAGE_INPUT_TOKENS, "input"), (A.GEN_AI_USAGE_OUTPUT_TOKENS, "output")):
            count = end.get(key)
            if count is not None:
                tokens.record(count, {**attributes, TOKEN_TYPE: kind})
        return True

    def _usage_counts(self, attributes: dict[str, Any], end: Mapping[str, Any]) -> None:
        """
        v0.1.0's token metrics of a call that reported usage: the counters (a failed call's
        too: the tokens were spent), split into ``audio`` and ``unknown`` modality; the per-call
        histograms only for a call that succeeded (client-inference.md, the token metrics' notes).
        """
        if A.GEN_AI_USAGE_INPUT_TOKENS not in end:
            return
        tokens = {key: value for key in _TOKEN_KEYS if (value := attributes.get(key)) is not None}
        for counter, key, audio_key in self._usage:
            count = end.get(key)
            if count is None:
                continue
            audio = end.get(audio_key, 0) if audio_key is not None else 0
            if audio:
                counter.add(audio, {**tokens, TOKEN_MODALITY: "audio"})
            counter.add(count - audio, {**tokens, TOKEN_MODALITY: "unknown"})
        if A.ERROR_TYPE not in attributes:
            assert self._input_tokens is not None and self._output_tokens is not None
            self._input_tokens.record(end[A.GEN_AI_USAGE_INPUT_TOKENS], tokens)
            self._output_tokens.record(end.get(A.GEN_AI_USAGE_OUTPUT_TOKENS, 0), tokens)

    def agent_call(
        self,
        name: str,
        duration_s: float,
        inference_calls: int,
        tool_calls: int,
        error: str | None,
        model: str | None,
    ) -> None:
        """
        One finished agent invocation: its duration and the model and tool calls it made itself
        (called only while ``records_agents``, as are ``tool_call`` and ``retrieval``).
        """
        attributes: dict[str, Any] = {A.GEN_AI_AGENT_NAME: name}
        if error is not None:
            attributes[A.ERROR_TYPE] = error
        if model is not None:
            attributes[A.GEN_AI_REQUEST_MODEL] = model
        self._agent_duration.record(duration_s, attributes)
        named = {A.GEN_AI_AGENT_NAME: name}
        self._inference_calls.record(inference_calls, named)
        self._tool_calls.record(tool_calls, named)

    def tool_call(self, start: Mapping[str, Any], end: Mapping[str, Any], duration_s: float, agent: str | None) -> None:
        """
        One finished tool execution, with the name of the agent that called it, if any.
        """
        attributes = _pick(_TOOL_KEYS, start, end)
        if agent is not None:
            attributes[A.GEN_AI_AGENT_NAME] = agent
        self._tool_duration.record(duration_s, attributes)

    def retrieval(self, start: Mapping[str, Any], end: Mapping[str, Any], duration_s: float) -> None:
        """
        One finished retrieval.
        """
        self._retrieval_duration.record(duration_s, _pick(_RETRIEVAL_KEYS, start, end))

    def records_agents(self) -> bool:
        """Whether agent, tool and retrieval metrics are recorded: if not, nothing is counted for them."""
        return _records(self._agent_duration)

    def times_chunks(self) -> bool:
        """Whether the gaps between streamed chunks are recorded: if not, only the first is timed."""
        return _records(self._per_chunk)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """
        Ask the provider (the given one, else the current global one) to export what it holds.
        """
        return flush_provider(self._provider or metrics.get_meter_provider(), timeout_millis)


def _pick(keys: tuple[str, ...], start: Mapping[str, Any], end: Mapping[str, Any]) -> dict[str, Any]:
    """The metric's attributes: each key's value at the run's end, else at its start."""
    return {key: value for key in keys if (value := end.get(key, start.get(key))) is not None}


def _records(instrument: Histogram | Counter) -> bool:
    """
    False only for an instrument known to drop every value: the API's no-op, or the global
    provider's proxy while no provider is set (it forwards once one is; the attribute is the
    API's own, and without it every call records). Skips building attributes for nothing.
    """
    return type(instrument) not in _NO_OPS and (getattr(instrument, "_real_instrument", instrument) is not None)
