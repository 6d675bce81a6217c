"""
Agent, tool and retrieval metrics, on in both conventions versions (new names, so additive):
``gen_ai.invoke_agent.duration``, ``.inference_calls`` and ``.tool_calls`` (gen-ai-metrics.md,
"Generative AI agent metrics"), ``gen_ai.execute_tool.duration`` (execute-tool.md, "Metrics")
and ``gen_ai.retrieval.duration`` (retrieval.md, "Metrics"), from real LangGraph agents, tools
and retrievers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.agents import AgentAction
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from lc_trace import AsyncTraceHandler, TraceHandler
from lc_trace.testing import FakeChatModel
from tests.conftest import MODES, call, spans_by_name
from tests.conventions import points
from tests.spans.test_spans import FlowerRetriever, broken_vase, flower_price


def calling(*tools: str) -> AIMessage:
    """A model answer that calls *tools*, one call each."""
    return AIMessage(
        content="",
        tool_calls=[{"id": f"call_{i}", "name": name, "args": {"flower": "rose"}} for i, name in enumerate(tools)],
    )


def by_agent(reader: InMemoryMetricReader, name: str) -> dict[str, Any]:
    """The metric's points, keyed by the agent they name."""
    return {p.attributes.get("gen_ai.agent.name"): p for p in points(reader, name)}


@pytest.mark.parametrize("mode", MODES)
def test_an_agent_records_its_duration_and_the_calls_it_made(mode, make_handler, meter_provider, reader, exporter):
    """A ReAct agent that asks the model three times and runs three tools (two in one turn): one duration equal to its span's, 3 inference calls, 3 tool calls."""
    model = FakeChatModel(responses=[calling("flower_price"), calling("flower_price", "flower_price"), "3.50 each."])
    agent = create_agent(model, [flower_price], name="florist")
    handler = make_handler(TraceHandler if mode == "invoke" else AsyncTraceHandler, meter_provider=meter_provider)
    call(agent, {"messages": [("human", "Price of roses?")]}, {"callbacks": [handler]}, mode)

    span = spans_by_name(exporter)["invoke_agent florist"]
    (duration,) = points(reader, "gen_ai.invoke_agent.duration")
    assert {"gen_ai.agent.name": "florist", "gen_ai.request.model": "fake-chat-1"} == dict(duration.attributes)
    assert pytest.approx((span.end_time - span.start_time) / 1e9) == duration.sum
    assert (0.1, 0.2, 0.4) == tuple(duration.explicit_bounds[:3])
    (inference,) = points(reader, "gen_ai.invoke_agent.inference_calls")
    (tools,) = points(reader, "gen_ai.invoke_agent.tool_calls")
    assert (3, 1, {"gen_ai.agent.name": "florist"}) == (inference.sum, inference.count, dict(inference.attributes))
    assert (3, 1) == (tools.sum, tools.count)
    assert (1, 2, 4, 8, 16, 32, 64, 128) == tuple(tools.explicit_bounds)
    (tool_time,) = points(reader, "gen_ai.execute_tool.duration")
    assert 3 == tool_time.count
    assert {"gen_ai.tool.name": "flower_price", "gen_ai.tool.type": "function", "gen_ai.agent.name": "florist"} == dict(
        tool_time.attributes
    )


def test_a_sub_agents_calls_count_for_the_sub_agent(make_handler, meter_provider, reader):
    """An agent whose tool runs another agent: the inner agent's model and tool calls are its own; the outer counts the tool call that ran it."""
    inner = create_agent(
        FakeChatModel(responses=[calling("flower_price"), "Roses: 3.50."]), [flower_price], name="pricer"
    )

    @tool
    def ask_pricer(flower: str) -> str:
        """Ask the pricing agent."""
        return str(inner.invoke({"messages": [("human", f"Price of {flower}?")]})["messages"][-1].content)

    outer = create_agent(FakeChatModel(responses=[calling("ask_pricer"), "It is 3.50."]), [ask_pricer], name="shop")
    outer.invoke({"messages": [("human", "Roses?")]}, {"callbacks": [make_handler(meter_provider=meter_provider)]})

    inference = {name: p.sum for name, p in by_agent(reader, "gen_ai.invoke_agent.inference_calls").items()}
    tools = {name: p.sum for name, p in by_agent(reader, "gen_ai.invoke_agent.tool_calls").items()}
    assert {"shop": 2, "pricer": 2} == inference
    assert {"shop": 1, "pricer": 1} == tools
    tool_agents = {
        p.attributes["gen_ai.tool.name"]: p.attributes.get("gen_ai.agent.name")
        for p in points(reader, "gen_ai.execute_tool.duration")
    }
    assert {"ask_pricer": "shop", "flower_price": "pricer"} == tool_agents


def test_parallel_tool_calls_on_threads_are_all_counted(make_handler, meter_provider, reader):
    """Eight tool calls of one turn run on LangGraph's thread pool: all eight counted, none lost to a race."""
    model = FakeChatModel(responses=[calling(*["flower_price"] * 8), "Done."])
    agent = create_agent(model, [flower_price], name="florist")
    for _ in range(5):
        agent.invoke(
            {"messages": [("human", "Eight roses?")]}, {"callbacks": [make_handler(meter_provider=meter_provider)]}
        )
    (tools,) = points(reader, "gen_ai.invoke_agent.tool_calls")
    assert (40, 5) == (tools.sum, tools.count)


def test_a_failing_tool_fails_its_agent_and_both_carry_error_type(make_handler, meter_provider, reader):
    """A tool that raises fails its agent: both durations carry error.type, and the failed tool call still counts."""
    vase = AIMessage(content="", tool_calls=[{"id": "call_1", "name": "broken_vase", "args": {"size": "XL"}}])
    agent = create_agent(FakeChatModel(responses=[vase]), [broken_vase], name="florist")
    with pytest.raises(RuntimeError):
        agent.invoke({"messages": [("human", "Vase?")]}, {"callbacks": [make_handler(meter_provider=meter_provider)]})
    (tool_time,) = points(reader, "gen_ai.execute_tool.duration")
    assert ("RuntimeError", "broken_vase", "florist") == (
        tool_time.attributes["error.type"],
        tool_time.attributes["gen_ai.tool.name"],
        tool_time.attributes["gen_ai.agent.name"],
    )
    (duration,) = points(reader, "gen_ai.invoke_agent.duration")
    assert "RuntimeError" == duration.attributes["error.type"]
    assert (1, 1) == (
        points(reader, "gen_ai.invoke_agent.inference_calls")[0].sum,
        points(reader, "gen_ai.invoke_agent.tool_calls")[0].sum,
    )


def test_an_agent_made_so_by_its_actions_counts_its_calls(make_handler, meter_provider, reader):
    """A chain that reports an agent action (AgentExecutor's way) is an agent: the model and tool calls it made count for it; a plain chain records no agent metric."""
    model = FakeChatModel(responses=["I will look up the price."])

    def legacy_agent(question: str, run_manager: Any) -> str:
        children = {"callbacks": run_manager.get_child()}
        model.invoke(question, children)
        run_manager.on_agent_action(AgentAction(tool="flower_price", tool_input={"flower": "rose"}, log=""))
        return flower_price.invoke({"flower": "rose"}, children)

    handler = make_handler(meter_provider=meter_provider)
    RunnableLambda(lambda q: q, name="plain").invoke("price?", {"callbacks": [handler]})
    assert [] == points(reader, "gen_ai.invoke_agent.duration")
    RunnableLambda(legacy_agent, name="legacy").invoke("price?", {"callbacks": [handler]})
    (inference,) = points(reader, "gen_ai.invoke_agent.inference_calls")
    (tools,) = points(reader, "gen_ai.invoke_agent.tool_calls")
    assert ("legacy", 1, 1) == (inference.attributes["gen_ai.agent.name"], inference.sum, tools.sum)


def test_a_retriever_records_its_duration(make_handler, meter_provider, reader):
    """Each retrieval is one gen_ai.retrieval.duration point in seconds; a failed one carries error.type."""
    handler = make_handler(meter_provider=meter_provider)
    FlowerRetriever().invoke("roses", {"callbacks": [handler]})
    with pytest.raises(LookupError):
        asyncio.run(FlowerRetriever().ainvoke("thorns", {"callbacks": [handler]}))
    found = {p.attributes.get("error.type"): p for p in points(reader, "gen_ai.retrieval.duration")}
    assert {None, "LookupError"} == set(found)
    assert {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "flower"} == dict(found[None].attributes)
    assert 1 == found[None].count


def test_without_a_meter_provider_agents_and_tools_record_nothing_and_cost_nothing(make_handler, exporter):
    """No meter provider: the agent still runs and its spans are whole; nothing is counted as an internal error."""
    agent = create_agent(FakeChatModel(responses=[calling("flower_price"), "3.50."]), [flower_price], name="florist")
    handler = make_handler()
    agent.invoke({"messages": [("human", "Rose?")]}, {"callbacks": [handler]})
    assert "invoke_agent florist" in spans_by_name(exporter)
    assert 0 == handler.stats.internal_errors
