"""
The five timed scenarios, built from real langchain-core runnables and lc_trace's
FakeChatModel, so every contender sees exactly the callbacks a real app would produce.

Each scenario gives a sync and an async call taking the callbacks to attach (empty for the
bare chain and for instrumentors, which attach themselves). Events per call are counted by a
handler that counts every callback (``count_events``), never assumed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.tools import BaseTool, tool

from lc_trace.testing import FakeChatModel

__all__ = ["SCENARIOS", "Case", "CountingHandler", "Scenario", "count_events"]

Callbacks = list[BaseCallbackHandler]
GATHER_CALLS = 1_000
STREAM_CHUNKS = 200
NESTED_DEPTH = 10


@dataclass
class Case:
    """
    One built scenario: ``call`` runs it once under ``invoke``, ``acall`` under ``ainvoke``.
    """

    call: Callable[[Callbacks], Any]
    acall: Callable[[Callbacks], Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class Scenario:
    """
    A named scenario; ``build`` makes fresh objects (each process builds its own).
    """

    key: str
    title: str
    build: Callable[[], Case]
    sync_label: str = "invoke"
    async_label: str = "ainvoke"


def _config(callbacks: Callbacks) -> RunnableConfig:
    return {"callbacks": callbacks} if callbacks else {}


# -- 1. prompt | chat model | parser ---------------------------------------------------------


def _chain() -> Runnable[dict[str, str], str]:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a helpful florist."), ("user", "Tell me about {flower} in one line.")]
    )
    model = FakeChatModel(responses=["Roses are red, fragrant and sold by the dozen."])
    return prompt | model | StrOutputParser()


def build_chain() -> Case:
    chain = _chain()
    inputs = {"flower": "rose"}
    return Case(
        call=lambda cb: chain.invoke(inputs, _config(cb)),
        acall=lambda cb: chain.ainvoke(inputs, _config(cb)),
    )


# -- 2. ten runnables nested in an outer one -------------------------------------------------


def _level(index: int, inner: Runnable[int, int] | None) -> Runnable[int, int]:
    def func(x: int, config: RunnableConfig) -> int:
        return inner.invoke(x + 1, config) if inner is not None else x + 1

    async def afunc(x: int, config: RunnableConfig) -> int:
        return await inner.ainvoke(x + 1, config) if inner is not None else x + 1

    return RunnableLambda(func, afunc=afunc, name=f"level_{index}")


def build_nested() -> Case:
    runnable: Runnable[int, int] | None = None
    for index in range(NESTED_DEPTH, -1, -1):  # level_0 (outer) holds ten levels inside it
        runnable = _level(index, runnable)
    assert runnable is not None
    outer = runnable
    return Case(call=lambda cb: outer.invoke(0, _config(cb)), acall=lambda cb: outer.ainvoke(0, _config(cb)))


# -- 3. a streaming chat model, 200 chunks ---------------------------------------------------


def build_stream() -> Case:
    words = " ".join(f"word{i}" for i in range(STREAM_CHUNKS - 1))  # + the final usage chunk
    model = FakeChatModel(responses=[words], streaming=True)
    messages: list[BaseMessage] = [HumanMessage("Write two hundred words about tulips.")]
    return Case(
        call=lambda cb: model.invoke(messages, _config(cb)),
        acall=lambda cb: model.ainvoke(messages, _config(cb)),
    )


# -- 4. a tool-calling agent loop: model, tools, model ---------------------------------------


@tool
def flower_price(flower: str) -> str:
    """The price of one stem of a flower, in euros."""
    return f"{flower}: 3.20"


@tool
def flower_stock(flower: str) -> str:
    """How many stems of a flower are in stock."""
    return f"{flower}: 42"


_TOOLS: dict[str, BaseTool] = {t.name: t for t in (flower_price, flower_stock)}


def _agent_model() -> FakeChatModel:
    calls = AIMessage(
        content="",
        tool_calls=[
            {"name": "flower_price", "args": {"flower": "rose"}, "id": "call_1", "type": "tool_call"},
            {"name": "flower_stock", "args": {"flower": "rose"}, "id": "call_2", "type": "tool_call"},
        ],
    )
    return FakeChatModel(responses=[calls, "Roses are 3.20 a stem and 42 are in stock."])


def build_agent() -> Case:
    model = _agent_model()
    bound = model.bind_tools(list(_TOOLS.values()))

    def loop(question: str, config: RunnableConfig) -> str:
        messages: list[BaseMessage] = [HumanMessage(question)]
        while True:
            answer = bound.invoke(messages, config)
            messages.append(answer)
            if not answer.tool_calls:
                return str(answer.content)
            for call in answer.tool_calls:
                result = _TOOLS[call["name"]].invoke(call, config)
                assert isinstance(result, ToolMessage)
                messages.append(result)

    async def aloop(question: str, config: RunnableConfig) -> str:
        messages: list[BaseMessage] = [HumanMessage(question)]
        while True:
            answer = await bound.ainvoke(messages, config)
            messages.append(answer)
            if not answer.tool_calls:
                return str(answer.content)
            for call in answer.tool_calls:
                messages.append(await _TOOLS[call["name"]].ainvoke(call, config))

    agent = RunnableLambda(loop, afunc=aloop, name="flower_agent")
    question = "What do roses cost, and are there any?"
    return Case(
        call=lambda cb: agent.invoke(question, _config(cb)),
        acall=lambda cb: agent.ainvoke(question, _config(cb)),
    )


# -- 5. 1,000 concurrent calls ---------------------------------------------------------------


def build_gather() -> Case:
    chain = _chain()
    inputs = [{"flower": f"rose {i}"} for i in range(GATHER_CALLS)]

    async def gather(cb: Callbacks) -> Any:
        config = _config(cb)
        return await asyncio.gather(*(chain.ainvoke(x, config) for x in inputs))

    return Case(call=lambda cb: chain.batch(inputs, _config(cb)), acall=gather)


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario("chain", "prompt | chat model | parser", build_chain),
        Scenario("nested", "ten nested runnables", build_nested),
        Scenario("stream", f"streaming chat model, {STREAM_CHUNKS} chunks", build_stream),
        Scenario("agent", "tool-calling agent loop (model, 2 tools, model)", build_agent),
        Scenario(
            "gather",
            f"{GATHER_CALLS:,} concurrent calls of scenario 1",
            build_gather,
            sync_label="batch",
            async_label="gather",
        ),
    )
}


# -- counting ---------------------------------------------------------------------------------


class CountingHandler(BaseCallbackHandler):
    """
    Counts every callback LangChain delivers: the "events" of "µs per event".
    """

    run_inline = True

    def __init__(self) -> None:
        self.events = 0

    def _count(self, *args: Any, **kwargs: Any) -> None:
        self.events += 1

    on_chain_start = on_chain_end = on_chain_error = _count
    on_chat_model_start = on_llm_start = on_llm_new_token = on_llm_end = on_llm_error = _count
    on_tool_start = on_tool_end = on_tool_error = _count
    on_retriever_start = on_retriever_end = on_retriever_error = _count
    on_text = on_retry = on_custom_event = on_agent_action = on_agent_finish = _count


def count_events(case: Case, mode: str) -> int:
    """
    Events one call of *case* delivers to a handler, under ``sync`` or ``async``.
    """
    counter = CountingHandler()
    if mode == "sync":
        case.call([counter])
    else:
        asyncio.run(case.acall([counter]))
    return counter.events
