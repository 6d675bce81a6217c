"""Spans: one per LangChain run, nested as the runs nest, named and attributed per the GenAI conventions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.agents import AgentAction, AgentFinish
from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.documents import Document
from langchain_core.messages import AIMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from lc_trace.testing import FakeChatModel
from tests.conftest import HANDLERS, MODES, call, flower_chain, log_lines, parent_name, spans_by_name


@pytest.mark.parametrize("handler_cls", HANDLERS)
@pytest.mark.parametrize("mode", MODES)
class TestChainSpans:
    def test_prompt_model_parser_nest_in_one_trace(self, handler_cls, mode, make_handler, exporter):
        """prompt | chat model | parser gives four spans in one trace, children under the sequence."""
        handler = make_handler(handler_cls)
        assert "A red rose." == call(flower_chain(), {"who": "mom"}, {"callbacks": [handler]}, mode)
        spans = spans_by_name(exporter)
        assert {"RunnableSequence", "ChatPromptTemplate", "chat fake-chat-1", "StrOutputParser"} == set(spans)
        assert 1 == len({s.context.trace_id for s in spans.values()})
        assert None is parent_name(spans["RunnableSequence"], exporter)
        for child in ("ChatPromptTemplate", "chat fake-chat-1", "StrOutputParser"):
            assert "RunnableSequence" == parent_name(spans[child], exporter)
        assert 0 == handler.open_runs

    def test_chat_span_carries_genai_attributes(self, handler_cls, mode, make_handler, exporter):
        """The chat span is CLIENT with operation, provider, requested and served model, params, usage."""
        handler = make_handler(handler_cls)
        call(flower_chain(), {"who": "mom"}, {"callbacks": [handler]}, mode)
        span = spans_by_name(exporter)["chat fake-chat-1"]
        attrs = dict(span.attributes)
        assert SpanKind.CLIENT == span.kind
        assert "chat" == attrs["gen_ai.operation.name"]
        assert "fake" == attrs["gen_ai.provider.name"]
        assert "fake-chat-1" == attrs["gen_ai.request.model"]
        assert "fake-chat-1-2026-11-01" == attrs["gen_ai.response.model"]
        assert 0.2 == attrs["gen_ai.request.temperature"]
        assert 256 == attrs["gen_ai.request.max_tokens"]
        assert ("stop",) == attrs["gen_ai.response.finish_reasons"]
        assert 8 == attrs["gen_ai.usage.input_tokens"]  # "You are a florist." + "Which flower for mom?"
        assert 3 == attrs["gen_ai.usage.output_tokens"]
        assert False is attrs["gen_ai.request.stream"]
        assert "chat_model" == attrs["langchain.run.type"]
        assert ("seq:step:2",) == attrs["langchain.tags"]
        assert (
            attrs["langchain.run.parent_id"]
            == dict(spans_by_name(exporter)["RunnableSequence"].attributes)["langchain.run.id"]
        )

    def test_metadata_and_conversation_id(self, handler_cls, mode, make_handler, exporter):
        """Scalar metadata becomes langchain.metadata.* strings; a session id is the conversation id."""
        handler = make_handler(handler_cls)
        config = {
            "callbacks": [handler],
            "metadata": {"session_id": "s-42", "shop": "north", "user": 7, "nested": {"x": 1}, "": "blank", "a.b": "c"},
        }
        call(flower_chain(), {"who": "mom"}, config, mode)
        for span in exporter.get_finished_spans():
            attrs = dict(span.attributes)
            assert "s-42" == attrs["gen_ai.conversation.id"]
            assert "north" == attrs["langchain.metadata.shop"]
            assert "7" == attrs["langchain.metadata.user"]
            assert "langchain.metadata.nested" not in attrs
            # Field names Elasticsearch can take: no trailing dot, no key both a value and an object.
            assert ("blank", "c") == (attrs["langchain.metadata._"], attrs["langchain.metadata.a_b"])


@pytest.mark.parametrize("handler_cls", HANDLERS)
class TestWaysToPassTheHandler:
    def test_with_config(self, handler_cls, make_handler, exporter):
        """A handler attached with .with_config traces the whole chain."""
        chain = flower_chain().with_config(callbacks=[make_handler(handler_cls)])
        chain.invoke({"who": "mom"})
        assert 4 == len(exporter.get_finished_spans())

    def test_constructor_gives_model_span_only(self, handler_cls, make_handler, exporter):
        """A handler given to the model's constructor sees only the model run: no chain span."""
        model = FakeChatModel(responses=["A tulip."], callbacks=[make_handler(handler_cls)])
        flower_chain(model).invoke({"who": "mom"})
        spans = exporter.get_finished_spans()
        assert ["chat fake-chat-1"] == [s.name for s in spans]
        assert spans[0].parent is None


@pytest.mark.parametrize("handler_cls", HANDLERS)
class TestContext:
    def test_root_nests_under_ambient_span(self, handler_cls, make_handler, tracing, exporter):
        """A root run's span is the child of the span current when it starts (e.g. a web request)."""
        handler = make_handler(handler_cls)
        tracer = tracing[0].get_tracer("app")
        with tracer.start_as_current_span("POST /bouquet") as request:
            flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
        spans = spans_by_name(exporter)
        assert request.get_span_context().span_id == spans["RunnableSequence"].parent.span_id
        assert {request.get_span_context().trace_id} == {s.context.trace_id for s in spans.values()}
        # The log says so too: the root's lines name the request's span, which is in no line of its own.
        roots = [line for line in log_lines(handler) if "langchain.run.parent_id" not in line]
        assert {format(request.get_span_context().span_id, "016x")} == {line["parent.id"] for line in roots}

    def test_async_root_nests_under_ambient_span(self, handler_cls, make_handler, tracing, exporter):
        """Under ainvoke too, the root nests under the caller's current span."""
        handler = make_handler(handler_cls)
        tracer = tracing[0].get_tracer("app")

        async def main() -> int:
            with tracer.start_as_current_span("POST /bouquet") as request:
                await flower_chain().ainvoke({"who": "mom"}, {"callbacks": [handler]})
                return request.get_span_context().span_id

        request_id = asyncio.run(main())
        assert request_id == spans_by_name(exporter)["RunnableSequence"].parent.span_id
        roots = [line for line in log_lines(handler) if "langchain.run.parent_id" not in line]
        assert {format(request_id, "016x")} == {line["parent.id"] for line in roots}

    def test_sequential_ainvokes_are_separate_traces(self, handler_cls, make_handler, exporter):
        """Ten awaited calls in one task are ten traces, and the caller's context is untouched."""
        handler = make_handler(handler_cls)
        chain = flower_chain()

        async def main() -> tuple[Any, Any]:
            before = otel_context.get_current()
            for i in range(10):
                await chain.ainvoke({"who": f"customer {i}"}, {"callbacks": [handler]})
            return before, otel_context.get_current()

        before, after = asyncio.run(main())
        roots = [s for s in exporter.get_finished_spans() if s.name == "RunnableSequence"]
        assert 10 == len({s.context.trace_id for s in roots})
        assert all(s.parent is None for s in roots)
        assert before == after
        assert not trace.get_current_span().get_span_context().is_valid


@pytest.mark.parametrize("handler_cls", HANDLERS)
class TestStreaming:
    def test_stream_records_chunks_time_to_first_chunk_and_usage(self, handler_cls, make_handler, exporter):
        """A streamed call says so, counts chunks, times the first, and takes usage from the final chunk."""
        handler = make_handler(handler_cls)
        chunks = list(
            flower_chain(FakeChatModel(responses=["A red rose for you."])).stream(
                {"who": "mom"}, {"callbacks": [handler]}
            )
        )
        assert "A red rose for you." == "".join(chunks)
        attrs = dict(spans_by_name(exporter)["chat fake-chat-1"].attributes)
        assert True is attrs["gen_ai.request.stream"]
        assert 6 == attrs["langchain.stream.chunk_count"]  # five words and the final usage chunk
        assert 0 <= attrs["gen_ai.response.time_to_first_chunk"] < 5
        assert (8, 5) == (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"])

    def test_astream_records_deferred_input(self, handler_cls, make_handler, exporter):
        """Streaming starts carry a placeholder; the chain span still gets the real input."""
        handler = make_handler(handler_cls)

        async def main() -> str:
            return "".join([c async for c in flower_chain().astream({"who": "grandma"}, {"callbacks": [handler]})])

        assert "A red rose." == asyncio.run(main())
        attrs = dict(spans_by_name(exporter)["RunnableSequence"].attributes)
        assert '{"who":"grandma"}' == attrs["langchain.input"]
        assert True is dict(spans_by_name(exporter)["chat fake-chat-1"].attributes)["gen_ai.request.stream"]


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_gather_gives_separate_traces_with_right_token_totals(handler_cls, make_handler, exporter):
    """The seeds' token count across asyncio.gather: each call its own trace, usage adding up exactly."""
    handler = make_handler(handler_cls)
    chain = flower_chain(FakeChatModel(responses=["One rose.", "Two red tulips.", "Three white lilies today."]))

    async def main() -> list[str]:
        return await asyncio.gather(
            *(chain.ainvoke({"who": f"sister {i}"}, {"callbacks": [handler]}) for i in range(30))
        )

    answers = asyncio.run(main())
    spans = exporter.get_finished_spans()
    traces = {s.context.trace_id for s in spans}
    assert 30 == len(traces)
    for trace_id in traces:
        assert 4 == len([s for s in spans if s.context.trace_id == trace_id])
    chat = [s for s in spans if s.name.startswith("chat")]
    expected_output = sum(len(a.split()) for a in answers)
    assert expected_output == sum(s.attributes["gen_ai.usage.output_tokens"] for s in chat)
    assert 30 * 9 == sum(s.attributes["gen_ai.usage.input_tokens"] for s in chat)  # 4 system + 5 human words


@pytest.mark.parametrize("handler_cls", HANDLERS)
@pytest.mark.parametrize("mode", MODES)
def test_custom_events_become_span_events_on_their_run(handler_cls, mode, make_handler, exporter):
    """dispatch_custom_event / adispatch_custom_event land as events on the dispatching run's span."""

    def pick(order: dict[str, Any]) -> str:
        dispatch_custom_event("stock_checked", {"flower": order["flower"], "in_stock": 12})
        return order["flower"]

    async def apick(order: dict[str, Any]) -> str:
        await adispatch_custom_event("stock_checked", {"flower": order["flower"], "in_stock": 12})
        return order["flower"]

    handler = make_handler(handler_cls)
    picker = RunnableLambda(pick, afunc=apick, name="pick_flower")
    call(picker, {"flower": "rose"}, {"callbacks": [handler]}, mode)
    span = spans_by_name(exporter)["pick_flower"]
    assert ["custom_event"] == [e.name for e in span.events]
    assert "stock_checked" == span.events[0].attributes["langchain.event.name"]
    assert '{"flower":"rose","in_stock":12}' == span.events[0].attributes["langchain.event.data"]


@tool
def flower_price(flower: str) -> str:
    """Price of one stem of a flower, in euros."""
    return {"rose": "3.50", "tulip": "1.20"}.get(flower, "unknown")


@pytest.mark.parametrize("handler_cls", HANDLERS)
@pytest.mark.parametrize("mode", MODES)
def test_tool_calling_agent_loop(handler_cls, mode, make_handler, exporter):
    """A real LangChain agent (create_agent, on LangGraph): model asks for a tool, the tool runs, the model answers; one trace."""
    from langchain.agents import create_agent

    model = FakeChatModel(
        responses=[
            AIMessage(
                content="", tool_calls=[{"id": "call_rose_1", "name": "flower_price", "args": {"flower": "rose"}}]
            ),
            "A rose costs 3.50 euros.",
        ]
    )
    agent = create_agent(model, [flower_price], name="florist")
    result = call(
        agent, {"messages": [("human", "How much is a rose?")]}, {"callbacks": [make_handler(handler_cls)]}, mode
    )
    assert "A rose costs 3.50 euros." == result["messages"][-1].content
    spans = exporter.get_finished_spans()
    assert 1 == len({s.context.trace_id for s in spans})
    tool_span = spans_by_name(exporter)["execute_tool flower_price"]
    attrs = dict(tool_span.attributes)
    assert ("flower_price", "call_rose_1", "function") == (
        attrs["gen_ai.tool.name"],
        attrs["gen_ai.tool.call.id"],
        attrs["gen_ai.tool.type"],
    )
    assert '{"flower":"rose"}' == attrs["gen_ai.tool.call.arguments"]
    assert '"3.50"' == attrs["gen_ai.tool.call.result"]
    assert "tools" == parent_name(tool_span, exporter)
    assert "invoke_agent florist" == parent_name(spans_by_name(exporter)["tools"], exporter)
    agent_span = spans_by_name(exporter)["invoke_agent florist"]
    assert ("invoke_agent", "florist", None) == (
        agent_span.attributes["gen_ai.operation.name"],
        agent_span.attributes["gen_ai.agent.name"],
        agent_span.parent,
    )
    chats = [s for s in spans if s.name == "chat fake-chat-1"]
    assert [("tool_calls",), ("stop",)] == [
        s.attributes["gen_ai.response.finish_reasons"] for s in sorted(chats, key=lambda s: s.start_time)
    ]


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_agent_actions_mark_the_run_as_an_agent(handler_cls, make_handler, exporter):
    """A run that reports agent actions becomes an invoke_agent span with the actions as events."""

    def agent_step(question: str, run_manager: Any) -> str:
        run_manager.on_agent_action(
            AgentAction(tool="flower_price", tool_input={"flower": "rose"}, log="look up price")
        )
        run_manager.on_agent_finish(AgentFinish(return_values={"output": "3.50"}, log="done"))
        return "3.50"

    RunnableLambda(agent_step, name="florist_agent").invoke("price?", {"callbacks": [make_handler(handler_cls)]})
    span = spans_by_name(exporter)["invoke_agent florist_agent"]
    assert "invoke_agent" == span.attributes["gen_ai.operation.name"]
    assert "florist_agent" == span.attributes["gen_ai.agent.name"]
    assert ["agent_action", "agent_finish"] == [e.name for e in span.events]
    assert "flower_price" == span.events[0].attributes["langchain.agent.tool"]


class FlowerRetriever(BaseRetriever):
    """Finds flower facts by keyword; fails on the word 'thorn'."""

    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        if "thorn" in query:
            raise LookupError("no index for thorns")
        return [Document(page_content="Roses mean love.", metadata={"source": "florist.md"})]


@pytest.mark.parametrize("handler_cls", HANDLERS)
@pytest.mark.parametrize("mode", MODES)
def test_retriever_span(handler_cls, mode, make_handler, exporter, expected):
    """A retriever is a retrieval span (v1.41.0: CLIENT, named after it; v0.1.0: INTERNAL) with the query and documents captured."""
    docs = call(FlowerRetriever(), "roses", {"callbacks": [make_handler(handler_cls)]}, mode)
    assert 1 == len(docs)
    span = spans_by_name(exporter)[expected.retrieval_span("FlowerRetriever")]
    assert expected.retrieval_kind == span.kind
    assert "roses" == span.attributes["gen_ai.retrieval.query.text"]
    assert (
        '[{"page_content":"Roses mean love.","metadata":{"source":"florist.md"}}]'
        == span.attributes["gen_ai.retrieval.documents"]
    )


@tool
def broken_vase(size: str) -> str:
    """A tool that always fails."""
    raise RuntimeError(f"vase of size {size} is broken")


ERROR_CASES = {
    "chain": (lambda: RunnableLambda(lambda x: {}[x], name="lookup"), "missing", KeyError, "lookup"),
    "chat_model": (
        lambda: FakeChatModel(fail_with=ConnectionError("provider 503")),
        "hi",
        ConnectionError,
        "chat fake-chat-1",
    ),
    "tool": (lambda: broken_vase, {"size": "XL"}, RuntimeError, "execute_tool broken_vase"),
    "retriever": (lambda: FlowerRetriever(), "thorns", LookupError, "retrieval FlowerRetriever"),
}


@pytest.mark.parametrize("handler_cls", HANDLERS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_mark_span_and_reach_user_unchanged(case, handler_cls, mode, make_handler, exporter, expected):
    """Every run type's error gives status ERROR, error.type and an exception event; the user gets the same exception."""
    build, value, exc_type, span_name = ERROR_CASES[case]
    wrapper = RunnableLambda(
        lambda v, config: build().invoke(v, config), afunc=lambda v, config: build().ainvoke(v, config), name="shop"
    )
    with pytest.raises(exc_type) as caught:
        call(wrapper, value, {"callbacks": [make_handler(handler_cls)]}, mode)
    spans = spans_by_name(exporter)
    failed = spans[expected.retrieval_span("FlowerRetriever") if case == "retriever" else span_name]
    assert StatusCode.ERROR == failed.status.status_code
    expected_type = exc_type.__name__
    assert expected_type == failed.attributes["error.type"]
    assert ["exception"] == [e.name for e in failed.events]
    assert str(caught.value) in failed.events[0].attributes["exception.message"]
    assert StatusCode.ERROR == spans["shop"].status.status_code
    assert "shop" == parent_name(failed, exporter)


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_langgraph_interrupt_is_not_an_error(handler_cls, make_handler, exporter):
    """LangGraph's GraphInterrupt (a human-in-the-loop pause) ends the span without ERROR."""
    from langgraph.errors import GraphInterrupt

    def ask_human(x: str) -> str:
        raise GraphInterrupt(())

    with pytest.raises(GraphInterrupt):
        RunnableLambda(ask_human, name="approval").invoke("x", {"callbacks": [make_handler(handler_cls)]})
    span = spans_by_name(exporter)["approval"]
    assert StatusCode.UNSET == span.status.status_code
    assert "interrupted" == span.attributes["langchain.run.end_reason"]


async def until(condition: Any, timeout_s: float = 10.0) -> None:
    """Wait for *condition* to hold, instead of guessing with a fixed sleep."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_cancelled_ainvoke_closes_every_span(handler_cls, make_handler, exporter):
    """Cancelling an ainvoke mid-model-call leaves no open run: the model span is closed as cancelled."""
    handler = make_handler(handler_cls)
    chain = flower_chain(FakeChatModel(delay_s=10))

    async def main() -> None:
        task = asyncio.create_task(chain.ainvoke({"who": "mom"}, {"callbacks": [handler]}))
        await until(
            lambda: (
                any(s.name == "ChatPromptTemplate" for s in exporter.get_finished_spans()) and handler.open_runs == 2
            )
        )
        task.cancel()  # while the model call (and its sequence) is in flight
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    spans = spans_by_name(exporter)
    assert {"RunnableSequence", "ChatPromptTemplate", "chat fake-chat-1"} == set(spans)
    assert "cancelled" == spans["chat fake-chat-1"].attributes["langchain.run.end_reason"]
    assert "cancelled" == spans["RunnableSequence"].attributes["langchain.run.end_reason"]
    assert all(s.status.status_code != StatusCode.ERROR for s in spans.values())
    assert 0 == handler.open_runs


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_astream_left_early_closes_every_span_without_error(handler_cls, make_handler, exporter):
    """Breaking out of astream ends all spans, none marked ERROR, and leaves no open run."""
    handler = make_handler(handler_cls)
    chain = flower_chain(FakeChatModel(responses=["a very long answer about roses"]))

    async def main() -> str:
        async for chunk in chain.astream({"who": "mom"}, {"callbacks": [handler]}):  # noqa: B007 (returned after the break)
            break
        await until(lambda: handler.open_runs == 0)  # the abandoned generator is finalised by the loop
        return chunk

    assert "a" == asyncio.run(main())
    spans = exporter.get_finished_spans()
    assert {"RunnableSequence", "ChatPromptTemplate", "chat fake-chat-1", "StrOutputParser"} == {s.name for s in spans}
    assert all(s.status.status_code != StatusCode.ERROR for s in spans)
    assert 0 == handler.open_runs


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_run_table_is_capped(handler_cls, make_handler, exporter):
    """Runs that never end (a cancelled bare model call) cannot pile up beyond the cap."""
    handler = make_handler(handler_cls, max_open_runs=3)
    model = FakeChatModel(delay_s=10)

    async def main() -> None:
        tasks = [asyncio.create_task(model.ainvoke("hi", {"callbacks": [handler]})) for _ in range(5)]
        await until(lambda: handler.stats.runs_evicted == 2)  # all five model calls started
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    assert 3 == handler.open_runs
    assert 2 == handler.stats.runs_evicted
    evicted = [s for s in exporter.get_finished_spans() if s.attributes.get("langchain.run.end_reason") == "evicted"]
    assert 2 == len(evicted)
    handler.close()
    assert 0 == handler.open_runs
    assert 5 == len(exporter.get_finished_spans())


@pytest.mark.parametrize("handler_cls", HANDLERS)
@pytest.mark.parametrize("mode", MODES)
def test_text_llm_span_and_error(handler_cls, mode, make_handler, exporter):
    """A text-completion LLM is a text_completion CLIENT span; its failure is an ERROR span."""
    from langchain_core.language_models import FakeListLLM

    class FlakyLLM(FakeListLLM):
        def _call(self, prompt: str, *args: Any, **kwargs: Any) -> str:
            raise TimeoutError("model timed out")

        async def _acall(self, prompt: str, *args: Any, **kwargs: Any) -> str:
            raise TimeoutError("model timed out")

    handler = make_handler(handler_cls)
    assert "Tulips." == call(FakeListLLM(responses=["Tulips."]), "Spring flowers?", {"callbacks": [handler]}, mode)
    with pytest.raises(TimeoutError):
        call(FlakyLLM(responses=["x"]), "Winter flowers?", {"callbacks": [handler]}, mode)
    ok, failed = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time)
    assert ("text_completion", SpanKind.CLIENT) == (ok.name, ok.kind)
    assert "text_completion" == ok.attributes["gen_ai.operation.name"]
    assert (
        '[{"role":"user","parts":[{"type":"text","content":"Spring flowers?"}]}]'
        == ok.attributes["gen_ai.input.messages"]
    )
    assert StatusCode.ERROR == failed.status.status_code
    assert "TimeoutError" == failed.attributes["error.type"]


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_retries_and_text_are_span_events(handler_cls, make_handler, exporter):
    """on_retry and on_text (fired by retrying models and legacy chains) become events on their run."""

    class RetryState:
        attempt_number = 2

    def step(x: str, run_manager: Any) -> str:
        run_manager.on_retry(RetryState())
        run_manager.on_text("Thinking about roses")
        return x

    RunnableLambda(step, name="careful").invoke("rose", {"callbacks": [make_handler(handler_cls)]})
    span = spans_by_name(exporter)["careful"]
    assert ["retry", "text"] == [e.name for e in span.events]
    assert 2 == span.events[0].attributes["langchain.retry.attempt"]
    assert "Thinking about roses" == span.events[1].attributes["langchain.text"]


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_threads_and_parallel_branches(handler_cls, make_handler, exporter):
    """Sync RunnableParallel branches (run on a thread pool) and app threads sharing one handler nest correctly."""
    from concurrent.futures import ThreadPoolExecutor

    from langchain_core.runnables import RunnableParallel

    handler = make_handler(handler_cls)
    shop = RunnableParallel(card=flower_chain(), price=RunnableLambda(lambda d: 3.5, name="price"))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: shop.invoke({"who": f"guest {i}"}, {"callbacks": [handler]}), range(40)))
    assert [{"card": "A red rose.", "price": 3.5}] * 40 == results
    spans = exporter.get_finished_spans()
    by_trace: dict[int, list[Any]] = {}
    for span in spans:
        by_trace.setdefault(span.context.trace_id, []).append(span)
    assert 40 == len(by_trace)
    for members in by_trace.values():
        names = {s.name: s for s in members}
        assert 6 == len(members)  # parallel, sequence, prompt, chat, parser, price
        assert "RunnableParallel<card,price>" == parent_name(names["price"], exporter)
        assert "RunnableSequence" == parent_name(names["chat fake-chat-1"], exporter)
    assert 0 == handler.open_runs


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_a_start_that_cannot_be_mapped_still_nests_its_children(handler_cls, make_handler, exporter, caplog):
    """If lc_trace fails to map a run's start, the run still gets a span, so its children stay in its trace."""

    class Weird(dict):  # a 'serialized' whose .get explodes
        def get(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("odd serialized")

    handler = make_handler(handler_cls)
    root, child = __import__("uuid").uuid4(), __import__("uuid").uuid4()
    handler.on_chain_start(Weird(name="root"), {}, run_id=root)
    handler.on_chain_start(None, {}, run_id=child, parent_run_id=root, name="child")
    handler.on_chain_end({}, run_id=child)
    handler.on_chain_end({}, run_id=root)
    spans = spans_by_name(exporter)
    assert "unknown" == parent_name(spans["child"], exporter)
    assert 1 == handler.stats.internal_errors
    assert 1 == len([r for r in caplog.records if "could not map" in r.message])


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_a_duplicate_start_does_not_leak_a_span(handler_cls, make_handler, exporter):
    """The same start delivered twice (a hand-built manager listing the handler twice) gives one span, ended."""
    import uuid

    handler = make_handler(handler_cls)
    run_id = uuid.uuid4()
    handler.on_chain_start(None, {}, run_id=run_id, name="once")
    handler.on_chain_start(None, {}, run_id=run_id, name="once")
    handler.on_chain_end({}, run_id=run_id)
    handler.on_chain_end({}, run_id=run_id)
    assert ["once"] == [s.name for s in exporter.get_finished_spans()]
    assert 0 == handler.open_runs
