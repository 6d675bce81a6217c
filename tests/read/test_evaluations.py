"""
The evaluations read back (``lc_trace._read._evaluations``): ``lc-trace usage`` adds them up by
evaluation name and model (count, mean score, labels, failures; ``--json`` too), ``show`` lists a
trace's, the HTML page shows each run's; and an evaluation line, though it carries its run's span
ids, never changes what the reader makes of runs and traces (no run more, no span exported twice,
no trace cut short), even when it comes after the run ended or in the middle of its trace.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import dispatch_custom_event
from langchain_core.runnables import RunnableLambda
from opentelemetry.sdk.trace import ReadableSpan

from lc_trace import TraceHandler, evaluated, record_evaluation
from lc_trace._read._files import log_files, read_lines
from lc_trace._read._runs import build_traces, complete_traces, stream_runs
from lc_trace._read._summary import summarise
from lc_trace.testing import FakeChatModel, in_memory_tracing, read_log
from tests.browser import Browser
from tests.cli.test_cli import run_cli
from tests.conftest import flower_chain
from tests.read.test_html import ARTIFACTS, browser  # noqa: F401  (the module's Chromium, reused)

FAST = "fake-chat-1-2026-11-01"  # FakeChatModel's served model: the model usage groups by
DEEP = "deep-1-2026"


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ReadableSpan], dict[str, str]]:
    """
    Five traces and their evaluations: two models judged in the chain (evaluated), a thumbs-up given to a
    whole trace afterwards (its one model stands in), a failed evaluation, and an in-app score sent mid-trace.
    """
    path = tmp_path_factory.mktemp("scored") / "lc_trace.jsonl"
    provider, exporter = in_memory_tracing()
    handler = TraceHandler(tracer_provider=provider, log_path=path, service_name="flower-shop")
    config: Any = {"callbacks": [handler]}
    traces: dict[str, str] = {}
    try:
        fast = FakeChatModel(responses=["A red rose."])
        deep = FakeChatModel(model_name="deep-1", served_model=DEEP, responses=["Peonies."])
        evaluated(fast, lambda io: {"score": 0.8, "value": "Y", "reasoning": "Apt."}, name="helpfulness").invoke(
            "For mom?", config
        )
        evaluated(fast, lambda io: {"score": 0.6, "value": "Y"}, name="helpfulness").invoke("For dad?", config)
        evaluated(deep, lambda io: {"score": 0.4, "value": "N"}, name="helpfulness").invoke("For a wedding?", config)
        liked = uuid.uuid4()
        flower_chain().invoke({"who": "gran"}, {**config, "run_id": liked})
        traces["liked"] = record_evaluation("user_feedback", run_id=liked, label="thumbs_up").trace_id
        failed = uuid.uuid4()
        flower_chain().invoke({"who": "aunt"}, {**config, "run_id": failed})
        record_evaluation("toxicity", run_id=failed, error="timeout")

        def grade(answer: str) -> str:
            dispatch_custom_event("gen_ai.evaluation.result", {"name": "length", "score": len(answer)})
            return answer

        (RunnableLambda(grade, name="grade") | RunnableLambda(str.upper, name="shout")).invoke("tulip", config)
    finally:
        handler.close()
    return path, list(exporter.get_finished_spans()), traces


def by_key(entries: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["name"], e["model"]): e for e in entries}


class TestUsage:
    def test_json_adds_up_scores_by_evaluation_name_and_model(self, scored) -> None:
        """helpfulness of each model (mean of its scores, labels counted), a trace's thumbs-up under its one model, a failure counted."""
        path, _, _ = scored
        code, out, err = run_cli(["usage", str(path), "--json"])
        assert (0, "") == (code, err)
        found = by_key(json.loads(out)["evaluations"])
        assert {
            ("helpfulness", FAST),
            ("helpfulness", DEEP),
            ("user_feedback", FAST),
            ("toxicity", FAST),
            ("length", "-"),
        } == set(found)
        fast = found[("helpfulness", FAST)]
        assert (2, 2, {"Y": 2}, 0) == (fast["count"], fast["scored"], fast["labels"], fast["failed"])
        assert 0.7 == pytest.approx(fast["mean_score"]) and (0.6, 0.8) == (fast["min_score"], fast["max_score"])
        assert (0.4, {"N": 1}) == (found[("helpfulness", DEEP)]["mean_score"], found[("helpfulness", DEEP)]["labels"])
        thumbs = found[("user_feedback", FAST)]
        assert (1, 0, None, {"thumbs_up": 1}) == (
            thumbs["count"],
            thumbs["scored"],
            thumbs["mean_score"],
            thumbs["labels"],
        )
        assert (1, 1) == (found[("toxicity", FAST)]["count"], found[("toxicity", FAST)]["failed"])
        assert 5.0 == found[("length", "-")]["mean_score"]

    def test_the_table_and_the_filters(self, scored) -> None:
        """The text report has the evaluations table after the usage tables; a filter that keeps no trace keeps no evaluation."""
        path, _, traces = scored
        code, out, err = run_cli(["usage", str(path)])
        assert (0, "") == (code, err)
        table = out[out.index("EVALUATION") :].splitlines()
        assert re.match(r"EVALUATION\s+MODEL\s+COUNT\s+MEAN\s+MIN\s+MAX\s+FAILED\s+LABELS", table[0])
        assert re.match(rf"helpfulness\s+{FAST}\s+2\s+0\.700\s+0\.600\s+0\.800\s+0\s+Y 2$", table[2])
        assert re.match(rf"user_feedback\s+{FAST}\s+1\s+-\s+-\s+-\s+0\s+thumbs_up 1$", table[5])
        one = json.loads(run_cli(["usage", str(path), "--json", "--trace", traces["liked"]])[1])["evaluations"]
        assert [("user_feedback", FAST)] == list(by_key(one))
        assert [] == json.loads(run_cli(["usage", str(path), "--json", "--since", "2999-01-01"])[1])["evaluations"]


class TestRunsAndTraces:
    def test_no_run_more_and_no_span_exported_twice(self, scored) -> None:
        """Every reading path makes of the runs exactly the spans the app made, evaluation lines or not."""
        path, spans, _ = scored
        live = sorted(format(s.context.span_id, "016x") for s in spans)
        lines = list(read_lines(log_files(path)))
        assert 6 == sum(1 for line in lines if line.action == "gen_ai.evaluation.result")
        streamed = sorted(run.span_id for run, _ in stream_runs(lines))
        built = sorted(run.span_id for trace in build_traces(lines) for run in trace.runs.values())
        summaries = summarise(lines)
        complete = sorted(
            run.span_id
            for trace in complete_traces(lines, {s.trace_id: s.lines for s in summaries})
            for run in trace.runs.values()
        )
        assert live == streamed == built == complete
        assert len(live) == sum(s.run_count for s in summaries)
        assert all(not run.events for trace in build_traces(lines) for run in trace.runs.values())

    def test_show_lists_a_traces_evaluations(self, scored) -> None:
        path, _, traces = scored
        code, out, err = run_cli(["show", traces["liked"], str(path)])
        assert (0, "") == (code, err)
        tree, listed = out.split("\nevaluations (1):\n")
        assert "RunnableSequence" in tree and "ChatPromptTemplate" in tree
        assert re.fullmatch(r"  user_feedback: thumbs_up  \[RunnableSequence, span [0-9a-f]{16}\]\n", listed)


def page_data(page: Path) -> dict[str, Any]:
    text = page.read_text(encoding="utf-8")
    found = re.search(r'<script id="lc-data" type="application/json">(.*?)</script>', text, re.S)
    assert found
    data: dict[str, Any] = json.loads(found.group(1))
    return data


class TestPage:
    def test_the_page_holds_each_traces_evaluations(self, scored, tmp_path: Path) -> None:
        path, _, traces = scored
        page = tmp_path / "page.html"
        assert 0 == run_cli(["html", str(path), "-o", str(page)])[0]
        data = page_data(page)
        assert 6 == len(data["evaluations"])  # each trace has one
        [liked] = data["evaluations"][traces["liked"]]
        [root] = [
            x["span.id"]
            for x in read_log(path)
            if x["event.action"] == "chain_end"
            and x["trace.id"] == traces["liked"]
            and "langchain.run.parent_id" not in x
        ]
        # span id, name, score, label, explanation, error type, model (a chain's: none), run
        assert [root, "user_feedback", None, "thumbs_up", None, None, None, "RunnableSequence"] == liked[:8]

    def test_the_run_shows_its_evaluations(self, scored, tmp_path: Path, browser: Browser) -> None:  # noqa: F811
        """In Chromium: the evaluated run's waterfall row carries its score, its detail pane lists the evaluation."""
        path, _, _ = scored
        page = tmp_path / "page.html"
        assert 0 == run_cli(["html", str(path), "-o", str(page)])[0]
        helpful = next(x["trace.id"] for x in read_log(path) if x.get("gen_ai.evaluation.score.value") == 0.8)
        browser.console.clear()
        browser.open(page)
        browser.evaluate(f"lcTrace.pickTrace('{helpful}')")
        assert "· 1 evaluation" in browser.evaluate("document.getElementById('wf-title').textContent")
        marks = browser.evaluate("[...document.querySelectorAll('.wrow .eval')].map(e => e.textContent)")
        assert ["helpfulness 0.8 Y"] == marks
        browser.evaluate("[...document.querySelectorAll('.wrow')].find(r => r.querySelector('.eval')).click()")
        detail = browser.evaluate("document.getElementById('detail').innerText")
        assert "EVALUATIONS" in detail.upper() and "Apt." in detail and FAST in detail
        browser.screenshot(ARTIFACTS / "evaluations.png")
        assert [] == browser.console
