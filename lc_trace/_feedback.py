"""
``record_evaluation`` and ``evaluated``: a score given to a run, from anywhere.

Whoever scores a run (an evaluator in the app, a thumbs-up from a UI minutes later, in another
process) names it by its LangChain run id, or its trace by trace id (its top-level run is then the
one evaluated). The run is looked for where it is cheapest first: this process's handlers (their
open runs, and the last one to two thousand each ended), then the log files, the current one and
its rotated copies, of which only the lines holding that id are parsed. The evaluation is written
beside the run (``_evaluation``): a line in the log the run is in, through the writer every
handler shares (many processes may write one file), and an OpenTelemetry log event.

The reader (``_read``) is imported only for that second look: a traced app that records its
evaluations in process never loads it, and a process that only records evaluations from a log
never loads LangChain (import contract ``write-not-read`` names this one exception).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from lc_trace import _env
from lc_trace._evaluation import (
    Evaluation,
    Target,
    model_fields,
    remember_ended_runs,
    run_id_text,
    trace_id_text,
    verdict,
    write,
)
from lc_trace._paths import default_log_path
from lc_trace._records import EVALUATION_RESULT

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable, RunnableConfig
    from opentelemetry._logs import LoggerProvider

    from lc_trace._handlers import _TraceCore
    from lc_trace._read._runs import RunView, TraceView

__all__ = ["RunNotFoundError", "evaluated", "record_evaluation"]

_WRITE_TIMEOUT_MS = 10_000
_logger = logging.getLogger("lc_trace")
_failures_reported: set[str] = set()


class RunNotFoundError(LookupError):
    """
    The run (or trace) to evaluate is neither held by a handler of this process nor in the log
    files looked in; the message names the id and the files.
    """


def record_evaluation(
    name: str,
    *,
    run_id: UUID | str | None = None,
    trace_id: str | int | None = None,
    score: float | None = None,
    label: str | None = None,
    explanation: str | None = None,
    error: BaseException | str | None = None,
    log_path: str | os.PathLike[str] | None = None,
    logger_provider: LoggerProvider | None = None,
) -> Evaluation:
    """
    Record an evaluation of one run: the GenAI conventions' ``gen_ai.evaluation.result``, as a
    line in the run's log (its span's ``trace.id`` and ``span.id``, its model) and as an
    OpenTelemetry log event with the span's context, when a logger provider is set.

    Args:
        name: what was evaluated, e.g. ``"relevance"`` or ``"user_feedback"``.
        run_id: the LangChain run id of the run to evaluate (``config={"run_id": ...}`` sets a
            call's own). Give this or *trace_id*.
        trace_id: a trace (32 hex digits, or the int a span context holds): its top-level run is
            evaluated.
        score: a finite number (``gen_ai.evaluation.score.value``); not a bool: say 1.0, or a label.
        label: e.g. ``"pass"``, ``"thumbs_up"`` (``gen_ai.evaluation.score.label``).
        explanation: why (``gen_ai.evaluation.explanation``).
        error: the exception the evaluation failed with, or its type (``error.type``).
            One of score, label and error is needed.
        log_path: the log to look in when no handler of this process holds the run (default:
            the logs of this process's handlers, then ``$LC_TRACE_LOG_PATH`` or
            ``./lc_trace_logs/lc_trace.jsonl``); the line goes to the log the run was found in.
        logger_provider: where the event goes; default the global one (none set: no event).

    Returns:
        The evaluation as recorded, with the run's ids and model.

    Raises:
        TypeError, ValueError: an argument is not what it says above, or both or neither of
            run_id and trace_id are given.
        RunNotFoundError: no handler holds the run and no log file looked in has it.
        OSError: a log file could not be read, or the line not written.
    """
    attributes = verdict(name, score, label, explanation, error)
    remember_ended_runs()  # this process evaluates: the runs that end from now on can be found here
    if (run_id is None) == (trace_id is None):
        raise ValueError(
            "record_evaluation needs the run to evaluate: give run_id= (a LangChain run id) "
            "or trace_id= (a trace, for its top-level run), not " + ("both" if run_id is not None else "neither")
        )
    by_run = run_id is not None
    wanted = run_id_text(run_id) if by_run else trace_id_text(trace_id)
    held = _held(wanted, by_run)
    if held is not None:
        target, handler = held
        logs = handler._recorder.logs
        if handler.log_path is not None and not handler._closed:  # its open log sink: queued like its own lines
            return write(attributes, target, logs, logger_provider)
        path = handler.log_path or (os.fspath(log_path) if log_path is not None else None)
        if path is None:  # the handler logs to no file, and none was asked for
            return write(attributes, target, None, logger_provider)
        return _write_to(path, attributes, target, handler.service_name, logger_provider)
    paths = [os.fspath(log_path)] if log_path is not None else _log_paths()
    target, path = _in_logs(wanted, by_run, paths)
    return _write_to(path, attributes, target, None, logger_provider)


def _live_handlers() -> list[_TraceCore]:
    """
    This process's handlers; none if the handler module was never imported (so none were built).
    """
    handlers = sys.modules.get("lc_trace._handlers")
    return handlers.live_handlers() if handlers is not None else []


def _held(wanted: str, by_run: bool) -> tuple[Target, _TraceCore] | None:
    """
    The run (or trace's top-level run) as a handler of this process holds it, and that handler.
    """
    for handler in _live_handlers():
        recorder = handler._recorder
        target = recorder.find_run(wanted) if by_run else recorder.find_root(wanted)
        if target is not None:
            return target, handler
    return None


def _log_paths() -> list[str]:
    """
    Where to look when no handler holds the run: this process's handlers' logs, then the default.
    """
    paths = [path for handler in _live_handlers() if (path := handler.log_path) is not None]
    paths.append(os.path.abspath(os.path.expanduser(default_log_path())))
    return list(dict.fromkeys(paths))


def _in_logs(wanted: str, by_run: bool, paths: list[str]) -> tuple[Target, str]:
    """
    The run as the first log of *paths* that has it tells it, and that log's path.

    Raises:
        RunNotFoundError: none has it.
        OSError: a file could not be read.
    """
    from lc_trace._read._files import LogFiles, LogReadError, log_files
    from lc_trace._read._runs import build_traces

    searched: list[str] = []
    for path in paths:
        for handler in _live_handlers():  # lines this process has queued for that file
            if handler.log_path == os.path.abspath(path) and handler._writer is not None and not handler._closed:
                handler._writer.flush(_WRITE_TIMEOUT_MS)
        try:
            files = log_files(path)
        except LogReadError:
            searched.append(f"{path} (no such file)")
            continue
        searched.extend(map(str, files))
        try:
            with LogFiles(files) as log:
                traces = build_traces(log.lines(contains=wanted.encode()))
        except LogReadError as exc:
            raise OSError(f"cannot look for the run to evaluate: {exc}") from None
        run = _find(traces, wanted, by_run)
        if run is not None:
            return _target(run), path
    what = f"run {wanted}" if by_run else f"trace {wanted}"
    raise RunNotFoundError(
        f"{what} is held by no handler of this process and is in none of: {', '.join(searched)} "
        "(pass log_path= the log the app writes, or set LC_TRACE_LOG_PATH)"
    )


def _find(traces: list[TraceView], wanted: str, by_run: bool) -> RunView | None:
    for trace in traces:
        if by_run:
            for run in trace.runs.values():
                if run.run_id == wanted:
                    return run
        elif trace.trace_id == wanted and trace.roots:
            return trace.roots[0]
    return None


def _target(run: RunView) -> Target:
    """
    What an evaluation needs of a run its lines tell.
    """
    return Target(
        run_id=str(run.run_id),
        trace_id=run.trace_id,
        span_id=run.span_id,
        run_name=run.name if run.name != "?" else None,
        models=model_fields(run.attributes()),
        service=run.service,
    )


def _write_to(
    path: str,
    attributes: Mapping[str, Any],
    target: Target,
    service_name: str | None,
    logger_provider: LoggerProvider | None,
) -> Evaluation:
    """
    The evaluation written to the log at *path* through the writer every handler of this process
    on that file shares (a new one otherwise, which never rotates the file: the app's writer
    does), waiting until the line is in the file.

    Raises:
        LogPathError: the file cannot be written.
        OSError: the line was not written in time.
    """
    from opentelemetry.sdk.environment_variables import OTEL_SERVICE_NAME

    from lc_trace._logs._pool import acquire_writer, release_writer

    service = (
        service_name or os.environ.get(OTEL_SERVICE_NAME, "").strip() or target.service or _env.DEFAULT_SERVICE_NAME
    )
    writer, sink = acquire_writer(path, service, (), {"max_bytes": 0})
    try:
        done = write(attributes, target, sink, logger_provider)
    finally:
        written = release_writer(writer, _WRITE_TIMEOUT_MS)
    if not written:
        raise OSError(f"the evaluation's line was not written to {path} within {_WRITE_TIMEOUT_MS} ms")
    return done


# --- an evaluator in the chain ------------------------------------------------------------------


def evaluated(runnable: Any, evaluator: Any, *, name: str) -> Runnable[Any, Any]:
    """
    *runnable*, each call of which is then evaluated by *evaluator* and recorded as an evaluation
    named *name* of that call's run: its output is *runnable*'s own.

    The evaluator (a runnable or a function) gets ``{"input": ..., "output": ...}`` and returns a
    score (a number), a label (a string), or a mapping: ``score``, ``value`` and ``reasoning``
    (what LangChain's string evaluators return), or ``score``, ``label`` and ``explanation``. It
    runs as a child of the returned runnable's run, so its own model calls are traced too; a
    stream of the returned runnable is one chunk, the whole output (the evaluator needs it). The
    evaluation goes through the ``gen_ai.evaluation.result`` custom event to the lc_trace
    handler in the call's callbacks (none there: nothing is recorded). An evaluator that fails,
    or returns none of the above, is recorded as a failed evaluation (``error.type``) and
    reported once through the ``lc_trace`` logger; the call itself never fails for it.

    Raises:
        TypeError, ValueError: *name* is not a non-empty string.
    """
    from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
    from langchain_core.runnables import RunnableLambda
    from langchain_core.runnables.base import coerce_to_runnable

    verdict(name, score=0.0)  # the name is checked now, not at the first call
    remember_ended_runs()  # the call's run has ended when its evaluation is sent
    target, judge = coerce_to_runnable(runnable), coerce_to_runnable(evaluator)

    def run(value: Any, config: RunnableConfig) -> Any:
        run_id = uuid4()
        output = target.invoke(value, {**config, "run_id": run_id})
        try:
            data = _event_data(name, judge.invoke({"input": value, "output": output}, config), run_id)
        except Exception as exc:
            data = _failed(name, exc, run_id)
        dispatch_custom_event(EVALUATION_RESULT, data, config=config)
        return output

    async def arun(value: Any, config: RunnableConfig) -> Any:
        run_id = uuid4()
        output = await target.ainvoke(value, {**config, "run_id": run_id})
        try:
            data = _event_data(name, await judge.ainvoke({"input": value, "output": output}, config), run_id)
        except Exception as exc:
            data = _failed(name, exc, run_id)
        await adispatch_custom_event(EVALUATION_RESULT, data, config=config)
        return output

    return RunnableLambda(run, afunc=arun, name=f"evaluated {name}")


def _event_data(name: str, output: Any, run_id: UUID) -> dict[str, Any]:
    """
    The custom event's data for an evaluator's *output*, checked as ``record_evaluation`` checks.

    Raises:
        TypeError, ValueError: the output says no score nor label, or says one wrongly.
    """
    if isinstance(output, Mapping):  # lc_trace's names, else LangChain string evaluators' (and LangSmith's comment)
        said = {
            "score": output.get("score"),
            "label": output.get("label", output.get("value")),
            "explanation": output.get("explanation", output.get("reasoning", output.get("comment"))),
        }
    elif isinstance(output, str):
        said = {"label": output}
    else:
        said = {"score": output}
    said = {key: value for key, value in said.items() if value is not None and value != ""}
    if "score" not in said and "label" not in said:
        raise ValueError(f"the evaluator returned no score nor label: {output!r:.200}")
    verdict(name, said.get("score"), said.get("label"), said.get("explanation"))
    return {"name": name, **said, "run_id": str(run_id)}


def _failed(name: str, exc: Exception, run_id: UUID) -> dict[str, Any]:
    """
    The custom event's data for an evaluator that failed (or said nothing readable), reported
    once per evaluation name.
    """
    from lc_trace._mapping import error_type

    if name not in _failures_reported:
        _failures_reported.add(name)
        _logger.warning("lc_trace: the evaluator of %r failed; recorded as a failed evaluation: %r", name, exc)
    return {"name": name, "error": error_type(exc), "run_id": str(run_id)}
