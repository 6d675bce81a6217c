"""
What a model call or a tool does underneath nests under its span (``lc_trace.instrument()``).

Real instrumentation from PyPI (opentelemetry-instrumentation-httpx, -requests, -sqlite3) on
the same in-memory provider as lc_trace's handler. The chat model is ``ChatOpenAI`` talking over
real HTTP to a server on 127.0.0.1 that answers with the recorded provider traffic
(tests/fixtures/provider-recordings; vcrpy's replay would skip httpx's transport, which is
where the httpx instrumentation makes its span). The tool queries a real SQLite database and
calls the same server. Every test also checks that the
OpenTelemetry context after a call is the one before it, and that nothing logged
"Failed to detach context".
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import yaml
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
from opentelemetry.sdk.trace import ReadableSpan

from lc_trace import AsyncTraceHandler, TraceHandler, _current
from lc_trace.testing import FakeChatModel, in_memory_tracing

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "provider-recordings"
OPENAI_KEY = "sk-proj-lctraceDummyKeyNotARealKey0123456789"
PROVIDER, EXPORTER = in_memory_tracing()


def recorded(name: str) -> tuple[int, dict[str, str], bytes]:
    """The first OpenAI response of a cassette: status, headers to replay, body as recorded."""
    data = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
    response = next(i["response"] for i in data["interactions"] if "api.openai.com" in i["request"]["uri"])
    body = response["body"]["string"]
    keep = {"content-type", "content-encoding"}
    headers = {k: v[0] for k, v in response["headers"].items() if k.lower() in keep}
    return response["status"]["code"], headers, body if isinstance(body, bytes) else body.encode()


CHAT = {
    "/basic/v1/chat/completions": recorded("openai/chat_basic"),
    "/stream/v1/chat/completions": recorded("openai/chat_stream_usage"),
}


class _Server(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802  # http.server's name
        self.answer(200, {"Content-Type": "application/json"}, json.dumps({"flower": "rose", "stock": 12}).encode())

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.answer(*CHAT[self.path])

    def answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # quiet
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1, on its own thread."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module", autouse=True)
def instrumented() -> Iterator[None]:
    """httpx, requests and sqlite3 instrumented on the test provider; LangChain's entry points by lc_trace."""
    instrumentors = [HTTPXClientInstrumentor(), RequestsInstrumentor(), SQLite3Instrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=PROVIDER)
    _current.instrument()
    _current.instrument()  # idempotent
    yield
    _current.uninstrument()
    for instrumentor in instrumentors:
        instrumentor.uninstrument()


@pytest.fixture(autouse=True)
def clean(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A fresh exporter; the context after the test is the one before it; no detach errors logged."""
    EXPORTER.clear()
    before = otel_context.get_current()
    with caplog.at_level(logging.WARNING):
        yield
    assert before is otel_context.get_current()
    assert [] == [r.getMessage() for r in caplog.records if "Failed to detach context" in r.getMessage()]


def spans() -> list[ReadableSpan]:
    return sorted(EXPORTER.get_finished_spans(), key=lambda s: s.start_time or 0)


def children(parent: ReadableSpan, every: list[ReadableSpan]) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in every if s.parent is not None and s.parent.span_id == parent.context.span_id]


def named(every: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in every if s.name.startswith(prefix)]


def run(mode: str, sync: Callable[[], Any], coro: Callable[[], Any]) -> Any:
    """Call *sync*, or run *coro*; in both, the context after is the context before."""
    before = otel_context.get_current()
    result = sync() if mode == "sync" else asyncio.run(coro())
    assert before is otel_context.get_current()
    return result


def handler(mode: str) -> TraceHandler | AsyncTraceHandler:
    kind = TraceHandler if mode == "sync" else AsyncTraceHandler
    return kind(tracer_provider=PROVIDER, log_path=None)


# --- the chat model's HTTP request --------------------------------------------------------------


def openai_chat(base_url: str, mode: str, **kwargs: Any) -> ChatOpenAI:
    """
    ChatOpenAI on an httpx client: openai 3 defaults to httpx2, which OpenTelemetry's httpx
    instrumentation does not know; it takes an httpx client as it is.
    """
    client = {"http_client": httpx.Client()} if mode == "sync" else {"http_async_client": httpx.AsyncClient()}
    return ChatOpenAI(api_key=OPENAI_KEY, base_url=base_url, max_retries=0, **client, **kwargs)  # type: ignore[arg-type]


CHAT_CALLS = ["invoke", "stream", "batch"]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("call", CHAT_CALLS)
def test_chat_model_http_request_nests_under_its_span(mode: str, call: str, server: str) -> None:
    """ChatOpenAI's HTTP request (httpx instrumentation) is a child of `chat {model}`, under invoke/ainvoke, stream/astream, batch/abatch."""
    config = {"callbacks": [handler(mode)]}
    streamed = call == "stream"
    base = f"{server}/stream/v1" if streamed else f"{server}/basic/v1"
    model = openai_chat(base, mode, model="gpt-4o-mini" if streamed else "gpt-4o", stream_usage=streamed)
    prompt = "What is 10 + 5?"

    def sync() -> Any:
        with model.http_client:  # type: ignore[union-attr]
            if call == "invoke":
                return model.invoke(prompt, config)
            if call == "stream":
                return list(model.stream(prompt, config))
            return model.batch([prompt, prompt], config)

    async def coro() -> Any:
        async with model.http_async_client:  # type: ignore[union-attr]
            if call == "invoke":
                return await model.ainvoke(prompt, config)
            if call == "stream":
                return [c async for c in model.astream(prompt, config)]
            return await model.abatch([prompt, prompt], config)

    result = run(mode, sync, coro)
    if call == "invoke":
        assert "\\(5 + 5 = 10\\)." == result.content  # the recorded answer, through the real client
    elif call == "stream":
        assert "10 + 5 equals 15." == "".join(c.text for c in result)

    every = spans()
    chats = named(every, "chat gpt-4o")
    assert len(chats) == (2 if call == "batch" else 1)
    for chat in chats:
        http = children(chat, every)
        assert ["POST"] == [s.name for s in http], [(s.name, s.parent) for s in every]
    assert len(named(every, "POST")) == len(chats)  # no HTTP span outside a model's


# --- a tool's SQL and HTTP calls ----------------------------------------------------------------


def make_tool(url: str) -> Any:
    @tool
    def stock(flower: str) -> str:
        """How many of a flower are in stock: the shop's database, then the warehouse."""
        db = sqlite3.connect(":memory:")
        try:
            cursor = db.cursor()
            cursor.execute("create table stock (flower text, n int)")
            cursor.execute("insert into stock values (?, ?)", (flower, 3))
            (n,) = cursor.execute("select n from stock where flower = ?", (flower,)).fetchone()
        finally:
            db.close()
        warehouse = requests.get(f"{url}/stock", timeout=5).json()["stock"]
        return f"{n + warehouse} {flower}s"

    return stock


def assert_tool_nests(every: list[ReadableSpan], tools: int = 1) -> None:
    executes = named(every, "execute_tool stock")
    assert tools == len(executes)
    for execute in executes:
        under = children(execute, every)
        assert ["create", "insert", "select", "get"] == [s.name.split()[0].lower() for s in under], [
            s.name for s in under
        ]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("call", ["invoke", "batch"])
def test_tool_sql_and_http_nest_under_its_span(mode: str, call: str, server: str) -> None:
    """A tool's SQLite queries and its HTTP call are children of `execute_tool {tool}`; the async mode runs the sync tool in LangChain's executor."""
    stock = make_tool(server)
    config = {"callbacks": [handler(mode)]}
    if call == "invoke":
        assert "15 roses" == run(mode, lambda: stock.invoke("rose", config), lambda: stock.ainvoke("rose", config))
        assert_tool_nests(spans())
    else:
        run(mode, lambda: stock.batch(["rose", "tulip"], config), lambda: stock.abatch(["rose", "tulip"], config))
        assert_tool_nests(spans(), tools=2)


def agent_model() -> FakeChatModel:
    call = AIMessage(content="", tool_calls=[{"name": "stock", "args": {"flower": "rose"}, "id": "call_1"}])
    return FakeChatModel(responses=[call, "There are 15 roses."])


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_langgraph_agent_tool_calls_nest(mode: str, server: str) -> None:
    """In a LangGraph agent (langchain's create_agent), the tool's SQL and HTTP spans nest under its execute_tool span."""
    from langchain.agents import create_agent

    agent = create_agent(agent_model(), [make_tool(server)])
    config = {"callbacks": [handler(mode)]}
    state = {"messages": [("user", "How many roses?")]}
    run(mode, lambda: agent.invoke(state, config), lambda: agent.ainvoke(state, config))
    assert_tool_nests(spans())


# --- never leave context attached --------------------------------------------------------------


def test_inside_a_request_span_and_after_it(server: str) -> None:
    """Under an app's own span, the run nests under it, the tool's calls under the run, and the app's span is current again after."""
    tracer = PROVIDER.get_tracer("app")
    stock = make_tool(server)
    with tracer.start_as_current_span("GET /shop") as request:
        stock.invoke("rose", {"callbacks": [handler("sync")]})
        assert request is trace.get_current_span()
    every = spans()
    (root,) = named(every, "GET /shop")
    assert ["execute_tool stock"] == [s.name for s in children(root, every)]
    assert_tool_nests(every)


@pytest.mark.parametrize("concurrent", [False, True])
def test_a_thousand_calls_each_their_own_trace(concurrent: bool) -> None:
    """1,000 sequential and 1,000 concurrent ainvoke calls give 1,000 traces: no call is ever a child of another."""
    tracer = PROVIDER.get_tracer("app")

    @tool
    def probe(n: int) -> int:
        """Starts one span of its own, as a client library would."""
        with tracer.start_as_current_span("inner"):
            return n

    config = {"callbacks": [handler("async")]}

    async def main() -> None:
        if concurrent:
            await asyncio.gather(*(probe.ainvoke({"n": n}, config) for n in range(1000)))
        else:
            for n in range(1000):
                await probe.ainvoke({"n": n}, config)

    run("async", lambda: None, main)
    every = spans()
    tools = named(every, "execute_tool probe")
    inner = named(every, "inner")
    assert 1000 == len(tools) == len(inner)
    assert all(s.parent is None for s in tools)
    assert 1000 == len({s.context.trace_id for s in tools if s.context is not None})
    by_id = {s.context.span_id: s for s in tools if s.context is not None}
    assert all(s.parent is not None and s.parent.span_id in by_id for s in inner)


def test_broken_stream_leaves_no_context(server: str) -> None:
    """A consumer that stops a stream early sees the context it had, between chunks and after."""
    model = FakeChatModel(responses=["one two three four"])
    config = {"callbacks": [handler("sync")]}
    before = otel_context.get_current()
    for _ in model.stream("count", config):
        assert before is otel_context.get_current()
        break
    assert before is otel_context.get_current()


def test_uninstrumented_nothing_nests(server: str) -> None:
    """Without lc_trace.instrument(), the tool's calls are roots of their own (what the issue reported)."""
    _current.uninstrument()
    try:
        make_tool(server).invoke("rose", {"callbacks": [handler("sync")]})
    finally:
        _current.instrument()
    every = spans()
    (execute,) = named(every, "execute_tool stock")
    assert [] == children(execute, every)


class _Recording(BaseCallbackHandler):
    """A user's own handler: notes the name of every event it receives."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_") and not name.startswith("on_stream_event"):
            events = object.__getattribute__(self, "events")
            return lambda *args, **kwargs: events.append(name)
        return object.__getattribute__(self, name)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_other_handlers_receive_what_they_did(mode: str, server: str) -> None:
    """With instrument() on, a user's own handler receives the same events as with it off (agent, tool, streamed model)."""
    from langchain.agents import create_agent

    def events() -> list[str]:
        mine = _Recording()
        config = {"callbacks": [handler(mode), mine]}
        agent = create_agent(agent_model(), [make_tool(server)])
        state = {"messages": [("user", "How many roses?")]}
        model = FakeChatModel(responses=["one two three"])

        async def coro() -> None:
            await agent.ainvoke(state, config)
            [c async for c in model.astream("count", config)]

        run(mode, lambda: (agent.invoke(state, config), list(model.stream("count", config))), coro)
        return mine.events

    on = events()
    _current.uninstrument()
    try:
        off = events()
    finally:
        _current.instrument()
    assert off == on
    assert "on_tool_start" in on and "on_chat_model_start" in on


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_app_exception_passes_through(mode: str) -> None:
    """A tool's own exception reaches the app unchanged, and the context is put back."""

    @tool
    def broken(flower: str) -> str:
        """Fails."""
        raise LookupError(flower)

    config = {"callbacks": [handler(mode)]}
    with pytest.raises(LookupError, match="rose"):
        run(mode, lambda: broken.invoke("rose", config), lambda: broken.ainvoke("rose", config))
    with pytest.raises(LookupError, match="rose"):
        run(mode, lambda: list(FakeChatModel(fail_with=LookupError("rose")).stream("x", config)), _astream_fail(config))


def _astream_fail(config: dict[str, Any]) -> Callable[[], Any]:
    async def coro() -> list[Any]:
        return [c async for c in FakeChatModel(fail_with=LookupError("rose")).astream("x", config)]

    return coro


def make_llm(url: str) -> Any:
    from langchain_core.language_models.fake import FakeListLLM

    class WarehouseLLM(FakeListLLM):
        """A text LLM that asks a server over HTTP, as a provider client does."""

        def _call(self, prompt: str, *args: Any, **kwargs: Any) -> str:
            return str(requests.get(f"{url}/stock", timeout=5).json()["stock"])

        async def _acall(self, prompt: str, *args: Any, **kwargs: Any) -> str:
            async with httpx.AsyncClient() as client:
                return str((await client.get(f"{url}/stock")).json()["stock"])

    return WarehouseLLM(responses=["unused"])


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("call", ["invoke", "stream"])
def test_text_llm_http_request_nests_under_its_span(mode: str, call: str, server: str) -> None:
    """A text LLM's HTTP request is a child of its `text_completion` span (async: under LangChain issue 39633's dispatch too)."""
    llm = make_llm(server)
    config = {"callbacks": [handler(mode)]}

    async def coro() -> Any:
        if call == "invoke":
            return await llm.ainvoke("stock?", config)
        return "".join([c async for c in llm.astream("stock?", config)])

    sync = (
        (lambda: llm.invoke("stock?", config)) if call == "invoke" else (lambda: "".join(llm.stream("stock?", config)))
    )
    assert "12" == run(mode, sync, coro)
    every = spans()
    (completion,) = named(every, "text_completion")
    assert ["GET"] == [s.name for s in children(completion, every)]


def test_lc_trace_failing_inside_never_reaches_the_app(monkeypatch: pytest.MonkeyPatch, server: str) -> None:
    """If lc_trace cannot find a run's span, the call still runs and returns; the error is counted, not raised."""
    from lc_trace._recorder import Recorder

    def broken(self: Recorder, run_id: Any) -> Any:
        raise RuntimeError("lc_trace bug")

    monkeypatch.setattr(Recorder, "span_of", broken)
    traced = handler("sync")
    config = {"callbacks": [traced]}
    assert "15 roses" == make_tool(server).invoke("rose", config)
    assert "Roses are red." == FakeChatModel().invoke("hi", config).content
    assert "Roses are red." == "".join(c.text for c in FakeChatModel().stream("hi", config))
    assert traced.stats.internal_errors >= 2
