"""GenAI client metrics of model calls: duration, token usage and the streaming chunk times, in each conventions version (tests/conventions.py names them)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lc_trace.testing import FakeChatModel
from tests.conftest import HANDLERS, REPO, flower_chain
from tests.conventions import metric, points


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_model_call_records_duration_and_tokens(handler_cls, make_handler, meter_provider, reader, exporter, expected):
    """One chat call gives one duration point and input/output token points, with the conventions' attributes."""
    handler = make_handler(handler_cls, meter_provider=meter_provider)
    flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
    (duration,) = points(reader, expected.metric("gen_ai.client.operation.duration"))
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "fake",
        "gen_ai.request.model": "fake-chat-1",
        "gen_ai.response.model": "fake-chat-1-2026-11-01",
    }
    assert attributes == dict(duration.attributes)
    assert 1 == duration.count
    span = next(s for s in exporter.get_finished_spans() if s.name == "chat fake-chat-1")
    assert pytest.approx((span.end_time - span.start_time) / 1e9) == duration.sum
    assert {"input": (8, 1), "output": (3, 1)} == expected.tokens(reader)
    if (
        expected.latest
    ):  # by kind and modality (client-inference.md, "Metric: gen_ai.client.inference.usage.input_tokens")
        (counted,) = points(reader, "gen_ai.client.inference.usage.input_tokens")
        # LangChain's usage says nothing of modality but audio: "unknown", as the conventions ask then
        assert {**attributes, "gen_ai.token.modality": "unknown"} == dict(counted.attributes)
        (per_call,) = points(reader, "gen_ai.client.inference.operation.input_tokens")
        assert attributes == dict(per_call.attributes)
    else:
        (tokens,) = (
            p for p in points(reader, "gen_ai.client.token.usage") if p.attributes["gen_ai.token.type"] == "input"
        )
        assert {**attributes, "gen_ai.token.type": "input"} == dict(tokens.attributes)
    assert (0.01, 0.02, 0.04) == tuple(duration.explicit_bounds[:3])  # the conventions' advisory buckets


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_failed_call_carries_error_type(handler_cls, make_handler, meter_provider, reader, expected):
    """
    A failed model call's duration point carries error.type; a call that failed before any usage
    came records no token metric in either version (v0.1.0: "otherwise it MUST NOT report usage").
    """
    handler = make_handler(handler_cls, meter_provider=meter_provider)
    with pytest.raises(ConnectionError):
        FakeChatModel(fail_with=ConnectionError("503")).invoke("hi", {"callbacks": [handler]})
    (duration,) = points(reader, expected.metric("gen_ai.client.operation.duration"))
    assert "ConnectionError" == duration.attributes["error.type"]
    assert {} == expected.tokens(reader)


def test_token_totals_across_gather(make_handler, meter_provider, reader, expected):
    """Thirty concurrent calls: the token histogram's sums equal the usage the models reported."""
    from lc_trace import AsyncTraceHandler

    handler = make_handler(AsyncTraceHandler, meter_provider=meter_provider)
    model = FakeChatModel(responses=["One rose.", "Two red tulips.", "Three white lilies today."])

    async def main() -> list[Any]:
        return await asyncio.gather(*(model.ainvoke(f"for sister {i}", {"callbacks": [handler]}) for i in range(30)))

    replies = asyncio.run(main())
    tokens = expected.tokens(reader)
    assert (sum(r.usage_metadata["input_tokens"] for r in replies), 30) == tokens["input"]
    assert (sum(r.usage_metadata["output_tokens"] for r in replies), 30) == tokens["output"]


def test_chains_tools_and_retrievers_record_no_client_metrics(make_handler, meter_provider, reader, expected):
    """Only model calls are GenAI client operations; a plain chain records nothing."""
    from langchain_core.runnables import RunnableLambda

    RunnableLambda(lambda x: x, name="step").invoke(1, {"callbacks": [make_handler(meter_provider=meter_provider)]})
    data = reader.get_metrics_data()
    assert data is None or [] == [m.name for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics]


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_streamed_call_records_first_chunk_and_per_chunk_times(
    mode, make_handler, meter_provider, reader, exporter, expected
):
    """A streamed call: one time-to-first-chunk point equal to the span's attribute, one time-per-chunk value per chunk after the first, in seconds, with the duration's buckets and attributes."""
    from lc_trace import AsyncTraceHandler, TraceHandler

    handler = make_handler(TraceHandler if mode == "stream" else AsyncTraceHandler, meter_provider=meter_provider)
    model = FakeChatModel(responses=["Roses are red and violets blue."], delay_s=0.002)
    config = {"callbacks": [handler]}
    if mode == "stream":
        chunks = list(model.stream("poem", config))
    else:

        async def collect() -> list[Any]:
            return [c async for c in model.astream("poem", config)]

        chunks = asyncio.run(collect())
    span = next(s for s in exporter.get_finished_spans() if s.name == "chat fake-chat-1")
    counted = span.attributes["langchain.stream.chunk_count"]
    assert counted >= len(chunks) - 1 >= 5

    (duration,) = points(reader, expected.metric("gen_ai.client.operation.duration"))
    (first,) = points(reader, expected.metric("gen_ai.client.operation.time_to_first_chunk"))
    (per_chunk,) = points(reader, expected.metric("gen_ai.client.operation.time_per_output_chunk"))
    assert dict(duration.attributes) == dict(first.attributes) == dict(per_chunk.attributes)
    assert pytest.approx(span.attributes["gen_ai.response.time_to_first_chunk"]) == first.sum
    assert 1 == first.count
    assert counted - 1 == per_chunk.count
    assert first.sum + per_chunk.sum <= duration.sum
    assert per_chunk.sum >= 0.002 * (counted - 2)  # the model's delay between chunks, seen
    for name in ("gen_ai.client.operation.time_to_first_chunk", "gen_ai.client.operation.time_per_output_chunk"):
        assert "s" == metric(reader, expected.metric(name)).unit
    assert tuple(duration.explicit_bounds) == tuple(first.explicit_bounds) == tuple(per_chunk.explicit_bounds)


def test_unstreamed_call_records_no_chunk_times(make_handler, meter_provider, reader, expected):
    """invoke without streaming: no chunk metrics (they are for streaming responses only)."""
    FakeChatModel().invoke("hi", {"callbacks": [make_handler(meter_provider=meter_provider)]})
    assert [] == points(reader, expected.metric("gen_ai.client.operation.time_to_first_chunk"))
    assert [] == points(reader, expected.metric("gen_ai.client.operation.time_per_output_chunk"))


def test_the_global_meter_provider_set_after_the_handler_gets_the_metrics(tmp_path, expected):
    """
    A handler built before the app sets its global meter provider records nothing until then (no
    provider: nothing to build metric attributes for, no chunk but the first timed) and every model
    call after it, a streamed one's gaps between chunks included, in a process of its own (the
    global provider can be set once per process).
    """
    import json
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import json
            from opentelemetry import metrics
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
            from lc_trace import TraceHandler
            from lc_trace.testing import FakeChatModel
            from tests.conftest import flower_chain

            spans = InMemorySpanExporter()
            tracer_provider = TracerProvider()
            tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
            handler = TraceHandler(log_path=None, tracer_provider=tracer_provider)
            chain = flower_chain()
            model = FakeChatModel(responses=["Roses are red and violets blue."])
            chain.invoke({"who": "mum"}, {"callbacks": [handler]})  # before any provider: dropped, no error
            list(model.stream("poem", {"callbacks": [handler]}))
            reader = InMemoryMetricReader()
            metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
            for _ in range(3):
                chain.invoke({"who": "mum"}, {"callbacks": [handler]})
            list(model.stream("poem", {"callbacks": [handler]}))
            streamed = [s for s in spans.get_finished_spans() if "langchain.stream.chunk_count" in s.attributes]
            counts = {}
            for resource in reader.get_metrics_data().resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        counts[metric.name] = sum(getattr(p, "count", 1) for p in metric.data.data_points)
            chunks = [s.attributes["langchain.stream.chunk_count"] for s in streamed]
            print(json.dumps({"counts": counts, "chunks": chunks, "errors": handler.stats.internal_errors}))
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=120, env=_clean_env()
    )
    assert 0 == done.returncode, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert 0 == result["errors"]
    counts = result["counts"]
    assert 4 == counts[expected.metric("gen_ai.client.operation.duration")]  # three chains' models, one stream
    if expected.latest:
        assert (
            4
            == counts["gen_ai.client.inference.operation.input_tokens"]
            == counts["gen_ai.client.inference.operation.output_tokens"]
        )
    else:
        assert 8 == counts["gen_ai.client.token.usage"]  # input and output, per call
    before, after = result["chunks"]
    assert before == after >= 5  # both streams counted every chunk on their spans
    assert 1 == counts[expected.metric("gen_ai.client.operation.time_to_first_chunk")]
    assert after - 1 == counts[expected.metric("gen_ai.client.operation.time_per_output_chunk")]


def _clean_env() -> dict[str, str]:
    import os

    keep = "OTEL_SEMCONV_STABILITY_OPT_IN"  # the conventions version the test runs under
    env = {k: v for k, v in os.environ.items() if k == keep or not k.startswith(("OTEL_", "LC_TRACE_"))}
    env["PYTHONPATH"] = str(REPO)
    return env
