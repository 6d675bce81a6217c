"""
The evaluations in a log: ``gen_ai.evaluation.result`` lines (``lc_trace.record_evaluation``, the
``evaluated`` runnable), read back and added up by evaluation name and model, for ``usage``,
``show`` and ``html``.

An evaluation line carries the evaluated span's ``trace.id`` and ``span.id`` but is no line of
that run (``_runs`` and ``_summary`` leave it out of runs and hand it here): it may come long
after the run ended, from another process. Its model is the evaluated run's, as the line says;
an evaluation of a run that called no model itself (a chain, a whole trace) is counted under the
one model its trace called, when it called exactly one. Text rendering for the terminal is here
too, so the evaluations' columns live in one module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from lc_trace import _attributes as A
from lc_trace._read._files import Line
from lc_trace._read._runs import ModelCall
from lc_trace._records import EVALUATION_RESULT

__all__ = [
    "NO_MODEL",
    "EvaluationView",
    "Evaluations",
    "Scores",
    "evaluation_line",
    "evaluation_of",
    "page_evaluations",
    "report_as_dict",
    "score_report",
    "score_tables",
]

NO_MODEL = "-"
"""The model of an evaluation of a run that called none (nor did its trace, or it called several)."""


@dataclass(frozen=True, slots=True)
class EvaluationView:
    """
    One evaluation as its line tells it.
    """

    time_ns: int
    trace_id: str
    span_id: str
    run_id: str | None
    run_name: str | None
    name: str
    score: float | None
    label: str | None
    explanation: str | None
    error_type: str | None
    model: str | None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def evaluation_of(line: Line) -> EvaluationView | None:
    """
    The evaluation a line records; None for any other line, or one with no name or span.
    """
    fields = line.fields
    trace_id, span_id, name = fields.get(A.TRACE_ID), fields.get(A.SPAN_ID), fields.get(A.GEN_AI_EVALUATION_NAME)
    if fields.get(A.EVENT_ACTION) != EVALUATION_RESULT or not (
        isinstance(trace_id, str) and isinstance(span_id, str) and isinstance(name, str) and name
    ):
        return None
    value = fields.get(A.GEN_AI_EVALUATION_SCORE_VALUE)
    score = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    return EvaluationView(
        time_ns=line.time_ns,
        trace_id=trace_id,
        span_id=span_id,
        run_id=_text(fields.get(A.LC_RUN_ID)),
        run_name=_text(fields.get(A.LC_RUN_NAME)),
        name=name,
        score=score if score is not None and math.isfinite(score) else None,
        label=_text(fields.get(A.GEN_AI_EVALUATION_SCORE_LABEL)),
        explanation=_text(fields.get(A.GEN_AI_EVALUATION_EXPLANATION)),
        error_type=_text(fields.get(A.ERROR_TYPE)),
        model=_text(fields.get(A.GEN_AI_RESPONSE_MODEL)) or _text(fields.get(A.GEN_AI_REQUEST_MODEL)),
    )


class Evaluations:
    """
    The evaluations a pass over the lines meets (give it to ``summarise`` as ``on_evaluation``):
    kept small, a few fields each, never the lines.
    """

    def __init__(self) -> None:
        self.found: list[EvaluationView] = []

    def __call__(self, line: Line) -> None:
        view = evaluation_of(line)
        if view is not None:
            self.found.append(view)

    def of(self, trace_ids: Iterable[str]) -> list[EvaluationView]:
        """
        The evaluations of these traces, oldest first.
        """
        wanted = set(trace_ids)
        return sorted((e for e in self.found if e.trace_id in wanted), key=lambda e: e.time_ns)

    def by_trace(self, trace_ids: Iterable[str]) -> dict[str, list[EvaluationView]]:
        """
        The evaluations of these traces, by trace id, oldest first.
        """
        out: dict[str, list[EvaluationView]] = {}
        for evaluation in self.of(trace_ids):
            out.setdefault(evaluation.trace_id, []).append(evaluation)
        return out


# --- added up, for usage -----------------------------------------------------------------------


@dataclass
class Scores:
    """
    Evaluations of one name and model: how many, their scores' mean and range, their labels,
    and how many failed (``error.type``).
    """

    count: int = 0
    scores: list[float] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    failed: int = 0

    def add(self, evaluation: EvaluationView) -> None:
        """
        Count one evaluation.
        """
        self.count += 1
        if evaluation.score is not None:
            self.scores.append(evaluation.score)
        if evaluation.label is not None:
            self.labels[evaluation.label] = self.labels.get(evaluation.label, 0) + 1
        if evaluation.error_type is not None:
            self.failed += 1

    @property
    def mean(self) -> float | None:
        """
        The mean score (None with no scores).
        """
        return math.fsum(self.scores) / len(self.scores) if self.scores else None

    def as_dict(self) -> dict[str, Any]:
        """
        The figures as JSON-ready data.
        """
        return {
            "count": self.count,
            "scored": len(self.scores),
            "mean_score": self.mean,
            "min_score": min(self.scores, default=None),
            "max_score": max(self.scores, default=None),
            "labels": dict(sorted(self.labels.items())),
            "failed": self.failed,
        }


class _Trace(Protocol):
    """
    What the model fallback needs of a trace: a ``TraceSummary`` kept with its calls, or a ``TraceView``.
    """

    trace_id: str

    def model_calls(self) -> Iterator[ModelCall]: ...


def score_report(evaluations: Iterable[EvaluationView], traces: Iterable[_Trace] = ()) -> dict[tuple[str, str], Scores]:
    """
    The evaluations added up by (evaluation name, model); the model of an evaluation whose line
    names none is the one model its trace called (of *traces*), else ``NO_MODEL``.
    """
    only_model: dict[str, str] = {}
    for trace in traces:
        models = {call.model for call in trace.model_calls()}
        if len(models) == 1:
            only_model[trace.trace_id] = models.pop()
    report: dict[tuple[str, str], Scores] = {}
    for evaluation in evaluations:
        key = (evaluation.name, evaluation.model or only_model.get(evaluation.trace_id, NO_MODEL))
        scores = report.get(key)
        if scores is None:
            scores = report[key] = Scores()
        scores.add(evaluation)
    return dict(sorted(report.items()))


def report_as_dict(report: Mapping[tuple[str, str], Scores]) -> list[dict[str, Any]]:
    """
    ``usage --json``'s ``evaluations``: one entry per evaluation name and model.
    """
    return [{"name": name, "model": model, **scores.as_dict()} for (name, model), scores in report.items()]


def _cut(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def score_tables(report: Mapping[tuple[str, str], Scores]) -> Iterator[str]:
    """
    ``usage``'s evaluations table: per evaluation name and model, the count, the mean score and
    its range, the labels given, and the failures.
    """
    yield (
        f"{'EVALUATION':<24}  {'MODEL':<28}  {'COUNT':>6}  {'MEAN':>7}  {'MIN':>7}  {'MAX':>7}  {'FAILED':>6}  LABELS"
    )
    for (name, model), scores in report.items():
        figures = scores.as_dict()
        numbers = "  ".join(
            f"{value:>7.3f}" if value is not None else f"{'-':>7}"
            for value in (figures["mean_score"], figures["min_score"], figures["max_score"])
        )
        labels = ", ".join(f"{label} {count}" for label, count in figures["labels"].items()) or "-"
        yield f"{_cut(name, 24):<24}  {_cut(model, 28):<28}  {scores.count:>6}  {numbers}  {scores.failed:>6}  {labels}"


# --- one trace's, for show and html -----------------------------------------------------------


def evaluation_line(evaluation: EvaluationView) -> str:
    """
    One evaluation on one line (``show``): name, score, label, the run it scored, why.
    """
    said = [f"{evaluation.score:g}" if evaluation.score is not None else "", evaluation.label or ""]
    if evaluation.error_type:
        said.append(f"failed: {evaluation.error_type}")
    run = evaluation.run_name or evaluation.run_id or evaluation.span_id
    why = f"  — {_cut(evaluation.explanation, 100)}" if evaluation.explanation else ""
    return f"{evaluation.name}: {' '.join(s for s in said if s)}  [{run}, span {evaluation.span_id}]{why}"


def page_evaluations(evaluations: Iterable[EvaluationView], max_chars: int = 4000) -> list[list[Any]]:
    """
    A trace's evaluations as the HTML page takes them: span id, name, score, label,
    explanation (its first *max_chars*), error type, model, run name, and when (epoch milliseconds).
    """
    return [
        [
            e.span_id,
            e.name,
            e.score,
            e.label,
            _cut(e.explanation, max_chars) if e.explanation else None,
            e.error_type,
            e.model,
            e.run_name or e.run_id,
            e.time_ns // 1_000_000,
        ]
        for e in evaluations
    ]
