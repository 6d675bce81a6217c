"""
Dispatch: lc_trace changes nothing any other handler receives, and its own dispatch is cheap.

The requirement: with lc_trace attached, the user's own
handlers, ``astream_events`` and ``astream_log`` get exactly the events they got without it,
for chat models and text LLMs, sync and async. Every scenario here runs on real
langchain-core runnables twice, once without lc_trace and once with it (first and last in
the callbacks list), and the two recordings must be equal once run ids and timestamps are
replaced by ordinals.

The two known hazards are covered by name: langchain issue 39633 (an inline handler takes a
text LLM's ``on_llm_start`` away from every other handler under the async API), and the cost
of an ``AsyncCallbackHandler`` under the sync API (a new event loop per event).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import (
    AsyncCallbackHandler,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import FakeListLLM, FakeStreamingListLLM, GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import GenerationChunk
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from langchain_core.runnables import Runnable
from langchain_core.tracers.log_stream import RunLogPatch
from opentelemetry import context as otel_context
from opentelemetry import trace
from pydantic import BaseModel

from lc_trace import AsyncTraceHandler, TraceHandler
from lc_trace.testing import FakeChatModel

HANDLERS = [TraceHandler, AsyncTraceHandler]
CALLBACKS = tuple(sorted(name for name in dir(BaseCallbackHandler) if name.startswith("on_")))
ANSWER = "Roses are red and violets are blue."
INPUT = {"who": "mom"}
BATCH = [{"who": "mom"}, {"who": "dad"}]
SYNC_STYLES = ["invoke", "stream", "batch", "invoke_on_loop"]
ASYNC_STYLES = ["ainvoke", "astream", "abatch"]
STYLES = SYNC_STYLES + ASYNC_STYLES
POSITIONS = ["first", "last"]

pytestmark = pytest.mark.filterwarnings(
    # astream_log is deprecated in langchain-core 1.7 (it still works, and is part of the requirement);
    # stream_events(version="v3") is beta.
    "ignore:astream_log is deprecated:langchain_core._api.deprecation.LangChainDeprecationWarning",
    "ignore::langchain_core._api.beta_decorator.LangChainBetaWarning",
)


# --- the models: real langchain-core runnables, no network ---------------------------------


class FakeTextLLM(FakeListLLM):
    """
    langchain-core's FakeListLLM with a model name, so its span is ``text_completion fake-text-1``.
    """

    model_name: str = "fake-text-1"


class FakeStreamingTextLLM(FakeStreamingListLLM):
    """
    langchain-core's FakeStreamingListLLM (its ``stream`` invokes, then yields characters) with a model name.
    """

    model_name: str = "fake-text-1"


class FakeTokenTextLLM(FakeListLLM):
    """
    A text LLM that streams word by word through the callbacks (``on_llm_new_token``), sync and async.
    """

    model_name: str = "fake-text-1"

    def _words(self) -> list[GenerationChunk]:
        return [
            GenerationChunk(text=word if i == 0 else " " + word) for i, word in enumerate(self.responses[0].split(" "))
        ]

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        for chunk in self._words():
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        for chunk in self._words():
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


@dataclass(frozen=True)
class Kind:
    """
    A model kind: how to build a fresh model, the prompt it takes, and lc_trace's span name for it.
    """

    model: Callable[[], Runnable[Any, Any]]
    chat: bool
    span: str

    def chain(self) -> Runnable[Any, Any]:
        prompt: Runnable[Any, Any]
        if self.chat:
            prompt = ChatPromptTemplate.from_messages(
                [("system", "You are a florist."), ("human", "Which flower for {who}?")]
            )
        else:
            prompt = PromptTemplate.from_template("You are a florist. Which flower for {who}?")
        return prompt | self.model() | StrOutputParser()


KINDS = {
    "chat": Kind(lambda: FakeChatModel(responses=[ANSWER]), True, "chat fake-chat-1"),
    "generic_chat": Kind(lambda: GenericFakeChatModel(messages=itertools.cycle([AIMessage(ANSWER)])), True, "chat"),
    "text": Kind(lambda: FakeTextLLM(responses=[ANSWER]), False, "text_completion fake-text-1"),
    "streaming_text": Kind(lambda: FakeStreamingTextLLM(responses=[ANSWER]), False, "text_completion fake-text-1"),
    "token_text": Kind(lambda: FakeTokenTextLLM(responses=[ANSWER]), False, "text_completion fake-text-1"),
}
TEXT_KINDS = ["text", "streaming_text", "token_text"]


def drive(style: str, runnable: Runnable[Any, Any], callbacks: list[Any]) -> Any:
    """
    Run *runnable* once in *style*, as a user's sync code (no loop running) or async code would.
    """
    config: Any = {"callbacks": callbacks}
    if style == "invoke":
        return runnable.invoke(INPUT, config)
    if style == "stream":
        return list(runnable.stream(INPUT, config))
    if style == "batch":
        return runnable.batch(BATCH, config)
    if style == "invoke_on_loop":  # sync code called from inside a coroutine (a loop runs on this thread)
        return asyncio.run(_on_loop(lambda: runnable.invoke(INPUT, config)))
    return asyncio.run(adrive(style, runnable, callbacks))


async def adrive(
    style: str, runnable: Runnable[Any, Any], callbacks: list[Any], value: Any = INPUT, values: list[Any] = BATCH
) -> Any:
    """
    Run *runnable* once in an async *style*, on the running loop.
    """
    config: Any = {"callbacks": callbacks}
    if style == "ainvoke":
        return await runnable.ainvoke(value, config)
    if style == "astream":
        return [chunk async for chunk in runnable.astream(value, config)]
    if style == "abatch":
        return await runnable.abatch(values, config)
    raise AssertionError(style)


def target_of(target: str) -> tuple[Runnable[Any, Any], Any, list[Any]]:
    """
    The text LLM alone (with a string input) or in its chain (with the chain's input), and a batch.
    """
    if target == "model":
        return KINDS["text"].model(), "Which flower for mom?", ["Which flower for mom?", "Which flower for dad?"]
    return KINDS["text"].chain(), INPUT, BATCH


async def _on_loop(call: Callable[[], Any]) -> Any:
    return call()


def place(handler: Any, others: list[Any], position: str) -> list[Any]:
    """
    The callbacks list with lc_trace's *handler* first or last (or *others* alone when it is None).
    """
    if handler is None:
        return list(others)
    return [handler, *others] if position == "first" else [*others, handler]


# --- what the user's own handlers receive ---------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """
    One callback as a handler received it: its run ids raw, its payload reduced to shapes.
    """

    event: str
    run_id: Any
    parent_run_id: Any
    name: Any
    tags: tuple[str, ...]
    metadata: tuple[str, ...]
    args: tuple[str, ...]
    kwargs: tuple[tuple[str, str], ...]


def _shape(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}[{','.join(sorted({_shape(v) for v in value}))}]"
    if isinstance(value, dict):
        return f"dict[{','.join(sorted(map(str, value)))}]"
    return type(value).__name__


def _seen(event: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Seen:
    rest = {k: v for k, v in kwargs.items() if k not in ("run_id", "parent_run_id", "name", "tags", "metadata")}
    return Seen(
        event,
        kwargs.get("run_id"),
        kwargs.get("parent_run_id"),
        kwargs.get("name"),
        tuple(kwargs.get("tags") or ()),
        tuple(sorted(kwargs.get("metadata") or ())),
        tuple(_shape(a) for a in args),
        tuple(sorted((k, _shape(v)) for k, v in rest.items())),
    )


def _sync_method(event: str) -> Callable[..., None]:
    def method(self: Any, *args: Any, **kwargs: Any) -> None:
        self.seen.append(_seen(event, args, kwargs))

    method.__name__ = event
    return method


def _async_method(event: str) -> Callable[..., Any]:
    async def method(self: Any, *args: Any, **kwargs: Any) -> None:
        self.seen.append(_seen(event, args, kwargs))

    method.__name__ = event
    return method


class UserHandler(BaseCallbackHandler):
    """
    A user's own sync handler (not inline): records every callback it receives.
    """

    def __init__(self) -> None:
        self.seen: list[Seen] = []


class AsyncUserHandler(AsyncCallbackHandler):
    """
    A user's own async handler (not inline, ``async def`` callbacks): records every callback.
    """

    def __init__(self) -> None:
        self.seen: list[Seen] = []


for _event in CALLBACKS:
    setattr(UserHandler, _event, _sync_method(_event))
    setattr(AsyncUserHandler, _event, _async_method(_event))


class InlineUserHandler(UserHandler):
    """
    A user's handler that is genuinely inline, as LangSmith's LangChainTracer is.
    """

    run_inline = True


class NoopInlineHandler(BaseCallbackHandler):
    """
    A handler that does nothing and says it is inline: what issue 39633 needs to bite.
    """

    run_inline = True


def canon(seen: list[Seen]) -> list[tuple[Any, ...]]:
    """
    The events per root run, run ids replaced by ordinals within their tree; trees sorted.

    Sorting the trees makes a batch comparable (its runs interleave on threads, run by run
    in no fixed order), and changes nothing for a single call, which has one tree.
    """
    parent = {e.run_id: e.parent_run_id for e in seen if e.parent_run_id is not None}

    def root(run_id: Any) -> Any:
        while run_id in parent:
            run_id = parent[run_id]
        return run_id

    trees: dict[Any, list[Seen]] = {}
    for e in seen:
        trees.setdefault(root(e.run_id), []).append(e)
    out = []
    for events in trees.values():
        ordinals: dict[Any, int] = {}

        def o(run_id: Any, ordinals: dict[Any, int] = ordinals) -> Any:
            return None if run_id is None else ordinals.setdefault(run_id, len(ordinals))

        out.append(
            tuple(
                (e.event, o(e.run_id), o(e.parent_run_id), e.name, e.tags, e.metadata, e.args, e.kwargs) for e in events
            )
        )
    return sorted(out, key=repr)


def events_of(seen: list[Seen]) -> set[str]:
    return {e.event for e in seen}


# --- what astream_events / astream_log produce -----------------------------------------------

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?")


class Normaliser:
    """
    Turns stream output into plain data: run ids become ordinals (first seen, first numbered),
    timestamps a placeholder, objects their type name plus their fields.
    """

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def run(self, text: str) -> str:
        return f"<run {self.ids.setdefault(text, len(self.ids))}>"

    def __call__(self, value: Any, key: Any = None) -> Any:
        if isinstance(value, UUID):
            return self.run(str(value))
        if isinstance(value, datetime) or (key in ("start_time", "end_time") and value is not None):
            return "<time>"
        if isinstance(value, str):
            return _TIME.sub("<time>", _UUID.sub(lambda m: self.run(m.group()), value))
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, dict):
            return {k: self(v, k) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        if isinstance(value, RunLogPatch):
            return ("RunLogPatch", self(value.ops))
        if isinstance(value, BaseModel):
            return (type(value).__name__, self(value.model_dump()))
        return (type(value).__name__, self(repr(value)))


async def stream_events(runnable: Runnable[Any, Any], callbacks: list[Any], value: Any = INPUT) -> Any:
    return Normaliser()(
        [event async for event in runnable.astream_events(value, {"callbacks": callbacks}, version="v2")]
    )


async def stream_log(runnable: Runnable[Any, Any], callbacks: list[Any]) -> Any:
    return Normaliser()([patch async for patch in runnable.astream_log(INPUT, {"callbacks": callbacks})])


# --- what lc_trace itself did ------------------------------------------------------------------


def assert_traced(handler: Any, exporter: Any, seen: list[Seen], span_name: str) -> None:
    """
    lc_trace made one span per run the user's handler saw, the model's among them, and closed every run.
    """
    spans = exporter.get_finished_spans()
    assert len({e.run_id for e in seen}) == len(spans)
    assert span_name in {span.name for span in spans}
    assert 0 == handler.open_runs
    assert 0 == handler.stats.internal_errors


# === 1. the user's own handlers get exactly what they got without lc_trace =====================


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_user_handlers_receive_the_same_events(handler_cls, kind, style, position, make_handler, exporter):
    """A user's sync and async handlers receive the same callbacks, in the same order, with lc_trace attached as without it."""

    def scenario(handler: Any) -> tuple[list[Seen], list[Seen]]:
        user, auser = UserHandler(), AsyncUserHandler()
        drive(style, KINDS[kind].chain(), place(handler, [user, auser], position))
        return user.seen, auser.seen

    without = scenario(None)
    handler = make_handler(handler_cls)
    with_ = scenario(handler)

    model_start = "on_chat_model_start" if KINDS[kind].chat else "on_llm_start"
    assert {"on_chain_start", model_start, "on_llm_end", "on_chain_end"} <= events_of(without[0])
    assert canon(without[0]) == canon(with_[0])
    assert canon(without[1]) == canon(with_[1])
    assert_traced(handler, exporter, with_[0], KINDS[kind].span)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("handler_cls", HANDLERS)
async def test_astream_events_are_unchanged(handler_cls, kind, position, make_handler, exporter):
    """astream_events(v2) yields the same events with lc_trace attached, and the user's handlers next to it still get theirs."""

    async def scenario(handler: Any) -> tuple[Any, list[Seen], list[Seen]]:
        user, auser = UserHandler(), AsyncUserHandler()
        events = await stream_events(KINDS[kind].chain(), place(handler, [user, auser], position))
        return events, user.seen, auser.seen

    without = await scenario(None)
    handler = make_handler(handler_cls)
    with_ = await scenario(handler)

    kinds_of_event = {e["event"] for e in without[0]}
    assert {
        "on_chain_start",
        "on_chat_model_start" if KINDS[kind].chat else "on_llm_start",
        "on_chain_end",
    } <= kinds_of_event
    assert without[0] == with_[0]
    assert canon(without[1]) == canon(with_[1])
    assert canon(without[2]) == canon(with_[2])
    assert_traced(handler, exporter, with_[1], KINDS[kind].span)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("handler_cls", HANDLERS)
async def test_astream_log_is_unchanged(handler_cls, kind, position, make_handler, exporter):
    """astream_log yields the same patches with lc_trace attached, the model's run log among them."""

    async def scenario(handler: Any) -> tuple[Any, list[Seen]]:
        user = UserHandler()
        return await stream_log(KINDS[kind].chain(), place(handler, [user], position)), user.seen

    without = await scenario(None)
    handler = make_handler(handler_cls)
    with_ = await scenario(handler)

    model_name = type(KINDS[kind].model()).__name__
    assert any(f"/logs/{model_name}" == op["path"] for _, ops in without[0] for op in ops), (
        "the model's run is in the log"
    )
    assert without[0] == with_[0]
    assert canon(without[1]) == canon(with_[1])
    assert_traced(handler, exporter, with_[1], KINDS[kind].span)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("kind", ["chat", "generic_chat"])
@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_v3_protocol_stream_is_unchanged(handler_cls, kind, position, make_handler, exporter):
    """A chat model's sync v3 event stream, and the on_stream_event callbacks a user's handlers get, are the same with lc_trace attached."""
    # Not the async twin: in langchain-core 1.7.2 astream_events(version="v3") (beta) ends the
    # model run with a CancelledError at loop shutdown, at a moment that varies from run to run
    # even with no lc_trace attached, so two recordings of it are not comparable.

    def scenario(handler: Any) -> tuple[Any, list[Seen], list[Seen]]:
        user, auser = UserHandler(), AsyncUserHandler()
        config: Any = {"callbacks": place(handler, [user, auser], position)}
        output = KINDS[kind].model().stream_events("Which flower for mom?", config, version="v3").output
        return Normaliser()(output), user.seen, auser.seen

    without = scenario(None)
    handler = make_handler(handler_cls)
    with_ = scenario(handler)

    assert "on_stream_event" in events_of(without[1])
    assert without[0] == with_[0]
    assert canon(without[1]) == canon(with_[1])
    assert canon(without[2]) == canon(with_[2])
    assert_traced(handler, exporter, with_[1], KINDS[kind].span)


# === 2. issue 39633: a text LLM's start under the async API ========================================


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("target", ["model", "chain"])
@pytest.mark.parametrize("style", ASYNC_STYLES)
@pytest.mark.parametrize("handler_cls", HANDLERS)
async def test_text_llm_start_still_reaches_non_inline_handlers(
    handler_cls, style, target, position, make_handler, exporter
):
    """Under the async API a text LLM's on_llm_start reaches the user's non-inline handlers with lc_trace attached (issue 39633)."""

    async def scenario(handler: Any) -> tuple[list[Seen], list[Seen]]:
        user, auser = UserHandler(), AsyncUserHandler()
        runnable, value, values = target_of(target)
        await adrive(style, runnable, place(handler, [user, auser], position), value, values)
        return user.seen, auser.seen

    without = await scenario(None)
    handler = make_handler(handler_cls)
    with_ = await scenario(handler)

    for seen in (*without, *with_):
        starts = [e for e in seen if e.event == "on_llm_start"]
        assert (2 if style == "abatch" else 1) == len(starts)
    assert canon(without[0]) == canon(with_[0])
    assert canon(without[1]) == canon(with_[1])
    assert_traced(handler, exporter, with_[0], "text_completion fake-text-1")


async def test_a_noop_inline_handler_does_take_the_start_away():
    """Contrast: a handler that is simply inline makes the others miss on_llm_start, so the check above can fail."""
    user, auser = UserHandler(), AsyncUserHandler()
    await KINDS["text"].model().ainvoke("Which flower for mom?", {"callbacks": [NoopInlineHandler(), user, auser]})
    if "on_llm_start" in events_of(user.seen):
        pytest.skip("this langchain-core no longer has issue 39633")
    assert ["on_llm_end"] == [e.event for e in user.seen]
    assert ["on_llm_end"] == [e.event for e in auser.seen]


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("style", [*ASYNC_STYLES, "astream_events"])
@pytest.mark.parametrize("target", ["model", "chain"])
@pytest.mark.parametrize("handler_cls", HANDLERS)
async def test_next_to_a_genuinely_inline_handler(handler_cls, target, style, position, make_handler, exporter):
    """With a user's inline handler present, lc_trace still traces the text LLM, and the other handlers get what they got without lc_trace."""

    async def scenario(handler: Any) -> tuple[Any, list[Seen], list[Seen], list[Seen]]:
        inline, user, auser = InlineUserHandler(), UserHandler(), AsyncUserHandler()
        runnable, value, values = target_of(target)
        callbacks = place(handler, [inline, user, auser], position)
        if style == "astream_events":
            stream = await stream_events(runnable, callbacks, value)
        else:
            stream = None
            await adrive(style, runnable, callbacks, value, values)
        return stream, inline.seen, user.seen, auser.seen

    without = await scenario(None)
    handler = make_handler(handler_cls)
    with_ = await scenario(handler)

    assert "on_llm_start" in events_of(with_[1]), "the inline handler gets its start"
    assert without[0] == with_[0]
    for before, after in zip(without[1:], with_[1:], strict=True):
        assert canon(before) == canon(after)
    assert_traced(handler, exporter, with_[1], "text_completion fake-text-1")  # lc_trace got its start too


# === 3. cheap dispatch: no event loop under the sync API, the loop thread under the async one =====


def test_no_callback_is_a_coroutine_function():
    """Every callback of both handlers is a plain function, so the sync API calls it directly instead of building an event loop."""
    for cls in HANDLERS:
        coroutines = [name for name in CALLBACKS if inspect.iscoroutinefunction(getattr(cls, name))]
        assert [] == coroutines, f"{cls.__name__}: {coroutines}"


@pytest.mark.parametrize("handler_cls", HANDLERS)
@pytest.mark.parametrize("style", ["stream", "astream"])
def test_a_subclass_that_overrides_on_llm_new_token_gets_every_chunk(handler_cls, style, make_handler, exporter):
    """
    lc_trace hands LangChain its recorder's per-token function directly (one frame fewer per chunk);
    a subclass's own ``on_llm_new_token`` still gets every chunk, and its ``super()`` call still counts them.
    """
    seen: list[str] = []

    class Tapped(handler_cls):  # type: ignore[misc,valid-type]
        def on_llm_new_token(self, token: Any = "", *args: Any, run_id: UUID, **kwargs: Any) -> None:
            seen.append(token)
            super().on_llm_new_token(token, *args, run_id=run_id, **kwargs)

    handler = make_handler(Tapped)
    model = FakeChatModel(responses=[ANSWER])
    if style == "stream":
        chunks = list(model.stream("poem", {"callbacks": [handler]}))
    else:

        async def collect() -> list[Any]:
            return [c async for c in model.astream("poem", {"callbacks": [handler]})]

        chunks = asyncio.run(collect())
    assert ANSWER == "".join(seen) == "".join(str(c.content) for c in chunks)
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert len(seen) == span.attributes["langchain.stream.chunk_count"]


def test_run_inline_outside_the_llm_start_partition(make_handler):
    """Read from anywhere but AsyncCallbackManager.on_llm_start, run_inline is True, so the async API calls lc_trace on the loop thread."""
    for cls in HANDLERS:
        assert True is make_handler(cls).run_inline


class LoopCounter:
    """
    Counts event loops built (``asyncio.BaseEventLoop.__init__`` calls) in any thread.
    """

    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def loops(monkeypatch: pytest.MonkeyPatch) -> LoopCounter:
    """Wrap asyncio.BaseEventLoop.__init__ to count the loops built; monkeypatch restores it."""
    counter = LoopCounter()
    original = asyncio.BaseEventLoop.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        counter.count += 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(asyncio.BaseEventLoop, "__init__", counting)
    return counter


@pytest.mark.parametrize("style", ["invoke", "stream", "batch"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_sync_api_builds_no_event_loop(handler_cls, kind, style, make_handler, loops):
    """Under sync invoke/stream/batch lc_trace's handlers build no event loop, where a plain AsyncCallbackHandler builds one per event."""
    handler = make_handler(handler_cls)
    before = loops.count
    drive(style, KINDS[kind].chain(), [handler])
    assert 0 == loops.count - before

    user = AsyncUserHandler()
    before = loops.count
    drive(style, KINDS[kind].chain(), [user])
    assert len(user.seen) <= loops.count - before  # the contrast: one loop per event


@pytest.mark.parametrize("kind", ["chat", "generic_chat"])
@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_v3_stream_events_builds_no_event_loop(handler_cls, kind, make_handler, loops):
    """Under sync stream_events(version="v3") (one on_stream_event per protocol event) lc_trace's handlers build no event loop."""
    handler = make_handler(handler_cls)
    before = loops.count
    _ = KINDS[kind].model().stream_events("Which flower for mom?", {"callbacks": [handler]}, version="v3").output
    assert 0 == loops.count - before


def _spying(cls: type) -> type:
    """
    A subclass of *cls* whose plain callbacks note the thread they run on, then do their work.
    """

    def wrap(name: str) -> Callable[..., Any]:
        base = getattr(cls, name)

        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            self.threads.append((name, threading.current_thread()))
            return base(self, *args, **kwargs)

        method.__name__ = name
        return method

    def __init__(self: Any, **kwargs: Any) -> None:
        cls.__init__(self, **kwargs)
        self.threads = []

    namespace: dict[str, Any] = {
        name: wrap(name) for name in CALLBACKS if not inspect.iscoroutinefunction(getattr(cls, name))
    }
    namespace["__init__"] = __init__
    return type(f"Spying{cls.__name__}", (cls,), namespace)


class ThreadNotingUserHandler(BaseCallbackHandler):
    """
    A user's plain sync handler (not inline) that notes the thread each callback runs on.
    """

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
        self.threads.append(threading.current_thread())


@pytest.mark.parametrize("company", ["alone", "non_inline", "inline"])
@pytest.mark.parametrize("style", ASYNC_STYLES)
@pytest.mark.parametrize("kind", ["chat", "text", "token_text"])
@pytest.mark.parametrize("handler_cls", HANDLERS)
async def test_async_api_calls_lc_trace_on_the_loop_thread(handler_cls, kind, style, company, make_handler):
    """Under ainvoke/astream/abatch lc_trace's callbacks run on the event-loop thread, not in an executor, alone or next to other handlers."""
    handler = make_handler(_spying(handler_cls))
    noting = ThreadNotingUserHandler()
    others = {"alone": [], "non_inline": [noting, AsyncUserHandler()], "inline": [InlineUserHandler(), noting]}[company]
    loop_thread = threading.current_thread()
    await adrive(style, KINDS[kind].chain(), [handler, *others])

    names = {name for name, _ in handler.threads}
    assert ("on_chat_model_start" if KINDS[kind].chat else "on_llm_start") in names
    assert {"on_chain_start", "on_llm_end", "on_chain_end"} <= names
    assert [] == [(name, thread.name) for name, thread in handler.threads if thread is not loop_thread]
    if company == "non_inline":  # the contrast: a plain non-inline sync handler is sent to the executor
        assert noting.threads and all(thread is not loop_thread for thread in noting.threads)


# === 4. no context leaks into the caller ===========================================================


def _snapshot() -> dict[contextvars.ContextVar[Any], Any]:
    return dict(contextvars.copy_context())


def _changed(before: dict[contextvars.ContextVar[Any], Any]) -> list[str]:
    after = _snapshot()
    missing = object()
    return sorted(
        var.name for var in after.keys() | before.keys() if after.get(var, missing) is not before.get(var, missing)
    )


@pytest.mark.parametrize("style", SYNC_STYLES)
@pytest.mark.parametrize("kind", ["chat", "text", "token_text"])
@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_sync_calls_leave_the_callers_context_alone(handler_cls, kind, style, make_handler, tracing, exporter):
    """After invoke/stream/batch the caller's OTel context, current span and every contextvar are as they were."""
    handler = make_handler(handler_cls)
    with tracing[0].get_tracer("app").start_as_current_span("request") as request:
        context, snapshot = otel_context.get_current(), _snapshot()
        drive(style, KINDS[kind].chain(), [handler])
        assert context is otel_context.get_current()
        assert request is trace.get_current_span()
        assert [] == _changed(snapshot)
    roots = [s for s in exporter.get_finished_spans() if s.name == "RunnableSequence"]
    assert roots and all(s.parent is not None and s.parent.span_id == request.get_span_context().span_id for s in roots)


@pytest.mark.parametrize("style", ASYNC_STYLES)
@pytest.mark.parametrize("kind", ["chat", "text", "token_text"])
@pytest.mark.parametrize("handler_cls", HANDLERS)
async def test_async_calls_leave_the_callers_context_alone(handler_cls, kind, style, make_handler, tracing, exporter):
    """After ainvoke/astream/abatch the caller's OTel context, current span and every contextvar are as they were."""
    handler = make_handler(handler_cls)
    with tracing[0].get_tracer("app").start_as_current_span("request") as request:
        context, snapshot = otel_context.get_current(), _snapshot()
        await adrive(style, KINDS[kind].chain(), [handler, InlineUserHandler()])
        assert context is otel_context.get_current()
        assert request is trace.get_current_span()
        assert [] == _changed(snapshot)
    roots = [s for s in exporter.get_finished_spans() if s.name == "RunnableSequence"]
    assert roots and all(s.parent is not None and s.parent.span_id == request.get_span_context().span_id for s in roots)
