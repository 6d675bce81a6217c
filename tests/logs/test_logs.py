"""Log lines: one ECS JSON line per event, matching the spans id for id, typed the same on every line."""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import json
import os
import re
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import dispatch_custom_event
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda
from opentelemetry.sdk.resources import Resource
from pydantic import BaseModel, SecretStr

from lc_trace import _attributes as A
from lc_trace.testing import FakeChatModel, read_log
from tests.conftest import HANDLERS, MODES, call, flower_chain, log_lines, spans_by_name
from tests.spans.test_spans import FlowerRetriever, broken_vase, flower_price


def epoch_ns(stamp: str) -> int:
    """An @timestamp as nanoseconds since the epoch."""
    seconds = dt.datetime.fromisoformat(stamp[:19] + "+00:00").timestamp()
    return int(seconds) * 1_000_000_000 + int(stamp[20:29])


def busy_day(handler: Any, mode: str) -> None:
    """A varied workload: a chain, a stream, a tool, a failing tool, a retriever, a custom event."""
    config = {"callbacks": [handler]}
    call(flower_chain(), {"who": "mom"}, config, mode)
    list(flower_chain().stream({"who": "dad"}, config))
    call(flower_price, {"flower": "rose"}, config, mode)
    with pytest.raises(RuntimeError):
        call(broken_vase, {"size": "XL"}, config, mode)
    call(FlowerRetriever(), "roses", config, mode)
    call(
        RunnableLambda(lambda x: dispatch_custom_event("restocked", {"n": x}) or x, name="restock"), 3, config, "invoke"
    )


@pytest.mark.parametrize("handler_cls", HANDLERS)
@pytest.mark.parametrize("mode", MODES)
class TestLinesMatchSpans:
    def test_every_span_has_start_and_end_lines_with_its_ids(self, handler_cls, mode, make_handler, exporter):
        """Each span's trace.id/span.id appear on exactly its start line and its end (or error) line."""
        handler = make_handler(handler_cls)
        busy_day(handler, mode)
        lines = log_lines(handler)
        for span in exporter.get_finished_spans():
            ids = (format(span.context.trace_id, "032x"), format(span.context.span_id, "016x"))
            mine = [
                line
                for line in lines
                if (line["trace.id"], line["span.id"]) == ids and line["event.action"] != "custom_event"
            ]
            assert 2 == len(mine), span.name
            start, end = mine
            assert start["event.action"].endswith("_start")
            assert end["event.action"].endswith(("_end", "_error"))
            assert span.attributes["langchain.run.id"] == start["langchain.run.id"] == end["langchain.run.id"]
            assert span.end_time - span.start_time == end["event.duration"]
            # What a span needs beyond its attributes, so `lc-trace export` can rebuild it exactly.
            parent = format(span.parent.span_id, "016x") if span.parent else None
            kind = span.kind.name
            for line in (start, end):
                assert (span.name, kind, parent) == (line["span.name"], line["span.kind"], line.get("parent.id"))
            assert (span.start_time, span.end_time) == (epoch_ns(start["@timestamp"]), epoch_ns(end["@timestamp"]))
            both = {**start, **end}  # input is logged at the start, everything else by the end
            for key, value in span.attributes.items():  # one vocabulary: the span's values on its lines
                expected = list(value) if isinstance(value, tuple) else value
                assert expected == both[key], (span.name, key)

    def test_lines_are_ecs(self, handler_cls, mode, make_handler):
        """Every line has the ECS base fields, with @timestamp in UTC to the nanosecond."""
        handler = make_handler(handler_cls, service_name="flower-shop")
        busy_day(handler, mode)
        for line in log_lines(handler):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", line["@timestamp"])
            assert line["log.level"] in {"info", "error"}
            assert "8.11.0" == line["ecs.version"]
            assert "flower-shop" == line["service.name"]
            assert line["message"].startswith(line["event.action"])
            assert re.fullmatch(r"[0-9a-f]{32}", line["trace.id"]) and re.fullmatch(r"[0-9a-f]{16}", line["span.id"])

    def test_a_field_never_changes_type(self, handler_cls, mode, make_handler):
        """Across all kinds of events, each key always holds the same JSON type (Elasticsearch rejects conflicts)."""
        handler = make_handler(handler_cls)
        busy_day(handler, mode)
        types: dict[str, set[str]] = defaultdict(set)
        for line in log_lines(handler):
            for key, value in line.items():
                types[key].add(type(value).__name__)
        mixed = {key: kinds for key, kinds in types.items() if len(kinds) > 1}
        assert {} == mixed


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_error_line(handler_cls, make_handler):
    """A failed run's line is level error with the ECS error fields and outcome failure."""
    handler = make_handler(handler_cls)
    with pytest.raises(RuntimeError):
        broken_vase.invoke({"size": "XL"}, {"callbacks": [handler]})
    (line,) = [line for line in log_lines(handler) if line["event.action"] == "tool_error"]
    assert ("error", "failure") == (line["log.level"], line["event.outcome"])
    assert "RuntimeError" == line["error.type"]
    assert "vase of size XL is broken" == line["error.message"]
    assert "Traceback (most recent call last)" in line["error.stack_trace"]


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_token_lines_are_off_by_default_and_on_when_asked(handler_cls, make_handler, tmp_path):
    """Streaming writes no per-token lines unless log_tokens=True."""
    quiet = make_handler(handler_cls)
    list(flower_chain().stream({"who": "mom"}, {"callbacks": [quiet]}))
    assert [] == [l for l in log_lines(quiet) if l["event.action"] == "llm_new_token"]
    loud = make_handler(handler_cls, log_path=tmp_path / "tokens.jsonl", log_tokens=True)
    list(flower_chain(FakeChatModel(responses=["red rose"])).stream({"who": "mom"}, {"callbacks": [loud]}))
    tokens = [l for l in log_lines(loud) if l["event.action"] == "llm_new_token"]
    assert ['"red"', '" rose"', '""'] == [t["langchain.token.text"] for t in tokens]
    assert [0, 1, 2] == [t["langchain.token.index"] for t in tokens]


CAPTURE_OFF = [
    ({"capture_content": False}, {}),
    ({}, {"LC_TRACE_CAPTURE_CONTENT": "false"}),
    ({}, {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "NO_CONTENT"}),
]


@pytest.mark.parametrize(("kwargs", "env"), CAPTURE_OFF, ids=["argument", "lc_trace_env", "otel_env"])
def test_capture_off_records_no_content_anywhere(kwargs, env, make_handler, exporter, monkeypatch):
    """With capture off (argument or either variable), no span and no line carries prompts or outputs."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    handler = make_handler(**kwargs)
    assert False is handler.capture_content
    busy_day(handler, "invoke")
    for span in exporter.get_finished_spans():
        assert set() == set(span.attributes) & A.CONTENT_KEYS
        for event in span.events:
            assert set() == set(event.attributes) & A.CONTENT_KEYS
    text = json.dumps(log_lines(handler))
    assert set() == {key for line in log_lines(handler) for key in line} & A.CONTENT_KEYS
    assert "florist" not in text and "mom" not in text


def test_capture_argument_wins_over_environment(make_handler, monkeypatch):
    """An explicit capture_content=True wins over the variable (argument, then environment)."""
    monkeypatch.setenv("LC_TRACE_CAPTURE_CONTENT", "false")
    assert True is make_handler(capture_content=True).capture_content


OPENAI_KEY = "sk-proj-Zq8vT3BlbkFJ4aX9c0d1e2f3g4h5i6j7k8A5"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmbG9yaXN0In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
LIVE_KEY = "sk-live-4eC39HqLyjWDarjtT1zdp7dc"


class KeyedChat(FakeChatModel):
    """A model holding its API key as SecretStr, as provider clients do."""

    api_key: SecretStr = SecretStr(OPENAI_KEY)


@pytest.mark.parametrize("handler_cls", HANDLERS)
@pytest.mark.parametrize("capture", [True, False])
def test_secrets_are_redacted_everywhere(handler_cls, capture, make_handler, exporter):
    """Keys, bearer tokens and secret metadata never reach a span or a line, content on or off."""
    handler = make_handler(handler_cls, capture_content=capture)
    chain = flower_chain(KeyedChat(responses=[f"Your key is {OPENAI_KEY}"]))
    config = {"callbacks": [handler], "metadata": {"api_key": LIVE_KEY, "shop": "north"}}
    chain.invoke({"who": f"header Bearer {JWT} and key {OPENAI_KEY}"}, config)
    with pytest.raises(ValueError):
        RunnableLambda(
            lambda x: (_ for _ in ()).throw(ValueError(f"bad credentials {OPENAI_KEY}")), name="auth"
        ).invoke(1, config)
    blobs = [
        json.dumps(dict(s.attributes)) + json.dumps([dict(e.attributes) for e in s.events])
        for s in exporter.get_finished_spans()
    ]
    assert handler.flush()
    blobs.append(Path(handler.log_path).read_text())
    for blob in blobs:
        for secret in (OPENAI_KEY, JWT, LIVE_KEY, "Zq8vT3Blbk"):
            assert secret not in blob
    assert "[REDACTED]" in blobs[-1]
    spans = spans_by_name(exporter)
    assert "[REDACTED]" == spans["RunnableSequence"].attributes["langchain.metadata.api_key"]
    assert "north" == spans["RunnableSequence"].attributes["langchain.metadata.shop"]


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("repr boom")

    __str__ = __repr__


class ArrayLike:
    """Quacks like a numpy array (numpy itself is not a dependency)."""

    shape = (3,)
    size = 3
    dtype = "float32"

    def tolist(self) -> list[float]:
        return [0.5, 1.5, 2.5]


class Order(BaseModel):
    flower: str
    when: dt.datetime


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_bad_objects_give_valid_lines_field_by_field(handler_cls, make_handler, exporter):
    """Cycles, bytes, unprintable objects, NaN, huge strings and odd types each degrade alone, never raise."""
    handler = make_handler(handler_cls, max_content_length=1000)
    cycle: list[Any] = []
    cycle.append(cycle)
    payload = {
        "cycle": cycle,
        "raw": b"\xff\xfe",
        "bad": Unprintable(),
        "nan": float("nan"),
        "big": "x" * 5_000_000,
        "when": dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.UTC),
        "array": ArrayLike(),
        "order": Order(flower="rose", when=dt.datetime(2026, 11, 22)),
        "doc": Document(page_content="Roses mean love."),
        "set": {"tulip"},
    }
    assert "ok" == RunnableLambda(lambda d: "ok", name="odd").invoke(payload, {"callbacks": [handler]})
    recorded = spans_by_name(exporter)["odd"].attributes["langchain.input"]
    assert len(recorded) < 1200
    assert recorded.endswith("chars]") and "…[truncated" in recorded
    head = recorded[: recorded.index("…[truncated")]
    for fragment in ('"cycle":["<cycle: list>"]', '"raw":"<2 bytes>"', "(repr failed)>", '"nan":"nan"', '"big":"xxx'):
        assert fragment in head
    (start,) = [l for l in log_lines(handler) if l["event.action"] == "chain_start"]
    assert recorded == start["langchain.input"]
    assert 0 == handler.stats.internal_errors
    small = make_handler(handler_cls, log_path=None)
    RunnableLambda(lambda d: "ok", name="odd2").invoke(
        {k: v for k, v in payload.items() if k != "big"}, {"callbacks": [small]}
    )
    parsed = json.loads(spans_by_name(exporter)["odd2"].attributes["langchain.input"])
    assert {"flower": "rose", "when": "2026-11-22T00:00:00"} == parsed["order"]
    assert [0.5, 1.5, 2.5] == parsed["array"]
    assert "2026-11-22T09:30:00+00:00" == parsed["when"]
    assert {"page_content": "Roses mean love.", "metadata": {}} == parsed["doc"]


def test_log_lines_without_an_sdk_still_carry_nesting_ids(tmp_path):
    """With no tracer provider configured at all, lines still get trace and span ids that group and nest."""
    from opentelemetry.trace import NoOpTracerProvider

    from lc_trace import TraceHandler

    handler = TraceHandler(tracer_provider=NoOpTracerProvider(), log_path=tmp_path / "x.jsonl")
    flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
    lines = log_lines(handler)
    handler.close()
    assert 1 == len({l["trace.id"] for l in lines})
    assert 4 == len({l["span.id"] for l in lines})
    assert {"0" * 32} != {l["trace.id"] for l in lines}


def test_async_handler_survives_event_loop_closing(make_handler):
    """Lines from an asyncio.run() that has returned are still written: the writer has its own loop."""
    from lc_trace import AsyncTraceHandler

    handler = make_handler(AsyncTraceHandler)
    for who in ("mom", "dad"):
        asyncio.run(flower_chain().ainvoke({"who": who}, {"callbacks": [handler]}))
    assert 16 == len(log_lines(handler))


@pytest.mark.parametrize("handler_cls", HANDLERS)
@pytest.mark.log_schema_extra_keys("deployment")
def test_user_structlog_processors_shape_and_drop_lines(handler_cls, make_handler):
    """
    ``log_processors`` are plain structlog processors: one adds a field, one drops lines with
    structlog's own DropEvent; the rest of the line is lc_trace's, and nothing counts as lost.
    """
    import structlog

    def add_deployment(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        event["deployment"] = "eu-1"
        return event

    def drop_prompt_lines(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("langchain.run.type") == "prompt":
            raise structlog.DropEvent
        return event

    handler = make_handler(handler_cls, log_processors=[add_deployment, drop_prompt_lines])
    flower_chain().invoke({"who": "mum"}, {"callbacks": [handler]})
    lines = log_lines(handler)
    assert 6 == len(lines)  # 4 runs x (start, end), minus the prompt's two
    assert {"eu-1"} == {line["deployment"] for line in lines}
    assert "prompt" not in {line["langchain.run.type"] for line in lines}
    assert (0, 0) == (handler.stats.dropped, handler.stats.internal_errors)


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_an_agents_lines_after_it_is_promoted_carry_its_new_name(handler_cls, make_handler, log_path):
    """
    A run that becomes an agent mid-run: its later lines say so, with the same fields in the
    same order whether or not they go through structlog's chain (a user processor).
    """
    from langchain_core.agents import AgentAction, AgentFinish

    def agent_step(question: str, run_manager: Any) -> str:
        run_manager.on_agent_action(AgentAction(tool="flower_price", tool_input={"flower": "rose"}, log="price"))
        run_manager.on_agent_finish(AgentFinish(return_values={"output": "3.50"}, log="done"))
        return "3.50"

    plain = make_handler(handler_cls)
    chained = make_handler(
        handler_cls, log_path=log_path.with_name("chained.jsonl"), log_processors=[lambda logger, level, e: e]
    )
    RunnableLambda(agent_step, name="florist_agent").invoke("price?", {"callbacks": [plain, chained]})
    volatile = {A.TIMESTAMP, A.TRACE_ID, A.SPAN_ID, A.PARENT_ID, A.EVENT_DURATION}
    lines = [[{k: v for k, v in line.items() if k not in volatile} for line in log_lines(h)] for h in (plain, chained)]
    assert lines[0] == lines[1]
    assert [list(line) for line in lines[0]] == [list(line) for line in lines[1]]  # same key order
    names = [(line[A.EVENT_ACTION], line[A.SPAN_NAME]) for line in lines[0]]
    assert [
        ("chain_start", "florist_agent"),
        ("agent_action", "invoke_agent florist_agent"),
        ("agent_finish", "invoke_agent florist_agent"),
        ("chain_end", "invoke_agent florist_agent"),
    ] == names
    assert "invoke_agent" == lines[0][-1][A.GEN_AI_OPERATION_NAME]


def test_lines_without_user_processors_are_the_bytes_structlog_would_render():
    """With no user processor a line skips structlog's copies, and its bytes are the same as through the chain."""
    from lc_trace._logs._sink import LogSink

    direct: list[bytes] = []
    chained: list[bytes] = []
    fields = {
        "_ns": 1_796_000_000_123_456_789,
        A.EVENT_ACTION: "chain_start",
        A.TRACE_ID: "a" * 32,
        A.SPAN_ID: "b" * 16,
        A.LC_TAGS: ("x", "y"),
        A.LC_INPUT: '{"who":"mom"}',
    }
    LogSink(direct.append, "flower-shop").emit("info", "chain_start RunnableSequence", dict(fields))
    LogSink(chained.append, "flower-shop", [lambda logger, level, event: event]).emit(
        "info", "chain_start RunnableSequence", dict(fields)
    )
    assert chained == direct
    line = json.loads(direct[0])
    assert line["@timestamp"].endswith(".123456789Z")
    assert "_ns" not in line


# --- every line names its process ----------------------------------------------------------

# Whether this SDK gives every process's resources a service.instance.id of its own (newer SDKs do, and
# renew it in a forked child); with one that does not, lc_trace's lines carry a UUID it makes per process.
SDK_NAMES_EACH_PROCESS = "service.instance.id" in Resource.create().attributes


@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_every_line_names_its_process_as_its_spans_resource_does(handler_cls, make_handler, exporter):
    """Every line, the drop report included, carries process.pid and the service.instance.id that its spans' resource has."""
    handler = make_handler(handler_cls, queue_size=1)
    busy_day(handler, "invoke")
    # Drops for the drop report, whatever the load: the writer is held at the log folder's lock (as
    # by another process rotating the file) while a busy day queues its lines into room for one.
    folder = os.open(os.path.dirname(handler.log_path), os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        busy_day(handler, "invoke")
        fcntl.flock(folder, fcntl.LOCK_UN)
    finally:
        os.close(folder)
    lines = log_lines(handler)
    assert handler.stats.dropped_queue_full > 0
    assert "lc_trace_dropped" in {line[A.EVENT_ACTION] for line in lines}
    [instance] = {span.resource.attributes.get("service.instance.id") for span in exporter.get_finished_spans()}
    if not SDK_NAMES_EACH_PROCESS:  # an older SDK's resource names none: the lines carry lc_trace's own UUID
        [instance] = {line[A.SERVICE_INSTANCE_ID] for line in lines}
    assert {(os.getpid(), instance)} == {(line[A.PROCESS_PID], line[A.SERVICE_INSTANCE_ID]) for line in lines}
    assert str(uuid.UUID(instance)) == instance


def test_configured_apps_lines_and_spans_name_the_same_instance(tmp_path, monkeypatch):
    """configure()'s resource carries a service.instance.id, and its handler's lines carry the same one."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import lc_trace

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", trace.Once())
    exporter = InMemorySpanExporter()
    handler = lc_trace.configure("flower-shop", exporter=exporter, set_global=False, log_path=tmp_path / "app.jsonl")
    flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
    lines = log_lines(handler)
    assert handler.close()
    [instance] = {span.resource.attributes["service.instance.id"] for span in exporter.get_finished_spans()}
    assert {instance} == {line[A.SERVICE_INSTANCE_ID] for line in lines}


FORKING_APP = """
import json, os, sys
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from langchain_core.runnables import RunnableLambda
from opentelemetry.sdk.resources import Resource
from lc_trace import TraceHandler

exporter = InMemorySpanExporter()
if sys.argv[2] == "global":  # the app's own resource, on the global provider the handler finds
    provider = TracerProvider(resource=Resource.create({"service.instance.id": "florist-7"}))
    trace.set_tracer_provider(provider)
    handler = TraceHandler(log_path=sys.argv[1])
else:  # OTEL_RESOURCE_ATTRIBUTES, on a provider given to the handler
    provider = TracerProvider()
    handler = TraceHandler(tracer_provider=provider, log_path=sys.argv[1])
provider.add_span_processor(SimpleSpanProcessor(exporter))
# The handler is built before the fork, as under gunicorn --preload.
step = RunnableLambda(lambda who: who, name="step")
step.invoke("parent", {"callbacks": [handler]})
children = []
for n in range(2):
    pid = os.fork()
    if pid == 0:
        exporter.clear()
        step.invoke(f"child-{n}", {"callbacks": [handler]})
        handler.flush()
        [span] = exporter.get_finished_spans()
        # one write per line (under PYTHONUNBUFFERED, print writes the newline apart: the children's lines interleave)
        sys.stdout.write(json.dumps({"who": f"child-{n}", "pid": os.getpid(), "span": span.resource.attributes["service.instance.id"]}) + "\\n")
        sys.stdout.flush()
        os._exit(0)
    children.append(pid)
for pid in children:
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
[span] = exporter.get_finished_spans()
print(json.dumps({"who": "parent", "pid": os.getpid(), "span": span.resource.attributes["service.instance.id"]}), flush=True)
handler.close()
"""


@pytest.mark.parametrize("where", ["global", "environment"])
def test_a_forked_child_names_itself(tmp_path, where):
    """
    A real os.fork() after the handler is built (a pre-forking server): the parent's lines carry the
    service.instance.id its resource names (in code on the global provider, or in
    OTEL_RESOURCE_ATTRIBUTES), each child's its own pid and a new instance id, the one the SDK gives
    the child's spans.
    """
    script = tmp_path / "app.py"
    script.write_text(FORKING_APP)
    log = tmp_path / "app.jsonl"
    environment = {"OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=florist-7"} if where == "environment" else {}
    done = subprocess.run(
        [sys.executable, str(script), str(log), where],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 0 == done.returncode, done.stderr
    processes = {row["who"]: row for row in map(json.loads, done.stdout.splitlines())}
    lines = read_log(log)
    seen = {
        json.loads(line[A.LC_INPUT]): (line[A.PROCESS_PID], line[A.SERVICE_INSTANCE_ID])
        for line in lines
        if line[A.EVENT_ACTION] == "chain_start"
    }
    assert ("florist-7", "florist-7") == (processes["parent"]["span"], seen["parent"][1])
    for who, row in processes.items():
        if SDK_NAMES_EACH_PROCESS or who == "parent":  # an older SDK keeps the parent's id on a child's spans
            assert (row["pid"], row["span"]) == seen[who], who
        else:
            assert row["pid"] == seen[who][0], who
    assert 3 == len({pid for pid, _ in seen.values()}) == len({instance for _, instance in seen.values()})
    assert 6 == len(lines)
