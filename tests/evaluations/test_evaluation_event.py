"""
The OpenTelemetry side of an evaluation (``lc_trace._evaluation.emit_event``): a ``gen_ai.evaluation.result``
log event through the real SDK's LoggerProvider, with the evaluated span's context (trace id, span id, flags)
and the conventions' attributes. On every opentelemetry-sdk pyproject.toml allows: .ci/run runs this file on the
oldest (1.30, where the event's name is the ``event.name`` attribute) and on the newest (``event_name``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs import export as log_export
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

from lc_trace import evaluated, record_evaluation
from lc_trace.testing import FakeChatModel
from tests.conftest import REPO, call, flower_chain

# The SDK's in-memory exporter: InMemoryLogRecordExporter since 1.39, InMemoryLogExporter before (and an alias).
InMemoryLogs: Any = getattr(log_export, "InMemoryLogRecordExporter", None) or log_export.InMemoryLogExporter
EVALUATION = "gen_ai.evaluation.result"


@pytest.fixture
def logs() -> tuple[LoggerProvider, Any]:
    provider = LoggerProvider()
    exporter = InMemoryLogs()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider, exporter


def event_name(record: Any) -> str | None:
    """The event's name: LogRecord.event_name where the SDK has it (1.35 on), else the event.name attribute."""
    return getattr(record, "event_name", None) or dict(record.attributes or {}).get("event.name")


def own_attributes(record: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(record.attributes or {}).items() if k != "event.name"}


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_the_event_has_the_evaluated_spans_context(mode, make_handler, exporter, logs):
    """A model call evaluated by an app that evaluates (its runs remembered): one event named gen_ai.evaluation.result, on the model span's trace and span, sampled as it was."""
    provider, memory = logs
    handler = make_handler()
    run_id = uuid.uuid4()
    evaluated(RunnableLambda(lambda x: x), lambda io: 1.0, name="warm-up")  # the app evaluates: runs are remembered
    call(FakeChatModel(responses=["Tulips."]), "Spring flowers?", {"callbacks": [handler], "run_id": run_id}, mode)

    record_evaluation(
        "relevance", run_id=run_id, score=0.5, label="relevant", explanation="On topic.", logger_provider=provider
    )

    [span] = exporter.get_finished_spans()
    [data] = memory.get_finished_logs()
    record = data.log_record
    assert (span.context.trace_id, span.context.span_id) == (record.trace_id, record.span_id)
    assert span.context.trace_flags == record.trace_flags and record.trace_flags.sampled
    assert EVALUATION == event_name(record)
    assert {
        "gen_ai.evaluation.name": "relevance",
        "gen_ai.evaluation.score.value": 0.5,
        "gen_ai.evaluation.score.label": "relevant",
        "gen_ai.evaluation.explanation": "On topic.",
        "gen_ai.response.id": span.attributes["gen_ai.response.id"],
    } == own_attributes(record)
    assert ("INFO", 9) == (record.severity_text, record.severity_number.value)
    assert data.instrumentation_scope.name == "lc_trace"


def test_a_failed_evaluation_is_an_error_event_with_its_type(make_handler, exporter, logs):
    """error= gives error.type and severity ERROR; a chain (no model) has no response id to add."""
    provider, memory = logs
    handler = make_handler()
    call(flower_chain(), {"who": "mom"}, {"callbacks": [handler]}, "invoke")
    [root] = [span for span in exporter.get_finished_spans() if span.parent is None]

    record_evaluation("toxicity", trace_id=root.context.trace_id, error=TimeoutError("judge"), logger_provider=provider)

    [data] = memory.get_finished_logs()
    assert (root.context.trace_id, root.context.span_id) == (data.log_record.trace_id, data.log_record.span_id)
    assert {"gen_ai.evaluation.name": "toxicity", "error.type": "TimeoutError"} == own_attributes(data.log_record)
    assert ("ERROR", 17) == (data.log_record.severity_text, data.log_record.severity_number.value)


def test_with_no_logger_provider_there_is_no_event_and_no_error(make_handler, log_path):
    """Nothing set: the line is written, the event goes nowhere, nothing is raised or warned (warnings are errors here)."""
    from opentelemetry._logs import get_logger_provider

    assert not isinstance(get_logger_provider(), LoggerProvider), "a test set a global logger provider"
    handler = make_handler()
    run_id = uuid.uuid4()
    call(flower_chain(), {"who": "mom"}, {"callbacks": [handler], "run_id": run_id}, "invoke")

    recorded = record_evaluation("helpfulness", run_id=run_id, score=1.0)

    assert recorded.span_id in {line.get("span.id") for line in handler.flush() and read(log_path)}


def read(path: Any) -> list[dict[str, Any]]:
    from lc_trace.testing import read_log

    return read_log(path)


GLOBAL = """
import json, sys
from langchain_core.callbacks import dispatch_custom_event
from langchain_core.runnables import RunnableLambda
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs import export
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from lc_trace import TraceHandler
from lc_trace.testing import in_memory_tracing

memory = (getattr(export, "InMemoryLogRecordExporter", None) or export.InMemoryLogExporter)()
provider = LoggerProvider()
provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
set_logger_provider(provider)
tracer_provider, spans = in_memory_tracing()
handler = TraceHandler(tracer_provider=tracer_provider, log_path=sys.argv[1])

def grade(answer):
    dispatch_custom_event("gen_ai.evaluation.result", {"name": "length", "score": len(answer), "label": "short"})
    return answer

RunnableLambda(grade, name="grade").invoke("A rose.", {"callbacks": [handler]})
handler.close()
[span] = spans.get_finished_spans()
[data] = memory.get_finished_logs()
record = data.log_record
print(json.dumps({
    "span": [span.context.trace_id, span.context.span_id, int(span.context.trace_flags)],
    "event": [record.trace_id, record.span_id, int(record.trace_flags)],
    "name": getattr(record, "event_name", None) or dict(record.attributes).get("event.name"),
    "attributes": {k: v for k, v in dict(record.attributes).items() if k != "event.name"},
}))
"""


def test_an_in_app_evaluation_goes_to_the_global_logger_provider(tmp_path):
    """The custom-event path (no provider to pass): the app's global logger provider gets the event, on the dispatching run's span."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(GLOBAL), str(tmp_path / "app.jsonl")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 0 == done.returncode, done.stderr
    out = json.loads(done.stdout)
    assert out["span"] == out["event"] and out["span"][2] & 1  # the span's flags: sampled (and random, SDKs of late)
    assert EVALUATION == out["name"]
    assert {
        "gen_ai.evaluation.name": "length",
        "gen_ai.evaluation.score.value": 7.0,
        "gen_ai.evaluation.score.label": "short",
    } == out["attributes"]
