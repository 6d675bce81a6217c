"""The tutorials' own examples lc_trace grew from, each with lc_trace added next to the user's handlers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler, adispatch_custom_event
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import RunnableLambda

from lc_trace import AsyncTraceHandler, TraceHandler
from lc_trace.testing import FakeChatModel
from tests.conftest import HANDLERS, log_lines, spans_by_name


class MyFlowerShopSyncHandler(BaseCallbackHandler):
    """The seeds' sync handler: prints each streamed token."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


class MyFlowerShopAsyncHandler(AsyncCallbackHandler):
    """The seeds' async handler: sleeps at start and end, as the tutorial's does."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0.01)
        self.seen.append("start")

    async def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        await asyncio.sleep(0.01)
        self.seen.append("end")


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_constructor_handlers_sync_and_async_with_streaming_agenerate(handler_cls, make_handler, exporter):
    """Seeds 000/002/003: ChatModel(streaming=True, callbacks=[sync, async, ours]) with agenerate: everyone gets their events."""
    sync_handler, async_handler = MyFlowerShopSyncHandler(), MyFlowerShopAsyncHandler()
    ours = make_handler(handler_cls)
    chat = FakeChatModel(
        responses=["Why did the rose blush? It saw the salad dressing."],
        streaming=True,
        callbacks=[sync_handler, async_handler, ours],
    )

    async def countdown(n: int) -> list[int]:
        ticks = []
        for i in range(n, 0, -1):
            ticks.append(i)
            await asyncio.sleep(0.005)
        return ticks

    async def main() -> Any:
        return await asyncio.gather(chat.agenerate([[HumanMessage(content="讲个笑话")]]), countdown(5))

    result, ticks = asyncio.run(main())
    assert [5, 4, 3, 2, 1] == ticks
    text = result.generations[0][0].text
    assert text == "".join(sync_handler.tokens)
    assert ["start", "end"] == async_handler.seen
    span = spans_by_name(exporter)["chat fake-chat-1"]
    assert True is span.attributes["gen_ai.request.stream"]
    assert len(sync_handler.tokens) == span.attributes["langchain.stream.chunk_count"]
    assert (
        '[{"role":"user","parts":[{"type":"text","content":"讲个笑话"}]}]' == span.attributes["gen_ai.input.messages"]
    )


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_token_counting_across_gather(handler_cls, make_handler, exporter):
    """Seed 000's get_openai_callback exercise: three concurrent agenerate calls; lc_trace's token totals add up."""
    ours = make_handler(handler_cls)
    llm = FakeChatModel(responses=["红色的玫瑰。", "Pink carnations for her.", "White lilies, always."])
    messages = [[SystemMessage(content="你是个花店小助手。"), HumanMessage(content="我姐姐喜欢什么颜色的花？")]]

    async def additional_interactions() -> list[Any]:
        return await asyncio.gather(*[llm.agenerate(messages, callbacks=[ours]) for _ in range(3)])

    results = asyncio.run(additional_interactions())
    reported = sum(r.generations[0][0].message.usage_metadata["total_tokens"] for r in results)
    spans = exporter.get_finished_spans()
    assert 3 == len({s.context.trace_id for s in spans})
    traced = sum(s.attributes["gen_ai.usage.input_tokens"] + s.attributes["gen_ai.usage.output_tokens"] for s in spans)
    assert reported == traced
    lines = [l for l in log_lines(ours) if l["event.action"] == "llm_end"]
    assert reported == sum(l["gen_ai.usage.input_tokens"] + l["gen_ai.usage.output_tokens"] for l in lines)


def test_custom_events_with_astream_events(make_handler, exporter):
    """Seed 003's adispatch_custom_event example: astream_events still yields every custom event, and lc_trace records them."""
    ours = make_handler(AsyncTraceHandler)

    @RunnableLambda
    async def foo(x: str) -> str:
        await adispatch_custom_event(name="event1", data={"x": x})
        await adispatch_custom_event(name="event2", data=5)
        await adispatch_custom_event(name="事件", data={"容疑者": "X", "被害者": "Y", "被害額": "$100"})
        return x

    async def main() -> list[dict[str, Any]]:
        return [e async for e in foo.astream_events("hello world", {"callbacks": [ours]}, version="v2")]

    events = asyncio.run(main())
    custom = [(e["name"], e["data"]) for e in events if e["event"] == "on_custom_event"]
    assert [
        ("event1", {"x": "hello world"}),
        ("event2", 5),
        ("事件", {"容疑者": "X", "被害者": "Y", "被害額": "$100"}),
    ] == custom
    span = spans_by_name(exporter)["foo"]
    assert ["event1", "event2", "事件"] == [e.attributes["langchain.event.name"] for e in span.events]
    assert '{"容疑者":"X","被害者":"Y","被害額":"$100"}' == span.events[2].attributes["langchain.event.data"]


def test_runtime_callbacks_reach_the_whole_chain_including_the_model(make_handler, exporter):
    """Seed 003 (callbacks_runtime.py): `prompt | llm` invoked with callbacks traces the chain and the model inside it."""
    from langchain_core.prompts import PromptTemplate

    ours = make_handler(TraceHandler)
    chain = PromptTemplate.from_template("1 + {number} = ") | FakeChatModel(responses=["3"])
    assert "3" == chain.invoke({"number": "2"}, config={"callbacks": [ours]}).content
    spans = spans_by_name(exporter)
    assert {"RunnableSequence", "PromptTemplate", "chat fake-chat-1"} == set(spans)
