"""
Real provider payloads through the real LangChain clients, offline.

Each test replays a vcrpy cassette from ``tests/fixtures/provider-recordings`` (see its
README.md for what every recording holds and what a handler receives on replay) through
``ChatOpenAI`` / ``ChatAnthropic`` / ``OpenAIEmbeddings`` with lc_trace's handler in
``config["callbacks"]``, then checks the spans and the log lines against the recorded facts.

Every scenario runs twice: ``TraceHandler`` with ``invoke``/``stream`` and
``AsyncTraceHandler`` with ``ainvoke``/``astream``. Nothing can reach the network: the
cassettes are replayed with ``record_mode="none"``, the clients have ``max_retries=0``, every
non-loopback socket connect or DNS lookup raises, and every provider interaction of a
cassette must have been played exactly once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import vcr
from langchain_anthropic import ChatAnthropic
from langchain_core.exceptions import ModelAuthenticationError
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import BaseTool, tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from vcr.errors import CannotOverwriteExistingCassetteException

from lc_trace import AsyncTraceHandler, TraceHandler
from lc_trace import _attributes as A
from lc_trace.testing import in_memory_tracing, read_log
from tests.conventions import Expected

# Kept in the repository (with their licence notes in its README) so every clone runs these tests.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "provider-recordings"

# Key-shaped dummies: if lc_trace ever leaked the client's key, the secret scan would see it.
OPENAI_KEY = "sk-proj-lctraceDummyKeyNotARealKey0123456789"
ANTHROPIC_KEY = "sk-ant-api03-lctraceDummyKeyNotARealKey0123456789"
KEY_SHAPED = re.compile(r"sk-[A-Za-z0-9_\-]{16,}")

PROVIDER_HOSTS = frozenset({"api.openai.com", "api.anthropic.com"})
_VCR = vcr.VCR(record_mode="none", match_on=["method", "scheme", "host", "path"])

SYNC = "sync"
ASYNC = "async"

# Environment that would send the clients elsewhere or add other tracers that call out.
_ENV_TO_CLEAR = (
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "OPENAI_PROXY",
    "OPENAI_ORGANIZATION",
    "OPENAI_PROJECT",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_URL",
    "LANGSMITH_TRACING",
    "LANGSMITH_TRACING_V2",
    "LANGCHAIN_TRACING",
    "LANGCHAIN_TRACING_V2",
    "LANGSMITH_ENDPOINT",
    "LANGCHAIN_ENDPOINT",
)


# --- no network ------------------------------------------------------------------------------


def _is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Refuse every connect and DNS lookup that is not loopback (Unix sockets are allowed).
    """
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: Any) -> None:
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            raise ConnectionRefusedError(f"test_providers: network access blocked ({address!r})")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback(host):
            raise socket.gaierror(f"test_providers: DNS lookup blocked ({host!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@contextmanager
def replay(name: str) -> Iterator[Any]:
    """
    Replay ``<name>.yaml``; on a normal exit, every provider interaction must have been played.
    """
    path = FIXTURES / f"{name}.yaml"
    with _VCR.use_cassette(str(path), allow_playback_repeats=False) as cassette:
        yield cassette
    unplayed = [
        f"#{index} {request.method} {request.uri}"
        for index, (request, _) in enumerate(cassette.data)
        if request.host in PROVIDER_HOSTS and cassette.play_counts[index] != 1
    ]
    assert [] == unplayed


# --- handler, driver -----------------------------------------------------------------------


@dataclass
class Driver:
    """
    One handler (sync or async flavour) and the matching way to call LangChain.
    """

    mode: str
    handler: TraceHandler | AsyncTraceHandler
    exporter: Any
    log_path: Path

    @property
    def config(self) -> dict[str, Any]:
        return {"callbacks": [self.handler]}

    def invoke(self, runnable: Any, value: Any) -> Any:
        if self.mode == SYNC:
            return runnable.invoke(value, config=self.config)
        return asyncio.run(runnable.ainvoke(value, config=self.config))

    def stream(self, runnable: Any, value: Any) -> list[Any]:
        if self.mode == SYNC:
            return list(runnable.stream(value, config=self.config))

        async def collect() -> list[Any]:
            return [chunk async for chunk in runnable.astream(value, config=self.config)]

        return asyncio.run(collect())

    def run(self, sync: Callable[[], Any], coro: Callable[[], Any]) -> Any:
        """
        Call *sync* in sync mode, or run the coroutine from *coro* in async mode.
        """
        return sync() if self.mode == SYNC else asyncio.run(coro())

    def spans(self) -> list[ReadableSpan]:
        return sorted(self.exporter.get_finished_spans(), key=lambda s: s.start_time or 0)

    def lines(self) -> list[dict[str, Any]]:
        if self.mode == SYNC:
            assert self.handler.flush()
        else:
            assert asyncio.run(self.handler.aflush())
        return read_log(self.log_path) if self.log_path.exists() else []


@pytest.fixture(params=[SYNC, ASYNC])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    """
    A fresh in-memory provider, log file and handler per test: TraceHandler or AsyncTraceHandler.
    """
    provider, exporter = in_memory_tracing()
    log_path = tmp_path / "lc_trace.jsonl"
    kind = TraceHandler if request.param == SYNC else AsyncTraceHandler
    handler = kind(tracer_provider=provider, log_path=log_path, capture_content=True)
    yield Driver(request.param, handler, exporter, log_path)
    handler.close()
    provider.shutdown()


def openai_chat(**kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(api_key=OPENAI_KEY, max_retries=0, **kwargs)


def anthropic_chat(**kwargs: Any) -> ChatAnthropic:
    return ChatAnthropic(api_key=ANTHROPIC_KEY, max_retries=0, max_tokens=1024, **kwargs)


# --- assertion helpers ---------------------------------------------------------------------


def only(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert [name] == [s.name for s in found]
    return found[0]


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def trace_id(span: ReadableSpan) -> str:
    return format(span.context.trace_id, "032x")


def span_id(span: ReadableSpan) -> str:
    return format(span.context.span_id, "016x")


def parts(span: ReadableSpan, key: str, kind: str) -> list[dict[str, Any]]:
    """
    The message parts of type *kind* in a captured ``gen_ai.*.messages`` attribute.
    """
    messages = json.loads(span.attributes[key])
    return [part for message in messages for part in message["parts"] if part["type"] == kind]


def _jsonish(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def assert_log_matches_spans(lines: list[dict[str, Any]], spans: list[ReadableSpan]) -> None:
    """
    Each span has a start and an end/error line with its trace.id and span.id, and every span
    attribute appears on those lines under the same dotted key with the same value.
    """
    assert len(spans) * 2 == len(lines)
    for span in spans:
        mine = [line for line in lines if line[A.SPAN_ID] == span_id(span)]
        assert 2 == len(mine), span.name
        assert [trace_id(span)] * 2 == [line[A.TRACE_ID] for line in mine]
        assert mine[0][A.EVENT_ACTION].endswith("_start")
        assert mine[1][A.EVENT_ACTION].endswith(("_end", "_error"))
        merged = {**mine[0], **mine[1]}
        expected = {key: _jsonish(value) for key, value in span.attributes.items()}
        assert expected == {key: merged.get(key) for key in expected}


def all_texts(spans: list[ReadableSpan], lines: list[dict[str, Any]]) -> list[str]:
    """
    Every string an exporter or a log reader would see: attributes, events, statuses, lines.
    """
    texts: list[str] = []

    def add(attributes: Any) -> None:
        for key, value in (attributes or {}).items():
            texts.append(str(key))
            values = value if isinstance(value, (tuple, list)) else (value,)
            texts.extend(str(v) for v in values)

    for span in spans:
        texts.append(span.name)
        add(span.attributes)
        texts.append(span.status.description or "")
        for event in span.events:
            texts.append(event.name)
            add(event.attributes)
    texts.extend(json.dumps(line) for line in lines)
    return texts


def assert_ok_and_closed(driver: Driver, spans: list[ReadableSpan]) -> None:
    assert 0 == driver.handler.open_runs
    for span in spans:
        assert (span.name, StatusCode.UNSET) == (span.name, span.status.status_code)
        assert A.LC_END_REASON not in span.attributes
        assert A.ERROR_TYPE not in span.attributes


# --- tools the recorded models called ------------------------------------------------------


@tool
def add_numbers(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two numbers."""
    return a * b


@tool
def get_weather(location: str, unit: str | None = None) -> str:
    """Get the current weather in a location."""
    return f"Sunny in {location}"


@tool
def get_time(timezone: str) -> str:
    """Get the current time in a timezone."""
    return f"12:00 in {timezone}"


def tool_loop(model: ChatOpenAI, tool_: BaseTool, *, stream: bool) -> RunnableLambda:
    """
    One parent runnable: ask, run the requested tool with its ToolCall, send the result back.
    """
    bound = model.bind_tools([tool_])

    def ask(messages: list[BaseMessage], config: Any) -> BaseMessage:
        if not stream:
            return bound.invoke(messages, config=config)
        answer: AIMessageChunk | None = None
        for chunk in bound.stream(messages, config=config):
            answer = chunk if answer is None else answer + chunk
        assert answer is not None
        return answer

    async def aask(messages: list[BaseMessage], config: Any) -> BaseMessage:
        if not stream:
            return await bound.ainvoke(messages, config=config)
        answer: AIMessageChunk | None = None
        async for chunk in bound.astream(messages, config=config):
            answer = chunk if answer is None else answer + chunk
        assert answer is not None
        return answer

    def loop(question: str, config: Any) -> str:
        messages: list[BaseMessage] = [HumanMessage(question)]
        first = ask(messages, config)
        messages.append(first)
        messages.extend(tool_.invoke(call, config=config) for call in first.tool_calls)
        return ask(messages, config).text

    async def aloop(question: str, config: Any) -> str:
        messages: list[BaseMessage] = [HumanMessage(question)]
        first = await aask(messages, config)
        messages.append(first)
        messages.extend([await tool_.ainvoke(call, config=config) for call in first.tool_calls])
        return (await aask(messages, config)).text

    return RunnableLambda(loop, afunc=aloop, name="tool_loop")


# --- OpenAI --------------------------------------------------------------------------------


def test_openai_chat_basic(driver: Driver, expected: Expected) -> None:
    """A plain ChatOpenAI call becomes one CLIENT span `chat gpt-4o` with the recorded request, response and usage facts."""
    model = openai_chat(model="gpt-4o")
    with replay("openai/chat_basic"):
        answer = driver.invoke(model, [("system", "You are a mathematician."), ("user", "What's 5 + 5?")])

    assert "\\(5 + 5 = 10\\)." == answer.content
    spans = driver.spans()
    span = only(spans, "chat gpt-4o")
    assert SpanKind.CLIENT == span.kind
    assert None is span.parent
    attrs = span.attributes
    assert "chat" == attrs[A.GEN_AI_OPERATION_NAME]
    assert "openai" == attrs[A.GEN_AI_PROVIDER_NAME]
    assert "gpt-4o" == attrs[A.GEN_AI_REQUEST_MODEL]
    assert "gpt-4o-2024-08-06" == attrs[A.GEN_AI_RESPONSE_MODEL]
    assert "chatcmpl-BWQlr9dVLXKFchlMhrbY7PR3BTJkn" == attrs[A.GEN_AI_RESPONSE_ID]
    assert ("stop",) == attrs[A.GEN_AI_RESPONSE_FINISH_REASONS]
    assert 24 == attrs[A.GEN_AI_USAGE_INPUT_TOKENS]
    assert 11 == attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS]
    assert 0 == attrs.get(A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
    assert 0 == attrs.get(A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)
    assert False is attrs[A.GEN_AI_REQUEST_STREAM]
    assert A.LC_STREAM_CHUNKS not in attrs
    assert "chat_model" == attrs[A.LC_RUN_TYPE]
    assert [
        {"role": "system", "parts": [{"type": "text", "content": "You are a mathematician."}]},
        {"role": "user", "parts": [{"type": "text", "content": "What's 5 + 5?"}]},
    ] == json.loads(attrs[A.GEN_AI_INPUT_MESSAGES])
    assert expected.output_messages(
        [{"role": "assistant", "parts": [{"type": "text", "content": "\\(5 + 5 = 10\\)."}], "finish_reason": "stop"}]
    ) == json.loads(attrs[A.GEN_AI_OUTPUT_MESSAGES])
    assert_ok_and_closed(driver, spans)


def test_openai_chat_basic_log_lines_match_span(driver: Driver, expected: Expected) -> None:
    """The log lines of a call carry the span's trace.id/span.id and the same gen_ai values under the same dotted keys."""
    model = openai_chat(model="gpt-4o")
    with replay("openai/chat_basic"):
        driver.invoke(model, [("system", "You are a mathematician."), ("user", "What's 5 + 5?")])

    span = only(driver.spans(), "chat gpt-4o")
    lines = driver.lines()
    assert ["llm_start", "llm_end"] == [line[A.EVENT_ACTION] for line in lines]
    start, end = lines
    assert [trace_id(span), trace_id(span)] == [start[A.TRACE_ID], end[A.TRACE_ID]]
    assert [span_id(span), span_id(span)] == [start[A.SPAN_ID], end[A.SPAN_ID]]
    assert "info" == end[A.LOG_LEVEL]
    assert "success" == end[A.EVENT_OUTCOME]
    assert "openai" == end["gen_ai.provider.name"]
    assert "gpt-4o" == end["gen_ai.request.model"]
    assert "gpt-4o-2024-08-06" == end["gen_ai.response.model"]
    assert "chatcmpl-BWQlr9dVLXKFchlMhrbY7PR3BTJkn" == end["gen_ai.response.id"]
    assert ["stop"] == end["gen_ai.response.finish_reasons"]
    assert 24 == end["gen_ai.usage.input_tokens"]
    assert 11 == end["gen_ai.usage.output_tokens"]
    assert 0 == end.get("gen_ai.usage.cache_read.input_tokens")
    assert span.attributes[A.GEN_AI_INPUT_MESSAGES] == start["gen_ai.input.messages"]
    assert span.attributes[A.GEN_AI_OUTPUT_MESSAGES] == end["gen_ai.output.messages"]
    assert (span.end_time or 0) - (span.start_time or 0) == end[A.EVENT_DURATION]
    assert_log_matches_spans(lines, [span])


def test_openai_cached_tokens_are_part_of_input(driver: Driver, expected: Expected) -> None:
    """Cached prompt tokens are reported as cache_read.input_tokens and stay inside input_tokens, not added to it."""
    model = openai_chat(model="gpt-4o-mini")
    prefix = "lorem ipsum " * 160
    with replay("openai/chat_cached_tokens"):
        driver.invoke(model, prefix + "Write me a haiku.")
        driver.invoke(model, prefix + "Write me a sonnet.")

    spans = named(driver.spans(), "chat gpt-4o-mini")
    assert ["chatcmpl-DD5NFiAZJ7PCYeDPUqg8xSxJ710R6", "chatcmpl-DD5NHIXBbJePohr1VHYM0pWiVWi11"] == [
        s.attributes[A.GEN_AI_RESPONSE_ID] for s in spans
    ]
    first, second = spans
    assert (1370, 22, 0) == (
        first.attributes[A.GEN_AI_USAGE_INPUT_TOKENS],
        first.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS],
        first.attributes.get(A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
    )
    assert (1370, 155, 1280) == (
        second.attributes[A.GEN_AI_USAGE_INPUT_TOKENS],
        second.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS],
        second.attributes[A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS],
    )
    assert ["gpt-4o-mini-2024-07-18"] * 2 == [s.attributes[A.GEN_AI_RESPONSE_MODEL] for s in spans]
    assert [("stop",)] * 2 == [s.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] for s in spans]
    assert trace_id(first) != trace_id(second)
    assert_ok_and_closed(driver, spans)
    assert_log_matches_spans(driver.lines(), spans)


def test_openai_stream_usage(driver: Driver, expected: Expected) -> None:
    """A streamed ChatOpenAI call is marked streamed, counts its 12 chunks, times the first, takes usage from the last chunk, and invents no response id."""
    model = openai_chat(model="gpt-4o-mini", stream_usage=True)
    with replay("openai/chat_stream_usage"):
        chunks = driver.stream(model, "What is 10 + 5?")

    assert "10 + 5 equals 15." == "".join(chunk.text for chunk in chunks)
    spans = driver.spans()
    span = only(spans, "chat gpt-4o-mini")
    assert SpanKind.CLIENT == span.kind
    attrs = span.attributes
    assert True is attrs[A.GEN_AI_REQUEST_STREAM]
    assert 12 == attrs[A.LC_STREAM_CHUNKS]
    assert len(chunks) == attrs[A.LC_STREAM_CHUNKS]
    first_chunk_s = attrs[A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert 0 < first_chunk_s <= ((span.end_time or 0) - (span.start_time or 0)) / 1e9
    assert 23 == attrs[A.GEN_AI_USAGE_INPUT_TOKENS]
    assert 8 == attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS]
    assert 0 == attrs.get(A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
    assert "gpt-4o-mini-2024-07-18" == attrs[A.GEN_AI_RESPONSE_MODEL]
    assert ("stop",) == attrs[A.GEN_AI_RESPONSE_FINISH_REASONS]
    # langchain-openai drops the chunks' id on a Chat Completions stream, so no handler can see it
    # (README's attribute table says so); LangChain's own `lc_run--` id must not stand in.
    assert A.GEN_AI_RESPONSE_ID not in attrs
    lines = driver.lines()
    assert [] == [text for text in all_texts(spans, lines) if "lc_run--" in text]
    assert [{"type": "text", "content": "10 + 5 equals 15."}] == parts(span, A.GEN_AI_OUTPUT_MESSAGES, "text")
    assert_ok_and_closed(driver, spans)
    assert_log_matches_spans(lines, spans)


@pytest.mark.parametrize(
    ("cassette", "stream", "served_model", "call_id", "usages"),
    [
        pytest.param(
            "openai/tool_calls_followup",
            False,
            "gpt-4o-mini-2024-07-18",
            "call_K1e5DeMhf00qONjSQD0B4h9C",
            [(52, 18), (79, 13)],
            id="invoke",
        ),
        pytest.param(
            "openai/tool_calls_stream_followup",
            True,
            "gpt-4o-mini-2024-07-18",
            "call_6KQlxELWhphiY7wr0DV9WW5S",
            [(59, 17), (84, 9)],
            id="stream",
        ),
    ],
)
def test_openai_tool_calling_loop(
    driver: Driver, cassette: str, stream: bool, served_model: str, call_id: str, usages: list[tuple[int, int]]
) -> None:
    """A real tool-calling loop under one parent runnable gives one trace: model span (tool_calls), tool span with the call id, model span (stop)."""
    tool_ = multiply if stream else add_numbers
    question, args, result = (
        ("What is 6 times 7?", {"a": 6, "b": 7}, "42") if stream else ("Add 5 and 7", {"a": 5, "b": 7}, "12")
    )
    model = openai_chat(model="gpt-4o-mini", stream_usage=True) if stream else openai_chat(model="gpt-4o-mini")
    with replay(cassette):
        answer = driver.invoke(tool_loop(model, tool_, stream=stream), question)

    assert ("6 times 7 is 42." if stream else "The sum of 5 and 7 is 12.") == answer
    spans = driver.spans()
    assert ["tool_loop", "chat gpt-4o-mini", f"execute_tool {tool_.name}", "chat gpt-4o-mini"] == [
        s.name for s in spans
    ]
    parent, first, tool_span, second = spans

    # one trace, every call a child of the loop, in order
    assert None is parent.parent
    assert SpanKind.INTERNAL == parent.kind
    assert [trace_id(parent)] * 3 == [trace_id(s) for s in (first, tool_span, second)]
    assert [span_id(parent)] * 3 == [format(s.parent.span_id, "016x") for s in (first, tool_span, second) if s.parent]
    assert [parent.attributes[A.LC_RUN_ID]] * 3 == [
        s.attributes[A.LC_RUN_PARENT_ID] for s in (first, tool_span, second)
    ]
    assert (first.end_time or 0) <= (tool_span.start_time or 0)
    assert (tool_span.end_time or 0) <= (second.start_time or 0)

    # first model call: asks for the tool
    assert ("tool_calls",) == first.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS]
    assert usages[0] == (first.attributes[A.GEN_AI_USAGE_INPUT_TOKENS], first.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS])
    assert served_model == first.attributes[A.GEN_AI_RESPONSE_MODEL]
    assert [{"type": "tool_call", "id": call_id, "name": tool_.name, "arguments": args}] == parts(
        first, A.GEN_AI_OUTPUT_MESSAGES, "tool_call"
    )

    # both calls were offered the tool (bind_tools), in the conventions' shape
    for call in (first, second):
        (offered,) = json.loads(call.attributes[A.GEN_AI_TOOL_DEFINITIONS])
        assert ("function", tool_.name, tool_.description) == (offered["type"], offered["name"], offered["description"])
        assert {"a", "b"} == set(offered["parameters"]["properties"])

    # the tool run, linked to the model's call id
    assert SpanKind.INTERNAL == tool_span.kind
    assert "execute_tool" == tool_span.attributes[A.GEN_AI_OPERATION_NAME]
    assert tool_.name == tool_span.attributes[A.GEN_AI_TOOL_NAME]
    assert call_id == tool_span.attributes[A.GEN_AI_TOOL_CALL_ID]
    assert "function" == tool_span.attributes[A.GEN_AI_TOOL_TYPE]
    assert tool_.description == tool_span.attributes[A.GEN_AI_TOOL_DESCRIPTION]
    assert args == json.loads(tool_span.attributes[A.GEN_AI_TOOL_CALL_ARGUMENTS])
    assert result == json.loads(tool_span.attributes[A.GEN_AI_TOOL_CALL_RESULT])

    # follow-up: the tool result goes back, the model stops
    assert [{"type": "tool_call_response", "id": call_id, "response": result}] == parts(
        second, A.GEN_AI_INPUT_MESSAGES, "tool_call_response"
    )
    assert ("stop",) == second.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS]
    assert usages[1] == (
        second.attributes[A.GEN_AI_USAGE_INPUT_TOKENS],
        second.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS],
    )
    assert [] == parts(second, A.GEN_AI_OUTPUT_MESSAGES, "tool_call")

    if stream:
        assert [True, True] == [s.attributes[A.GEN_AI_REQUEST_STREAM] for s in (first, second)]
        assert [13, 12] == [s.attributes[A.LC_STREAM_CHUNKS] for s in (first, second)]
        assert [False, False] == [A.GEN_AI_RESPONSE_ID in s.attributes for s in (first, second)]
    else:
        assert ["chatcmpl-CdxiKM2sGFeUQe8474UvhFH1JCdyg", "chatcmpl-CdxiLxsim8aZQkjlbehEB1uC7PSJi"] == [
            first.attributes[A.GEN_AI_RESPONSE_ID],
            second.attributes[A.GEN_AI_RESPONSE_ID],
        ]
    assert_ok_and_closed(driver, spans)
    assert_log_matches_spans(driver.lines(), spans)


def test_openai_error_401(driver: Driver) -> None:
    """A 401 reaches the caller as LangChain raised it, and the span records status ERROR, error.type, the message and an exception event, with no key-shaped secret anywhere."""
    model = openai_chat(model="gpt-4o")
    with replay("openai/error_401_invalid_api_key"), pytest.raises(openai.AuthenticationError) as raised:
        driver.invoke(model, "Who won the World Cup in 2022? Answer in one word.")

    error = raised.value
    assert isinstance(error, ModelAuthenticationError)  # langchain-openai's subclass of both
    assert 401 == error.status_code
    assert "invalid_api_key" == error.code
    kind = type(error)
    qualified = f"{kind.__module__}.{kind.__qualname__}"

    spans = driver.spans()
    span = only(spans, "chat gpt-4o")
    assert SpanKind.CLIENT == span.kind
    assert StatusCode.ERROR == span.status.status_code
    assert qualified == span.attributes[A.ERROR_TYPE]
    assert str(error) == span.attributes[A.ERROR_MESSAGE]
    assert "Incorrect API key provided" in span.attributes[A.ERROR_MESSAGE]
    assert str(error) == span.status.description
    assert qualified.rsplit(".", 1)[1] in span.attributes[A.ERROR_STACK_TRACE]
    assert A.GEN_AI_RESPONSE_MODEL not in span.attributes
    assert A.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes
    events = [e for e in span.events if e.name == "exception"]
    assert 1 == len(events)
    assert qualified == events[0].attributes["exception.type"]
    assert str(error) == events[0].attributes["exception.message"]
    assert 0 == driver.handler.open_runs

    lines = driver.lines()
    assert ["llm_start", "llm_error"] == [line[A.EVENT_ACTION] for line in lines]
    assert "error" == lines[1][A.LOG_LEVEL]
    assert "failure" == lines[1][A.EVENT_OUTCOME]
    assert qualified == lines[1][A.ERROR_TYPE]
    assert_log_matches_spans(lines, spans)

    # The body echoes "sk-." (too short to be a key); nothing key-shaped may appear anywhere.
    texts = all_texts(spans, lines)
    assert any("sk-." in text for text in texts)
    assert [] == [match for text in texts for match in KEY_SHAPED.findall(text)]
    assert [] == [text for text in texts if OPENAI_KEY in text]


def test_openai_embeddings_fire_no_callbacks(driver: Driver) -> None:
    """
    An OpenAIEmbeddings call produces no span and no log line: LangChain ``Embeddings`` take no
    callbacks and fire none, so lc_trace cannot see embedding calls (wrap them in a runnable to
    get at least the caller's span).
    """
    embeddings = OpenAIEmbeddings(
        api_key=OPENAI_KEY, max_retries=0, model="text-embedding-3-small", check_embedding_ctx_length=False
    )
    texts = ["Argentina won the World Cup in 2022.", "France won the World Cup in 2018."]
    with replay("openai/embeddings"):
        vectors = driver.run(lambda: embeddings.embed_documents(texts), lambda: embeddings.aembed_documents(texts))

    assert [1536, 1536] == [len(v) for v in vectors]
    assert [] == driver.spans()
    assert [] == driver.lines()
    assert 0 == driver.handler.open_runs


# --- Anthropic -----------------------------------------------------------------------------


def test_anthropic_message_basic(driver: Driver, expected: Expected) -> None:
    """A ChatAnthropic call maps provider, models, id, usage, and Anthropic's stop_reason as the finish reason."""
    model = anthropic_chat(model="claude-sonnet-4-6")
    with replay("anthropic/message_basic"):
        answer = driver.invoke(model, "What's the capital of France?")

    assert "The capital of France is **Paris**." == answer.content
    spans = driver.spans()
    span = only(spans, "chat claude-sonnet-4-6")
    assert SpanKind.CLIENT == span.kind
    attrs = span.attributes
    assert "anthropic" == attrs[A.GEN_AI_PROVIDER_NAME]
    assert "claude-sonnet-4-6" == attrs[A.GEN_AI_REQUEST_MODEL]
    assert "claude-sonnet-4-6" == attrs[A.GEN_AI_RESPONSE_MODEL]
    assert 1024 == attrs[A.GEN_AI_REQUEST_MAX_TOKENS]
    assert "msg_01BxqRkrCj33q9PDFgWUx6tL" == attrs[A.GEN_AI_RESPONSE_ID]
    assert ("end_turn",) == attrs[A.GEN_AI_RESPONSE_FINISH_REASONS]
    assert (14, 11) == (attrs[A.GEN_AI_USAGE_INPUT_TOKENS], attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS])
    assert (0, 0) == (
        attrs.get(A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
        attrs.get(expected.cache_write),
    )
    assert False is attrs[A.GEN_AI_REQUEST_STREAM]
    assert expected.output_messages(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "The capital of France is **Paris**."}],
                "finish_reason": "end_turn",
            }
        ]
    ) == json.loads(attrs[A.GEN_AI_OUTPUT_MESSAGES])
    assert_ok_and_closed(driver, spans)
    lines = driver.lines()
    assert_log_matches_spans(lines, spans)
    assert [] == [match for text in all_texts(spans, lines) for match in KEY_SHAPED.findall(text)]


def test_anthropic_message_stream(driver: Driver, expected: Expected) -> None:
    """A streamed ChatAnthropic call counts the 5 tokens the handler sees, takes usage 21/13 from the stream, finishes end_turn, and has no response id."""
    model = anthropic_chat(model="claude-sonnet-4-6")
    with replay("anthropic/message_stream"):
        chunks = driver.stream(model, "Why is the sky blue? Answer in 5 words or less")

    assert "Sunlight scatters off air molecules." == "".join(chunk.text for chunk in chunks)
    spans = driver.spans()
    span = only(spans, "chat claude-sonnet-4-6")
    attrs = span.attributes
    assert True is attrs[A.GEN_AI_REQUEST_STREAM]
    assert 5 == attrs[A.LC_STREAM_CHUNKS]  # on_llm_new_token calls (README), not SSE events
    assert 0 < attrs[A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert (21, 13) == (attrs[A.GEN_AI_USAGE_INPUT_TOKENS], attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS])
    assert (0, 0) == (
        attrs.get(A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
        attrs.get(expected.cache_write),
    )
    assert "claude-sonnet-4-6" == attrs[A.GEN_AI_RESPONSE_MODEL]
    assert ("end_turn",) == attrs[A.GEN_AI_RESPONSE_FINISH_REASONS]
    assert A.GEN_AI_RESPONSE_ID not in attrs
    lines = driver.lines()
    assert [] == [text for text in all_texts(spans, lines) if "lc_run--" in text]
    assert_ok_and_closed(driver, spans)
    assert_log_matches_spans(lines, spans)


def test_anthropic_tool_use(driver: Driver) -> None:
    """Anthropic tool_use blocks come out as tool_call parts with both recorded ids, beside the text block, with finish reason tool_use."""
    model = anthropic_chat(model="claude-sonnet-4-6").bind_tools([get_weather, get_time])
    question = "What is the weather like right now in New York? Also what time is it there? Use necessary tools simultaneously."
    with replay("anthropic/tool_use"):
        answer = driver.invoke(model, question)

    assert ["toolu_01VLL6XYAAGrtc7CDpmpKZMB", "toolu_01FZuC4jLWM67hKreLMKCLRe"] == [c["id"] for c in answer.tool_calls]
    spans = driver.spans()
    span = only(spans, "chat claude-sonnet-4-6")
    attrs = span.attributes
    assert ("tool_use",) == attrs[A.GEN_AI_RESPONSE_FINISH_REASONS]
    assert "msg_011geMdd2NTwJrvqbfqskQ7r" == attrs[A.GEN_AI_RESPONSE_ID]
    assert (721, 112) == (attrs[A.GEN_AI_USAGE_INPUT_TOKENS], attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS])
    assert [
        {
            "type": "tool_call",
            "id": "toolu_01VLL6XYAAGrtc7CDpmpKZMB",
            "name": "get_weather",
            "arguments": {"location": "New York, NY"},
        },
        {
            "type": "tool_call",
            "id": "toolu_01FZuC4jLWM67hKreLMKCLRe",
            "name": "get_time",
            "arguments": {"timezone": "America/New_York"},
        },
    ] == parts(span, A.GEN_AI_OUTPUT_MESSAGES, "tool_call")
    assert [
        {"type": "text", "content": "Sure! Let me fetch the current weather and time in New York simultaneously!"}
    ] == parts(span, A.GEN_AI_OUTPUT_MESSAGES, "text")
    output = attrs[A.GEN_AI_OUTPUT_MESSAGES]
    assert ["toolu_01VLL6XYAAGrtc7CDpmpKZMB", "toolu_01FZuC4jLWM67hKreLMKCLRe"] == [
        call_id for call_id in ("toolu_01VLL6XYAAGrtc7CDpmpKZMB", "toolu_01FZuC4jLWM67hKreLMKCLRe") if call_id in output
    ]
    assert_ok_and_closed(driver, spans)
    assert_log_matches_spans(driver.lines(), spans)


# --- streamed messages -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cassette", "make_model", "question"),
    [
        pytest.param(
            "openai/chat_stream_usage",
            lambda: openai_chat(model="gpt-4o-mini", stream_usage=True),
            "What is 10 + 5?",
            id="openai",
        ),
        pytest.param(
            "anthropic/message_stream",
            lambda: anthropic_chat(model="claude-sonnet-4-6"),
            "Why is the sky blue?",
            id="anthropic",
        ),
    ],
)
def test_streamed_output_message_role_is_assistant(
    driver: Driver, cassette: str, make_model: Callable[[], Any], question: str
) -> None:
    """A streamed answer's captured output message has the GenAI role `assistant`, as a non-streamed one does."""
    with replay(cassette):
        driver.stream(make_model(), question)

    span = driver.spans()[0]
    assert ["assistant"] == [m["role"] for m in json.loads(span.attributes[A.GEN_AI_OUTPUT_MESSAGES])]


def test_a_provider_id_on_the_streamed_message_alone_is_the_response_id(driver: Driver) -> None:
    """An integration that puts the provider's id on its chunks' message id (not in response_metadata) still gives gen_ai.response.id; LangChain's own `lc_run--` id never does."""
    answer = AIMessage("Roses are red.", id="chatcmpl-streamed42")
    with_id = GenericFakeChatModel(messages=iter([answer]))
    without_id = GenericFakeChatModel(messages=iter([AIMessage("Violets are blue.")]))
    streamed = driver.stream(with_id, "A rhyme?")
    driver.stream(without_id, "Another?")

    assert {"chatcmpl-streamed42"} == {chunk.id for chunk in streamed}
    first, second = driver.spans()
    assert (True, True) == (first.attributes[A.GEN_AI_REQUEST_STREAM], second.attributes[A.GEN_AI_REQUEST_STREAM])
    assert "chatcmpl-streamed42" == first.attributes[A.GEN_AI_RESPONSE_ID]
    assert A.GEN_AI_RESPONSE_ID not in second.attributes
    lines = driver.lines()
    assert ["chatcmpl-streamed42", None] == [
        line.get(A.GEN_AI_RESPONSE_ID) for line in lines if line[A.EVENT_ACTION] == "llm_end"
    ]
    assert_log_matches_spans(lines, [first, second])


# --- the offline guarantees themselves ---------------------------------------------------


def test_request_beyond_the_recording_fails_at_once() -> None:
    """A request the cassette has no (unplayed) interaction for fails immediately instead of being answered twice or sent out."""
    model = openai_chat(model="gpt-4o")
    with replay("openai/chat_basic"):
        model.invoke("What's 5 + 5?")
        with pytest.raises(CannotOverwriteExistingCassetteException, match="already been played back"):
            model.invoke("What's 5 + 5?")
