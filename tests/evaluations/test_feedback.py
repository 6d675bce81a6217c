"""
``lc_trace.record_evaluation`` (``lc_trace._feedback``): one call names a run by its LangChain run id,
or a trace by its id, and the evaluation becomes a ``gen_ai.evaluation.result`` line carrying that
run's span ids (checked against the real spans of an InMemorySpanExporter) and its model: in the
app's process while the handler holds the run or remembers it, later from the log once it does
not, and from another process (a real subprocess) after the app closed its handler.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import lc_trace
from lc_trace import RunNotFoundError, record_evaluation
from lc_trace._recorder import _REMEMBERED
from lc_trace.testing import FakeChatModel, read_log
from tests.conftest import HANDLERS, MODES, REPO, call, flower_chain, log_lines

EVALUATION = "gen_ai.evaluation.result"


def evaluation_lines(path: Any) -> list[dict[str, Any]]:
    return [line for line in read_log(path) if line["event.action"] == EVALUATION]


def ids(span: ReadableSpan) -> tuple[str, str]:
    """A span's trace and span id as the log writes them."""
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def root_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    [root] = [span for span in exporter.get_finished_spans() if span.parent is None]
    return root


def model_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    [model] = [span for span in exporter.get_finished_spans() if span.name.startswith("chat ")]
    return model


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("handler_cls", HANDLERS)
def test_by_run_id_in_the_apps_process(handler_cls, mode, make_handler, exporter):
    """A chain's run id, right after invoke/ainvoke: the line carries its span's ids, its name, and what was said."""
    handler = make_handler(handler_cls, service_name="flower-shop")
    run_id = uuid.uuid4()
    call(flower_chain(), {"who": "mom"}, {"callbacks": [handler], "run_id": run_id}, mode)

    recorded = record_evaluation(
        "helpfulness", run_id=run_id, score=0.75, label="good", explanation="A rose suits a mother."
    )

    [line] = [line for line in log_lines(handler) if line["event.action"] == EVALUATION]
    trace_id, span_id = ids(root_span(exporter))
    assert (trace_id, span_id, str(run_id)) == (line["trace.id"], line["span.id"], line["langchain.run.id"])
    assert (trace_id, span_id, str(run_id)) == (recorded.trace_id, recorded.span_id, recorded.run_id)
    assert {
        "gen_ai.evaluation.name": "helpfulness",
        "gen_ai.evaluation.score.value": 0.75,
        "gen_ai.evaluation.score.label": "good",
        "gen_ai.evaluation.explanation": "A rose suits a mother.",
        "langchain.run.name": "RunnableSequence",
        "service.name": "flower-shop",
        "log.level": "info",
    }.items() <= line.items()
    assert "gen_ai.request.model" not in line  # a chain called no model itself
    assert "gen_ai.evaluation.result helpfulness: 0.75 good (RunnableSequence)" == line["message"]


@pytest.mark.parametrize("mode", MODES)
def test_a_model_calls_evaluation_carries_its_model_and_response_id(mode, make_handler, exporter):
    """Evaluating a chat model's run: the line names the model asked for, the one that answered, and the response id, as its span does."""
    handler = make_handler()
    run_id = uuid.uuid4()
    call(FakeChatModel(responses=["Tulips."]), "Spring flowers?", {"callbacks": [handler], "run_id": run_id}, mode)

    recorded = record_evaluation("correctness", run_id=str(run_id), score=1)

    [line] = [line for line in log_lines(handler) if line["event.action"] == EVALUATION]
    span = model_span(exporter)
    assert ids(span) == (line["trace.id"], line["span.id"])
    for key in ("gen_ai.request.model", "gen_ai.response.model", "gen_ai.response.id"):
        assert span.attributes[key] == line[key], key
    assert (1.0, span.attributes["gen_ai.response.model"], span.attributes["gen_ai.response.id"]) == (
        recorded.score,
        recorded.model,
        recorded.response_id,
    )
    assert isinstance(line["gen_ai.evaluation.score.value"], float)


@pytest.mark.parametrize("mode", MODES)
def test_by_trace_id_evaluates_the_top_level_run(mode, make_handler, exporter):
    """A trace id, as text or as the int a span context holds: the evaluation is the trace's top-level run's."""
    handler = make_handler()
    call(flower_chain(), {"who": "dad"}, {"callbacks": [handler]}, mode)
    root = root_span(exporter)

    record_evaluation("user_feedback", trace_id=root.context.trace_id, label="thumbs_up")
    record_evaluation("user_feedback", trace_id=format(root.context.trace_id, "032X"), label="thumbs_down")

    lines = [line for line in log_lines(handler) if line["event.action"] == EVALUATION]
    assert [ids(root)] * 2 == [(line["trace.id"], line["span.id"]) for line in lines]
    assert ["thumbs_up", "thumbs_down"] == [line["gen_ai.evaluation.score.label"] for line in lines]


def test_a_run_still_under_way_can_be_evaluated(make_handler, exporter):
    """From inside the chain, its own run (still open) by run id: the line has the span that is about to end."""
    handler = make_handler()
    run_id = uuid.uuid4()

    def step(text: str) -> str:
        record_evaluation("length", run_id=run_id, score=len(text))
        return text

    RunnableLambda(step, name="step").invoke("rose", {"callbacks": [handler], "run_id": run_id})

    [line] = [line for line in log_lines(handler) if line["event.action"] == EVALUATION]
    assert ids(root_span(exporter)) == (line["trace.id"], line["span.id"])
    assert 4.0 == line["gen_ai.evaluation.score.value"]


def test_after_the_handler_closed_the_line_goes_to_its_file(make_handler, exporter, log_path):
    """The handler closed (as at the app's exit): it still knows the run, and the line is written to its file, not dropped."""
    handler = make_handler()
    run_id = uuid.uuid4()
    call(flower_chain(), {"who": "aunt"}, {"callbacks": [handler], "run_id": run_id}, "invoke")
    handler.close()

    record_evaluation("helpfulness", run_id=run_id, score=0.5)

    [line] = evaluation_lines(log_path)
    assert ids(root_span(exporter)) == (line["trace.id"], line["span.id"])
    assert 0 == handler.stats.dropped_after_close


def test_a_run_the_handler_no_longer_remembers_is_found_in_its_log(make_handler, exporter, log_path):
    """Past the ended runs a handler remembers, the run is read back from its log (lines still queued are flushed first)."""
    handler = make_handler(flush_interval_ms=60_000)  # nothing reaches the file unless flushed
    run_id = uuid.uuid4()
    call(flower_chain(), {"who": "gran"}, {"callbacks": [handler], "run_id": run_id}, "invoke")
    root = root_span(exporter)
    step = RunnableLambda(lambda x: x, name="step")
    for i in range(2 * _REMEMBERED):
        step.invoke(i, {"callbacks": [handler]})
    assert handler._recorder.find_run(str(run_id)) is None, "the test needs a run the handler has forgotten"

    recorded = record_evaluation("helpfulness", run_id=run_id, score=0.25)

    assert ids(root) == (recorded.trace_id, recorded.span_id)
    assert [ids(root)] == [(line["trace.id"], line["span.id"]) for line in evaluation_lines(handler.log_path)]


APP = """
import sys, uuid
from lc_trace import TraceHandler
from lc_trace.testing import FakeChatModel
handler = TraceHandler(log_path=sys.argv[1], service_name="flower-shop")
run_id = uuid.UUID(sys.argv[2])
FakeChatModel(responses=["A red rose."]).invoke("Which flower?", {"callbacks": [handler], "run_id": run_id})
handler.close()
"""

FEEDBACK = """
import json, sys
import lc_trace
kind, wanted, path = sys.argv[1:4]
recorded = lc_trace.record_evaluation(
    "user_feedback", score=1.0, label="thumbs_up", log_path=path, **{kind: wanted}
)
loaded = sorted(m for m in ("langchain_core", "lc_trace._handlers") if m in sys.modules)
print(json.dumps({"recorded": {k: getattr(recorded, k) for k in recorded.__slots__}, "loaded": loaded}))
"""


def python(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OTEL_SERVICE_NAME", "LC_TRACE_LOG_PATH")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("kind", ["run_id", "trace_id"])
def test_from_another_process_after_the_app_exited(kind, tmp_path, tracing, exporter):
    """
    A thumbs-up from another process, after the app closed its handler and its log rotated: found in the rotated
    copy, the line appended to the current file with the real span's ids, and the process never loaded LangChain.
    """
    log = tmp_path / "logs" / "lc_trace.jsonl"
    run_id = uuid.uuid4()
    handler = lc_trace.TraceHandler(tracer_provider=tracing[0], log_path=log, service_name="flower-shop")
    FakeChatModel(responses=["A red rose."]).invoke("Which flower?", {"callbacks": [handler], "run_id": run_id})
    handler.close()
    log.rename(f"{log}.1")  # rotated since
    span = model_span(exporter)
    wanted = str(run_id) if kind == "run_id" else format(span.context.trace_id, "032x")

    done = python(FEEDBACK, kind, wanted, str(log))

    assert 0 == done.returncode, done.stderr
    out = json.loads(done.stdout)
    assert [] == out["loaded"]
    [line] = evaluation_lines(log)
    assert [] == evaluation_lines(f"{log}.1")
    assert ids(span) == (line["trace.id"], line["span.id"]) == (out["recorded"]["trace_id"], out["recorded"]["span_id"])
    assert (str(run_id), "flower-shop", span.attributes["gen_ai.response.model"]) == (
        line["langchain.run.id"],
        line["service.name"],
        line["gen_ai.response.model"],
    )
    assert line["process.pid"] != os.getpid()


def test_an_app_in_another_process_then_feedback_in_a_third(tmp_path):
    """Both sides real processes, the app's handler closed before the feedback comes: one evaluation line, of the app's run."""
    log = tmp_path / "logs" / "lc_trace.jsonl"
    run_id = str(uuid.uuid4())
    app = python(APP, str(log), run_id)
    assert 0 == app.returncode, app.stderr

    feedback = python(FEEDBACK, "run_id", run_id, str(log))

    assert 0 == feedback.returncode, feedback.stderr
    [end] = [line for line in read_log(log) if line["event.action"] == "llm_end"]
    [line] = evaluation_lines(log)
    assert (end["trace.id"], end["span.id"], end["gen_ai.response.id"]) == (
        line["trace.id"],
        line["span.id"],
        line["gen_ai.response.id"],
    )


IN_APP = """
import json, sys, uuid
import lc_trace
from lc_trace.testing import FakeChatModel
def reader_loaded():
    return any(m.startswith(("lc_trace._read", "lc_trace._cli")) for m in sys.modules)
handler = lc_trace.TraceHandler(log_path=sys.argv[1])
model = FakeChatModel()
first, second = uuid.uuid4(), uuid.uuid4()
model.invoke("Which flower?", {"callbacks": [handler], "run_id": first})
if sys.argv[2] == "evaluated":  # an app that evaluates with lc_trace.evaluated: remembered from its creation
    judged = lc_trace.evaluated(model, lambda io: 1.0, name="helpfulness")
    judged.invoke("Which flower?", {"callbacks": [handler]})
    print(json.dumps([reader_loaded()]))
else:  # record_evaluation of a run that ended before the process evaluated anything, then of a later one
    lc_trace.record_evaluation("helpfulness", run_id=first, score=1.0)
    loaded = reader_loaded()
    del sys.modules["lc_trace._read._runs"]
    model.invoke("Which flower?", {"callbacks": [handler], "run_id": second})
    lc_trace.record_evaluation("helpfulness", run_id=second, score=0.5)
    print(json.dumps([loaded, "lc_trace._read._runs" in sys.modules]))
"""


def test_an_app_that_evaluates_with_evaluated_never_loads_the_reader(tmp_path):
    """evaluated() makes the handlers remember their ended runs: the run it evaluates is found in memory, the reader (imported only to search log files) never loaded."""
    done = python(IN_APP, str(tmp_path / "app.jsonl"), "evaluated")
    assert (0, [False]) == (done.returncode, json.loads(done.stdout.strip())), done.stderr
    assert 1 == len(evaluation_lines(tmp_path / "app.jsonl"))


def test_the_first_evaluation_of_an_ended_run_reads_the_log_then_runs_are_remembered(tmp_path):
    """
    Handlers remember ended runs only once the process evaluates (remembering them always cost every
    app ~0.6 us an event): the first record_evaluation finds its ended run in the log (written through
    first), every later one in memory. Both lines name their runs' spans.
    """
    log = tmp_path / "app.jsonl"
    done = python(IN_APP, str(log), "record")
    assert (0, [True, False]) == (done.returncode, json.loads(done.stdout.strip())), done.stderr
    ends = {line["langchain.run.id"]: line["span.id"] for line in read_log(log) if line["event.action"] == "llm_end"}
    assert {line["langchain.run.id"]: line["span.id"] for line in evaluation_lines(log)} == ends


class TestBadInput:
    """Every mistake a caller can make is a TypeError, ValueError or RunNotFoundError that says what was wrong."""

    @pytest.mark.parametrize(
        ("kwargs", "error", "message"),
        [
            (
                {"run_id": uuid.uuid4(), "trace_id": "ab" * 16, "score": 1.0},
                ValueError,
                "run_id= .* or trace_id=.*not both",
            ),
            ({"score": 1.0}, ValueError, "needs the run to evaluate.*not neither"),
            ({"run_id": uuid.uuid4(), "score": math.nan}, ValueError, "score must be a finite number, got nan"),
            ({"run_id": uuid.uuid4(), "score": math.inf}, ValueError, "score must be a finite number, got inf"),
            ({"run_id": uuid.uuid4(), "score": True}, TypeError, "got bool: pass 1.0 or 0.0, or a label"),
            ({"run_id": uuid.uuid4(), "score": "0.8"}, TypeError, "score must be a real number .*got str"),
            ({"run_id": uuid.uuid4(), "label": ""}, ValueError, "label must not be empty"),
            ({"run_id": uuid.uuid4(), "label": 3}, TypeError, "label must be a string"),
            ({"run_id": uuid.uuid4()}, ValueError, "'relevance' says nothing: give a score, a label, or the error"),
            (
                {"run_id": "run-7", "score": 1.0},
                ValueError,
                "run_id must be a LangChain run id \\(a UUID\\), got 'run-7'",
            ),
            ({"run_id": 7, "score": 1.0}, TypeError, "run_id must be a LangChain run id .*got int"),
            ({"trace_id": "abc", "score": 1.0}, ValueError, "trace_id must be a whole trace id, 32 hex digits"),
            ({"trace_id": "0" * 32, "score": 1.0}, ValueError, "not all zeros"),
            ({"trace_id": 0, "score": 1.0}, ValueError, "128-bit trace id other than 0"),
            ({"run_id": uuid.uuid4(), "error": 3}, TypeError, "error must be the exception"),
        ],
    )
    def test_arguments(self, kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
        with pytest.raises(error, match=message):
            record_evaluation("relevance", **kwargs)

    @pytest.mark.parametrize(
        ("name", "error"), [("", ValueError), ("  ", ValueError), (None, TypeError), (1, TypeError)]
    )
    def test_name(self, name: Any, error: type[Exception]) -> None:
        with pytest.raises(error, match="name"):
            record_evaluation(name, run_id=uuid.uuid4(), score=1.0)

    def test_an_unknown_run_names_the_id_and_every_file_looked_in(self, make_handler, log_path, tmp_path):
        """Not held by a handler, in neither the log nor its rotated copy: the error says which id and which files; nothing is written."""
        handler = make_handler()
        call(flower_chain(), {"who": "mom"}, {"callbacks": [handler]}, "invoke")
        handler.flush()
        (log_path.parent / f"{log_path.name}.1").write_text("")
        missing = uuid.uuid4()

        with pytest.raises(RunNotFoundError) as raised:
            record_evaluation("helpfulness", run_id=missing, score=1.0, log_path=log_path)

        message = str(raised.value)
        assert f"run {missing} is held by no handler of this process" in message
        assert f"{log_path}.1" in message and f"{log_path}," not in message and str(log_path) in message
        assert isinstance(raised.value, LookupError)
        with pytest.raises(
            RunNotFoundError, match=f"trace {'ab' * 16} .*{tmp_path / 'nowhere.jsonl'} \\(no such file\\)"
        ):
            record_evaluation("helpfulness", trace_id="ab" * 16, score=1.0, log_path=tmp_path / "nowhere.jsonl")
        assert [] == evaluation_lines(log_path)

    def test_the_default_log_is_looked_in(self, tmp_path, monkeypatch):
        """No handler, no log_path: $LC_TRACE_LOG_PATH is where the error says it looked."""
        monkeypatch.setenv("LC_TRACE_LOG_PATH", str(tmp_path / "app.jsonl"))
        with pytest.raises(RunNotFoundError, match=f"{tmp_path / 'app.jsonl'} \\(no such file\\)"):
            record_evaluation("helpfulness", run_id=uuid.uuid4(), score=1.0)
