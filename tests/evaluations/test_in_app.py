"""
Evaluations made inside the app's chains: the reserved custom event ``gen_ai.evaluation.result``
(``dispatch_custom_event`` / ``adispatch_custom_event``, hooked in the handler's ``on_custom_event``), and
``lc_trace.evaluated(runnable, evaluator)``, whose evaluator is a real LangChain runnable (a judge chain of a
prompt, a chat model and a JSON parser, or a function) returning what LangChain's string evaluators return.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.output_parsers import JsonOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableConfig, RunnableLambda
from opentelemetry.sdk.trace import ReadableSpan

from lc_trace import evaluated
from lc_trace.testing import FakeChatModel
from tests.conftest import HANDLERS, MODES, call, log_lines

EVALUATION = "gen_ai.evaluation.result"


def evaluations(handler: Any) -> list[dict[str, Any]]:
    return [line for line in log_lines(handler) if line["event.action"] == EVALUATION]


def ids(span: ReadableSpan) -> tuple[str, str]:
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def span_named(exporter: Any, name: str) -> ReadableSpan:
    [span] = [span for span in exporter.get_finished_spans() if span.name == name]
    return span


class TestCustomEvent:
    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize("handler_cls", HANDLERS)
    def test_evaluates_the_run_that_sent_it(self, handler_cls, mode, make_handler, exporter):
        """The data names no run: the evaluation is of the run that dispatched the event; no custom_event line, no span event."""

        def grade(answer: str) -> str:
            dispatch_custom_event(EVALUATION, {"name": "length", "score": len(answer), "label": "short"})
            return answer

        async def agrade(answer: str) -> str:
            await adispatch_custom_event(EVALUATION, {"name": "length", "score": len(answer), "label": "short"})
            return answer

        handler = make_handler(handler_cls)
        call(RunnableLambda(grade, afunc=agrade, name="grade"), "A rose.", {"callbacks": [handler]}, mode)

        [line] = evaluations(handler)
        span = span_named(exporter, "grade")
        assert ids(span) == (line["trace.id"], line["span.id"])
        assert (7.0, "short", "grade") == (
            line["gen_ai.evaluation.score.value"],
            line["gen_ai.evaluation.score.label"],
            line["langchain.run.name"],
        )
        assert [] == [e.name for e in span.events]
        assert "custom_event" not in {line["event.action"] for line in log_lines(handler)}

    def test_the_data_can_name_another_run(self, make_handler, exporter):
        """run_id in the data: a model call made (and ended) earlier in the same step is the one evaluated, with its model."""
        handler = make_handler()

        def answer_and_grade(question: str, config: RunnableConfig) -> str:
            model_run = uuid.uuid4()
            answer = FakeChatModel(responses=["Tulips."]).invoke(question, {**config, "run_id": model_run})
            dispatch_custom_event(EVALUATION, {"name": "brevity", "label": "pass", "run_id": model_run}, config=config)
            return str(answer.content)

        RunnableLambda(answer_and_grade, name="step").invoke("Spring?", {"callbacks": [handler]})

        [line] = evaluations(handler)
        model = span_named(exporter, "chat fake-chat-1")
        assert ids(model) == (line["trace.id"], line["span.id"])
        assert model.attributes["gen_ai.response.model"] == line["gen_ai.response.model"]

    def test_other_handlers_still_get_the_event(self, make_handler):
        """astream_events still yields the custom event with its data: lc_trace records it, it does not take it."""
        handler = make_handler()

        async def grade(answer: str) -> str:
            await adispatch_custom_event(EVALUATION, {"name": "length", "score": 1.0})
            return answer

        async def events() -> list[dict[str, Any]]:
            runnable = RunnableLambda(grade, name="grade")
            return [e async for e in runnable.astream_events("x", {"callbacks": [handler]}, version="v2")]

        import asyncio

        custom = [e for e in asyncio.run(events()) if e["event"] == "on_custom_event"]
        assert [(EVALUATION, {"name": "length", "score": 1.0})] == [(e["name"], e["data"]) for e in custom]
        assert 1 == len(evaluations(handler))

    @pytest.mark.parametrize(
        ("data", "why"),
        [
            ({"score": 1.0}, "needs a 'name'"),
            ({"name": "length", "scor": 1.0}, "unknown keys \\['scor'\\]"),
            ({"name": "length", "score": float("nan")}, "score must be a finite number"),
            ("great", "must be a dict"),
            ({"name": "length", "score": 1.0, "run_id": str(uuid.uuid4())}, "is neither open nor among the runs"),
        ],
    )
    def test_data_that_is_no_evaluation_is_counted_and_reported_never_raised(
        self, data, why, make_handler, caplog: pytest.LogCaptureFixture
    ):
        """A mistake in the event's data: the chain runs on, nothing is written for it, stats count it, the log says why."""
        handler = make_handler()

        def grade(answer: str) -> str:
            dispatch_custom_event(EVALUATION, data)
            return answer

        with caplog.at_level(logging.WARNING, logger="lc_trace"):
            assert "ok" == RunnableLambda(grade).invoke("ok", {"callbacks": [handler]})

        assert [] == evaluations(handler)
        assert (1, 0) == (handler.stats.evaluations_rejected, handler.stats.internal_errors)
        [warning] = [r.getMessage() for r in caplog.records if "evaluations_rejected" in r.getMessage()]
        assert __import__("re").search(why, warning), warning

    def test_without_content_capture_the_explanation_is_left_out(self, make_handler):
        """The explanation is content (a judge's reasoning quotes the answer): capture_content=False leaves it out."""
        handler = make_handler(capture_content=False)

        def grade(answer: str) -> str:
            dispatch_custom_event(EVALUATION, {"name": "tone", "label": "polite", "explanation": f"'{answer}' is kind"})
            return answer

        RunnableLambda(grade).invoke("Thank you", {"callbacks": [handler]})

        [line] = evaluations(handler)
        assert "polite" == line["gen_ai.evaluation.score.label"]
        assert "gen_ai.evaluation.explanation" not in line


JUDGE_PROMPT = ChatPromptTemplate.from_messages(
    [("system", "Grade the answer from 0 to 1. Reply in JSON: score, value (Y/N), reasoning."), ("human", "{output}")]
)


def llm_judge(verdict: str) -> Any:
    """A real judge chain: prompt | chat model | JSON parser, the answer's text in."""
    model = FakeChatModel(model_name="judge-1", served_model="judge-1", responses=[verdict])
    return RunnableLambda(lambda io: {"output": io["output"].content}) | JUDGE_PROMPT | model | JsonOutputParser()


class TestEvaluated:
    @pytest.mark.parametrize("mode", MODES)
    def test_an_llm_judge_scores_the_model_call(self, mode, make_handler, exporter):
        """evaluated(model, judge): the answer is the model's, the evaluation is of the model's run (its model, its response id), the judge's own calls are traced under it."""
        handler = make_handler()
        model = FakeChatModel(responses=["A red rose."])
        judge = llm_judge('{"score": 0.8, "value": "Y", "reasoning": "A rose suits the question."}')

        answer = call(evaluated(model, judge, name="helpfulness"), "Which flower?", {"callbacks": [handler]}, mode)

        assert "A red rose." == answer.content
        [line] = evaluations(handler)
        answered = span_named(exporter, "chat fake-chat-1")
        assert ids(answered) == (line["trace.id"], line["span.id"])
        assert {
            "gen_ai.evaluation.name": "helpfulness",
            "gen_ai.evaluation.score.value": 0.8,
            "gen_ai.evaluation.score.label": "Y",
            "gen_ai.evaluation.explanation": "A rose suits the question.",
            "gen_ai.response.model": answered.attributes["gen_ai.response.model"],
            "gen_ai.response.id": answered.attributes["gen_ai.response.id"],
        }.items() <= line.items()
        wrapper = span_named(exporter, "evaluated helpfulness")
        judged = span_named(exporter, "chat judge-1")
        assert answered.parent.span_id == wrapper.context.span_id
        assert judged.context.trace_id == wrapper.context.trace_id

    @pytest.mark.parametrize(
        ("verdict", "said"),
        [
            (0.25, {"gen_ai.evaluation.score.value": 0.25}),
            ("relevant", {"gen_ai.evaluation.score.label": "relevant"}),
            (
                {"score": 1, "label": "pass", "explanation": "short"},
                {
                    "gen_ai.evaluation.score.value": 1.0,
                    "gen_ai.evaluation.score.label": "pass",
                    "gen_ai.evaluation.explanation": "short",
                },
            ),
        ],
    )
    def test_a_function_judge_returns_a_number_a_label_or_a_mapping(self, verdict, said, make_handler):
        handler = make_handler()
        step = RunnableLambda(lambda text: text.upper(), name="shout")

        assert "ROSE" == evaluated(step, lambda io: verdict, name="judged").invoke("rose", {"callbacks": [handler]})

        [line] = evaluations(handler)
        assert said.items() <= line.items()
        assert "shout" == line["langchain.run.name"]

    @pytest.mark.parametrize(
        ("judge", "error_type"),
        [
            (lambda io: (_ for _ in ()).throw(TimeoutError("judge timed out")), "TimeoutError"),
            (lambda io: {"reasoning": "no verdict"}, "ValueError"),
            (lambda io: True, "TypeError"),
        ],
    )
    def test_a_judge_that_fails_is_a_failed_evaluation_not_a_failed_call(
        self, judge, error_type, make_handler, caplog: pytest.LogCaptureFixture
    ):
        """The answer still comes back; the evaluation says it failed (error.type, level error); the logger says so."""
        handler = make_handler()
        step = RunnableLambda(lambda text: text.upper(), name="shout")
        name = f"judged-{error_type}"

        with caplog.at_level(logging.WARNING, logger="lc_trace"):
            assert "ROSE" == evaluated(step, judge, name=name).invoke("rose", {"callbacks": [handler]})

        [line] = evaluations(handler)
        assert (error_type, "error", "shout") == (line["error.type"], line["log.level"], line["langchain.run.name"])
        assert any(f"the evaluator of {name!r} failed" in r.getMessage() for r in caplog.records)

    def test_a_bad_name_fails_when_built(self):
        with pytest.raises(ValueError, match="name must not be empty"):
            evaluated(RunnableLambda(lambda x: x), lambda io: 1.0, name=" ")
