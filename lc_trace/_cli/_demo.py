"""
The flower shop (花店) behind ``lc-trace demo``: a small LangChain app that needs no API key.

It is also an example to read: every kind of run lc_trace traces happens here once, built
from real langchain-core runnables around :class:`lc_trace.testing.FakeChatModel`:

* a streamed ``prompt | model | parser`` chain (the model reports token usage);
* an agent loop: the model asks for tools, real ``@tool`` functions run, the model answers;
  one tool fails and the loop carries on, as a real agent would;
* a retriever over a few in-memory documents, asked three questions at once (``asyncio.gather``);
* custom events, from sync and from async code.
"""

from __future__ import annotations

import asyncio
from typing import Any, TextIO

from langchain_core.agents import AgentAction, AgentFinish
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForChainRun, CallbackManagerForRetrieverRun
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda, RunnablePassthrough
from langchain_core.tools import tool

from lc_trace.testing import FakeChatModel

__all__ = ["run_demo"]

CATALOG = [
    Document("Red roses say love; a dozen is the classic Valentine's bouquet.", metadata={"flower": "rose"}),
    Document("White lilies stand for purity and suit weddings and sympathy.", metadata={"flower": "lily"}),
    Document("Sunflowers stand for loyalty and last a week in a vase.", metadata={"flower": "sunflower"}),
    Document("Pink carnations are the flower of Mother's Day.", metadata={"flower": "carnation"}),
]
PRICES = {"rose": 5.0, "lily": 8.0, "sunflower": 6.5, "carnation": 3.0}


class FlowerCatalog(BaseRetriever):
    """
    Finds catalog entries that share a word with the question: a retriever with no vector store.
    """

    documents: list[Document]
    k: int = 2

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        asked = _words(query)
        return [d for d in self.documents if asked & _words(d.page_content)][: self.k]


def _words(text: str) -> set[str]:
    return {w.strip("?!.,;'").lower().removesuffix("s") for w in text.split() if len(w) > 3}


@tool
def flower_price(flower: str) -> float:
    """Price of one stem of a flower, in yuan."""
    return PRICES[flower]


@tool
def check_stock(flower: str) -> int:
    """Stems of a flower in the shop today."""
    return {"rose": 40, "lily": 12}.get(flower, 0)


@tool
def book_delivery(address: str) -> str:
    """Book a courier to deliver today's order."""
    raise ConnectionError(f"courier service unreachable (address: {address})")


TOOLS = {t.name: t for t in (flower_price, check_stock, book_delivery)}


def _call(name: str, call_id: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def _florist_agent(question: str, run_manager: CallbackManagerForChainRun, config: RunnableConfig) -> str:
    """
    The agent loop written out: ask the model, run the tools it asks for, feed back results.
    Reporting each step as an agent action is what makes lc_trace call this run an agent.
    """
    model = FakeChatModel(
        responses=[
            AIMessage(
                "",
                tool_calls=[
                    _call("flower_price", "call_1", flower="rose"),
                    _call("check_stock", "call_2", flower="rose"),
                ],
            ),
            AIMessage("", tool_calls=[_call("book_delivery", "call_3", address="12 Garden Road")]),
            "Twelve roses are 60 yuan and in stock; our courier is down, so please collect them today.",
        ]
    )
    messages: list[BaseMessage] = [HumanMessage(question)]
    for _ in range(5):
        reply = model.invoke(messages, config)
        messages.append(reply)
        if not reply.tool_calls:
            run_manager.on_agent_finish(AgentFinish({"output": reply.content}, str(reply.content)))
            return str(reply.content)
        for call in reply.tool_calls:
            run_manager.on_agent_action(AgentAction(call["name"], call["args"], f"calling {call['name']}"))
            try:
                messages.append(TOOLS[call["name"]].invoke(call, config))
            except ConnectionError as exc:  # a tool failing is news for the model, not a crash
                messages.append(ToolMessage(f"error: {exc}", tool_call_id=call["id"], status="error"))
        dispatch_custom_event("order_progress", {"messages": len(messages)}, config=config)
    return "Sorry, I could not finish the order."


async def _note_question(question: str, config: RunnableConfig) -> str:
    await adispatch_custom_event("question_received", {"question": question}, config=config)
    return question


def _join_notes(documents: list[Document]) -> str:
    return "\n".join(d.page_content for d in documents)


def _ask_the_catalog_chain() -> Runnable[str, str]:
    """
    Retrieval-augmented answers: the catalog finds documents, the model answers from them.
    """
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "You are a helpful florist. Answer from these notes:\n{context}"),
            ("human", "{question}"),
        ]
    )
    model = FakeChatModel(responses=["Roses, for love.", "Lilies suit a wedding.", "Sunflowers last about a week."])
    retriever = FlowerCatalog(documents=CATALOG)
    context = {"context": retriever | RunnableLambda(_join_notes, name="join_notes"), "question": RunnablePassthrough()}
    chain = RunnableLambda(_note_question, name="note_question") | context | prompt | model | StrOutputParser()
    return chain.with_config(run_name="ask_the_catalog")


def _greeting_card_chain() -> Runnable[dict[str, str], str]:
    prompt = ChatPromptTemplate.from_template("Write a one-line greeting card to go with {flower}.")
    model = FakeChatModel(responses=["May these sunflowers bring you a week of sunshine!"], delay_s=0.002)
    return (prompt | model | StrOutputParser()).with_config(run_name="greeting_card")


async def _busy_morning(config: RunnableConfig) -> list[str]:
    chain = _ask_the_catalog_chain()
    questions = ["Which flower says love?", "What suits a wedding?", "How long do sunflowers last?"]
    return list(await asyncio.gather(*(chain.ainvoke(q, config) for q in questions)))


def run_demo(handler: BaseCallbackHandler, out: TextIO | None = None) -> None:
    """
    Run the whole shop once with *handler* attached; write the shop's side of it to *out*.

    Each top-level call is its own trace: one streamed card, one agent order, three catalog
    questions answered concurrently.
    """
    config: RunnableConfig = {"callbacks": [handler], "metadata": {"shop": "花店", "session_id": "demo"}}

    def say(text: str) -> None:
        if out is not None:
            print(text, file=out)

    card = "".join(_greeting_card_chain().stream({"flower": "sunflowers"}, config))
    say(f"card:  {card}")
    agent = RunnableLambda(_florist_agent, name="florist_agent")
    say(f"order: {agent.invoke('Can I have twelve roses delivered to 12 Garden Road?', config)}")
    for answer in asyncio.run(_busy_morning(config)):
        say(f"ask:   {answer}")
