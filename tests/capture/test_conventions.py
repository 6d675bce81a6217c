"""
The switch between the GenAI conventions versions, and one test per row of the v1.41.0 -> v0.1.0
delta (docs/conventions.md), each checking the v0.1.0 name, type and value against the section
of ``open-telemetry/semantic-conventions-genai`` v0.1.0 it cites, beside what v1.41.0 gives.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Sum
from opentelemetry.trace import SpanKind

from lc_trace import AsyncTraceHandler, TraceHandler
from lc_trace.testing import FakeChatModel, read_log
from tests.conftest import flower_chain, spans_by_name
from tests.conventions import metric, points
from tests.spans.test_spans import FlowerRetriever, flower_price

V1_41, LATEST = "v1.41.0", "v0.1.0"
TOKENS = {
    "input_tokens": 12,
    "output_tokens": 7,
    "total_tokens": 19,
    "input_token_details": {"cache_read": 4, "cache_creation": 3, "audio": 2},
    "output_token_details": {"reasoning": 5, "audio": 1},
}


def detailed_call(make_handler: Any, reader: InMemoryMetricReader, conventions: str, **bound: Any) -> Any:
    """One chat call reporting cache, reasoning and audio tokens; its span."""
    handler = make_handler(meter_provider=MeterProvider(metric_readers=[reader]), genai_conventions=conventions)
    model = FakeChatModel(responses=[AIMessage(content="Tulips.", usage_metadata=TOKENS)])
    (model.bind(**bound) if bound else model).invoke("Spring flowers?", {"callbacks": [handler]})
    return handler


def florist_asks_one_price(handler: Any) -> None:
    """A LangGraph agent ("florist") whose model calls its one tool once, then answers."""
    call_price = {"id": "c1", "name": "flower_price", "args": {"flower": "rose"}}
    model = FakeChatModel(responses=[AIMessage(content="", tool_calls=[call_price]), "3.50"])
    create_agent(model, [flower_price], name="florist").invoke(
        {"messages": [("human", "Rose?")]}, {"callbacks": [handler]}
    )


# --- the switch -------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [TraceHandler, AsyncTraceHandler])
def test_the_default_is_v1_41_and_the_argument_or_the_opt_in_chooses_v0_1(cls, monkeypatch, log_path):
    """No choice: v1.41.0 (nothing a user built on breaks). The argument, or the opt-in value among others in OTEL_SEMCONV_STABILITY_OPT_IN, chooses v0.1.0; the argument wins."""
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    built = [cls(log_path=log_path)]
    assert V1_41 == built[0].genai_conventions
    built.append(cls(log_path=log_path, genai_conventions=LATEST))
    assert LATEST == built[-1].genai_conventions
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, Gen_AI_Latest_Experimental ")
    built.append(cls(log_path=log_path))
    assert LATEST == built[-1].genai_conventions
    built.append(cls(log_path=log_path, genai_conventions=V1_41))
    assert V1_41 == built[-1].genai_conventions
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")
    built.append(cls(log_path=log_path))
    assert V1_41 == built[-1].genai_conventions
    for handler in built:
        handler.close()


def test_an_unknown_version_is_refused_with_the_choices(log_path):
    """A typo in the argument stops at construction, naming both versions and the variable."""
    with pytest.raises(ValueError) as refused:
        TraceHandler(log_path=log_path, genai_conventions="0.1")
    message = str(refused.value)
    assert "'0.1'" in message and "'v1.41.0'" in message and "'v0.1.0'" in message
    assert "OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental" in message


# --- the delta, row by row --------------------------------------------------------------------


@pytest.mark.parametrize("conventions", [V1_41, LATEST])
def test_row_inference_metrics_renamed(conventions, make_handler, reader):
    """client-inference.md, "Metric: gen_ai.client.inference.duration": the inference duration's new name; unit s, the same buckets, operation/provider/models attributes; gen_ai.client.operation.duration is no longer reported for inference."""
    detailed_call(make_handler, reader, conventions)
    new, old = "gen_ai.client.inference.duration", "gen_ai.client.operation.duration"
    name, absent = (new, old) if conventions == LATEST else (old, new)
    (point,) = points(reader, name)
    assert [] == points(reader, absent)
    assert "s" == metric(reader, name).unit
    assert 0.01 == point.explicit_bounds[0] and 81.92 == point.explicit_bounds[-1]
    assert {"gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model"} == set(
        point.attributes
    )


def test_row_token_usage_counters_by_kind_and_modality(make_handler, reader):
    """client-inference.md, "Metric: gen_ai.client.inference.usage.*": five monotonic int counters in {token} with gen_ai.token.modality (audio apart, as LangChain reports it; the rest "unknown"); gen_ai.client.token.usage and gen_ai.token.type are gone."""
    detailed_call(make_handler, reader, LATEST)
    expected = {
        "input_tokens": {"audio": 2, "unknown": 10},
        "output_tokens": {"audio": 1, "unknown": 6},
        "cache_read.input_tokens": {"unknown": 4},
        "cache_write.input_tokens": {"unknown": 3},
        "reasoning.output_tokens": {"unknown": 5},
    }
    for kind, by_modality in expected.items():
        name = f"gen_ai.client.inference.usage.{kind}"
        found = metric(reader, name)
        assert ("{token}", True) == (found.unit, isinstance(found.data, Sum) and found.data.is_monotonic), name
        values = {p.attributes["gen_ai.token.modality"]: p.value for p in found.data.data_points}
        assert by_modality == values, name
        assert all(type(v) is int for v in values.values())
        assert all("error.type" not in p.attributes for p in found.data.data_points)
    assert [] == points(reader, "gen_ai.client.token.usage")


def test_row_per_call_token_histograms(make_handler, reader):
    """client-inference.md, "Metric: gen_ai.client.inference.operation.input_tokens": per-call histograms with the token buckets, no modality, not recorded for a call that failed."""
    handler = detailed_call(make_handler, reader, LATEST)
    with pytest.raises(ConnectionError):
        FakeChatModel(fail_with=ConnectionError("503")).invoke("hi", {"callbacks": [handler]})
    for kind, value in (("input", 12), ("output", 7)):
        (point,) = points(reader, f"gen_ai.client.inference.operation.{kind}_tokens")
        assert (value, 1) == (point.sum, point.count)
        assert "gen_ai.token.modality" not in point.attributes
        assert (1, 67108864) == (point.explicit_bounds[0], point.explicit_bounds[-1])


@pytest.mark.parametrize("conventions", [V1_41, LATEST])
def test_row_cache_write_and_audio_usage_attributes(conventions, make_handler, reader, exporter, log_path):
    """client-inference.md, "Span: gen_ai.client.inference": gen_ai.usage.cache_creation.input_tokens is now gen_ai.usage.cache_write.input_tokens (int); gen_ai.usage.audio.{input,output}_tokens are new; on the span and in the log line alike."""
    handler = detailed_call(make_handler, reader, conventions)
    handler.flush()
    (span,) = exporter.get_finished_spans()
    (end,) = [line for line in read_log(log_path) if line["event.action"] == "llm_end"]
    for where in (span.attributes, end):
        if conventions == LATEST:
            assert (3, None) == (
                where.get("gen_ai.usage.cache_write.input_tokens"),
                where.get("gen_ai.usage.cache_creation.input_tokens"),
            )
            assert (2, 1) == (where["gen_ai.usage.audio.input_tokens"], where["gen_ai.usage.audio.output_tokens"])
        else:
            assert (3, None) == (
                where.get("gen_ai.usage.cache_creation.input_tokens"),
                where.get("gen_ai.usage.cache_write.input_tokens"),
            )
            assert "gen_ai.usage.audio.input_tokens" not in where
        assert (4, 5) == (where["gen_ai.usage.cache_read.input_tokens"], where["gen_ai.usage.reasoning.output_tokens"])


@pytest.mark.parametrize(("top_k", "v1_41", "v0_1"), [(40, 40.0, 40), (40.0, 40.0, 40), (0.5, 0.5, None)])
def test_row_request_top_k_is_an_int(top_k, v1_41, v0_1, make_handler, exporter):
    """CHANGELOG v0.1.0 (#217): gen_ai.request.top_k changes from double to int; a value that is not a whole number is no top-K and is left out."""
    for conventions in (V1_41, LATEST):
        detailed_call(make_handler, InMemoryMetricReader(), conventions, top_k=top_k)
    old, new = (s.attributes.get("gen_ai.request.top_k") for s in exporter.get_finished_spans())
    assert (v1_41, v0_1) == (old, new)
    assert float is type(old) and (new is None or int is type(new))


@pytest.mark.parametrize("conventions", [V1_41, LATEST])
def test_row_retrieval_span_name_and_kind(conventions, make_handler, exporter):
    """retrieval.md, "Span: gen_ai.retrieval": span name {gen_ai.operation.name}, kind INTERNAL (v1.41.0: "retrieval {data source}", CLIENT)."""
    FlowerRetriever().invoke("roses", {"callbacks": [make_handler(genai_conventions=conventions)]})
    (span,) = exporter.get_finished_spans()
    assert "retrieval" == span.attributes["gen_ai.operation.name"]
    if conventions == LATEST:
        assert ("retrieval", SpanKind.INTERNAL) == (span.name, span.kind)
    else:
        assert ("retrieval FlowerRetriever", SpanKind.CLIENT) == (span.name, span.kind)


@pytest.mark.parametrize("conventions", [V1_41, LATEST])
def test_row_system_instructions_stay_in_the_chat_history(conventions, make_handler, exporter):
    """client-inference.md, gen_ai.system_instructions: "Instructions that are part of the chat history SHOULD be recorded in gen_ai.input.messages instead": v0.1.0 leaves LangChain's system messages there only; v1.41.0 also copied them."""
    flower_chain().invoke({"who": "mom"}, {"callbacks": [make_handler(genai_conventions=conventions)]})
    chat = spans_by_name(exporter)["chat fake-chat-1"]
    history = json.loads(chat.attributes["gen_ai.input.messages"])
    assert "system" == history[0]["role"]
    copied = chat.attributes.get("gen_ai.system_instructions")
    assert (copied is None) == (conventions == LATEST)


@pytest.mark.parametrize("conventions", [V1_41, LATEST])
def test_row_finish_reason_per_message_deprecated(conventions, make_handler, exporter):
    """client-inference.md, gen_ai.output.messages: the message's finish_reason is deprecated for gen_ai.response.finish_reasons, which keeps one reason per choice."""
    flower_chain().invoke({"who": "mom"}, {"callbacks": [make_handler(genai_conventions=conventions)]})
    chat = spans_by_name(exporter)["chat fake-chat-1"]
    (message,) = json.loads(chat.attributes["gen_ai.output.messages"])
    assert ("finish_reason" in message) == (conventions == V1_41)
    assert ("stop",) == chat.attributes["gen_ai.response.finish_reasons"]


@pytest.mark.parametrize("conventions", [V1_41, LATEST])
def test_row_finish_reasons_say_error_for_a_call_that_never_finished(conventions, make_handler, exporter):
    """client-inference.md, gen_ai.response.finish_reasons: "If a finish reason was expected but not received, for example because generation failed ... SHOULD report error for that position"; v1.41.0 left it out."""
    with pytest.raises(ConnectionError):
        FakeChatModel(fail_with=ConnectionError("503")).bind(n=2).invoke(
            "hi", {"callbacks": [make_handler(genai_conventions=conventions)]}
        )
    (span,) = exporter.get_finished_spans()
    reasons = span.attributes.get("gen_ai.response.finish_reasons")
    assert (("error", "error") if conventions == LATEST else None) == reasons


@pytest.mark.parametrize("conventions", [V1_41, LATEST])
def test_row_agent_span_keeps_to_its_attributes(conventions, make_handler, exporter):
    """client-invoke-agent (gen_ai.invoke_agent.internal): gen_ai.agent.id, gen_ai.agent.version and gen_ai.provider.name are not on an internal agent span; operation and agent name are."""
    florist_asks_one_price(make_handler(genai_conventions=conventions))
    agent = spans_by_name(exporter)["invoke_agent florist"]
    assert ("invoke_agent", "florist") == (
        agent.attributes["gen_ai.operation.name"],
        agent.attributes["gen_ai.agent.name"],
    )
    assert not {"gen_ai.agent.id", "gen_ai.agent.version", "gen_ai.provider.name"} & set(agent.attributes)


@pytest.mark.parametrize("conventions", [V1_41, LATEST])
def test_row_tool_span_names_its_agent(conventions, make_handler, exporter):
    """execute-tool.md, "Span: gen_ai.execute_tool": gen_ai.agent.name, "the human-readable name of the agent executing the tool", conditionally required when applicable: v0.1.0 sets it from the nearest agent."""
    florist_asks_one_price(make_handler(genai_conventions=conventions))
    tool = spans_by_name(exporter)["execute_tool flower_price"]
    assert ("florist" if conventions == LATEST else None) == tool.attributes.get("gen_ai.agent.name")
    assert ("execute_tool", SpanKind.INTERNAL) == (tool.attributes["gen_ai.operation.name"], tool.kind)
