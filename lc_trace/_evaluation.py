"""
Evaluations: a score, a label or an explanation given to one run, as the OpenTelemetry GenAI
conventions' ``gen_ai.evaluation.result`` event.

What an evaluation says is checked here once, for both ways one is recorded: the public
``record_evaluation`` (``_feedback``) and the handler's custom-event hook (``_recorder``). Both
write it the same two ways: one ECS JSON line in the evaluated run's log, carrying that run's span
ids (``trace.id``, ``span.id``), its run id and its model, so the reader can put scores beside
runs and models; and an OpenTelemetry log event with the span's context, when a logger provider
is set. Nothing here knows LangChain: a run arrives as a ``Target``.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from opentelemetry import _logs, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from lc_trace import _attributes as A
from lc_trace._records import EVALUATION_RESULT
from lc_trace._version import SCOPE_NAME, VERSION

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider

__all__ = [
    "EVENT_KEYS",
    "Evaluation",
    "Target",
    "emit_event",
    "event_verdict",
    "line_fields",
    "run_id_text",
    "trace_id_text",
    "verdict",
    "write",
]

EVENT_KEYS = ("name", "score", "label", "explanation", "error", "run_id")
"""What the data of a ``gen_ai.evaluation.result`` custom event may hold."""
_MODEL_KEYS = (A.GEN_AI_REQUEST_MODEL, A.GEN_AI_RESPONSE_MODEL, A.GEN_AI_RESPONSE_ID)


@dataclass(frozen=True, slots=True)
class Target:
    """
    The evaluated run's span, as the handler holds it or the log tells it.

    ``models``: its ``gen_ai.request.model``, ``gen_ai.response.model`` and ``gen_ai.response.id``,
    those it has (a model call's). ``trace_flags``: its span's (0 when the log is all there is:
    a line does not say whether its span was sampled).
    """

    run_id: str
    trace_id: str
    span_id: str
    run_name: str | None = None
    models: Mapping[str, str] = field(default_factory=dict)
    trace_flags: int = 0
    service: str | None = None


# Whether the recorders remember their ended runs, so that an evaluation can name a run after it
# ended without reading the log: from the process's first evaluation on. Remembering them always
# cost ~0.6 us an event (bench.replay chain, 5 alternating rounds, medians: 20.15 -> 20.77 us),
# paid by every app, evaluating or not.
remembering = False


def remember_ended_runs() -> None:
    """
    From now on, every recorder of the process remembers its ended runs (the newest 1,024 to
    2,048): called by every way to evaluate.
    """
    global remembering
    remembering = True


def model_fields(*attribute_sets: Mapping[str, Any]) -> dict[str, str]:
    """
    The model names and response id among a run's attributes (a later set wins).
    """
    found: dict[str, str] = {}
    for attributes in attribute_sets:
        for key in _MODEL_KEYS:
            value = attributes.get(key)
            if isinstance(value, str) and value:
                found[key] = value
    return found


@dataclass(frozen=True, slots=True)
class Evaluation:
    """
    One recorded evaluation: what it said and which run's span it was given to.

    Attributes:
        name: ``gen_ai.evaluation.name``, e.g. ``"relevance"`` or ``"user_feedback"``.
        run_id: the LangChain run id of the evaluated run (a trace's root run, given a trace id).
        trace_id: its span's trace id, 32 hex digits.
        span_id: its span's id, 16 hex digits.
        score: ``gen_ai.evaluation.score.value``, if one was given.
        label: ``gen_ai.evaluation.score.label``, if one was given.
        explanation: ``gen_ai.evaluation.explanation``, if one was given.
        error_type: ``error.type``, when the evaluation itself failed.
        model: the evaluated run's model (the one that answered, else the one asked for), if it
            called one.
        response_id: the evaluated model call's ``gen_ai.response.id``, if it has one.
    """

    name: str
    run_id: str
    trace_id: str
    span_id: str
    score: float | None = None
    label: str | None = None
    explanation: str | None = None
    error_type: str | None = None
    model: str | None = None
    response_id: str | None = None


# --- what an evaluation says: checked once, for every way in ------------------------------------


def verdict(
    name: Any, score: Any = None, label: Any = None, explanation: Any = None, error: Any = None
) -> dict[str, Any]:
    """
    An evaluation's own attributes (``gen_ai.evaluation.*``, ``error.type``), checked.

    Raises:
        TypeError: an argument of the wrong type (a bool score among them: say 1.0 or a label).
        ValueError: an empty name or label, a score that is not finite, or none of score,
            label and error.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string naming the evaluation (e.g. 'relevance'), got {type(name).__name__}")
    if not name.strip():
        raise ValueError("name must not be empty: it names the evaluation (e.g. 'relevance')")
    out: dict[str, Any] = {A.GEN_AI_EVALUATION_NAME: name.strip()}
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, numbers.Real):
            hint = ": pass 1.0 or 0.0, or a label such as 'pass'" if isinstance(score, bool) else ""
            raise TypeError(f"score must be a real number (int or float), got {type(score).__name__}{hint}")
        value = float(score)
        if not math.isfinite(value):
            raise ValueError(f"score must be a finite number, got {value}")
        out[A.GEN_AI_EVALUATION_SCORE_VALUE] = value
    if label is not None:
        if not isinstance(label, str):
            raise TypeError(f"label must be a string (e.g. 'pass', 'relevant'), got {type(label).__name__}")
        if not label.strip():
            raise ValueError("label must not be empty; leave it out instead")
        out[A.GEN_AI_EVALUATION_SCORE_LABEL] = label.strip()
    if explanation is not None:
        if not isinstance(explanation, str):
            raise TypeError(f"explanation must be a string, got {type(explanation).__name__}")
        if explanation.strip():
            out[A.GEN_AI_EVALUATION_EXPLANATION] = explanation
    if error is not None:
        if isinstance(error, BaseException):
            out[A.ERROR_TYPE] = _error_type(error)
        elif isinstance(error, str) and error.strip():
            out[A.ERROR_TYPE] = error.strip()
        else:
            raise TypeError(
                "error must be the exception the evaluation failed with, or its type as a non-empty string, "
                f"got {error!r}"
            )
    if score is None and label is None and error is None:
        raise ValueError(
            f"the evaluation {name.strip()!r} says nothing: give a score, a label, or the error it failed with"
        )
    return out


def _error_type(error: BaseException) -> str:
    from lc_trace._mapping import error_type  # the one naming of error.type (loads LangChain: only when asked)

    return error_type(error)


def event_verdict(data: Any) -> tuple[dict[str, Any], str | None]:
    """
    The attributes a ``gen_ai.evaluation.result`` custom event's *data* gives, and the run id it
    names (None: the run that sent the event).

    Raises:
        TypeError, ValueError: as ``verdict``; also data that is not a mapping, or holds a key
            not in ``EVENT_KEYS``.
    """
    if not isinstance(data, Mapping):
        raise TypeError(
            f"the data of a {EVALUATION_RESULT!r} event must be a dict (name, and score or label), "
            f"got {type(data).__name__}"
        )
    unknown = sorted(str(key) for key in data if key not in EVENT_KEYS)
    if unknown:
        raise ValueError(
            f"a {EVALUATION_RESULT!r} event's data has unknown keys {unknown} (known: {', '.join(EVENT_KEYS)})"
        )
    if "name" not in data:
        raise ValueError(f"a {EVALUATION_RESULT!r} event's data needs a 'name' (e.g. 'relevance')")
    run_id = data.get("run_id")
    return (
        verdict(data["name"], data.get("score"), data.get("label"), data.get("explanation"), data.get("error")),
        run_id_text(run_id) if run_id is not None else None,
    )


def run_id_text(run_id: Any) -> str:
    """
    A LangChain run id as the log writes it (``langchain.run.id``).

    Raises:
        TypeError, ValueError: not a UUID, nor a string that is one.
    """
    if isinstance(run_id, UUID):
        return str(run_id)
    if not isinstance(run_id, str):
        raise TypeError(f"run_id must be a LangChain run id (a UUID or its string), got {type(run_id).__name__}")
    try:
        return str(UUID(run_id.strip()))
    except ValueError:
        raise ValueError(f"run_id must be a LangChain run id (a UUID), got {run_id!r}") from None


def trace_id_text(trace_id: Any) -> str:
    """
    A trace id as the log writes it (``trace.id``: 32 lowercase hex digits), from that text or
    from the int a ``SpanContext`` holds.

    Raises:
        TypeError, ValueError: neither.
    """
    if isinstance(trace_id, int) and not isinstance(trace_id, bool):
        if not 0 < trace_id < 1 << 128:
            raise ValueError(f"trace_id must be a 128-bit trace id other than 0, got {trace_id}")
        return format(trace_id, "032x")
    if not isinstance(trace_id, str):
        raise TypeError(f"trace_id must be a trace id (32 hex digits, or an int), got {type(trace_id).__name__}")
    text = trace_id.strip().lower()
    if len(text) != 32 or text.strip("0123456789abcdef") or not text.strip("0"):
        raise ValueError(f"trace_id must be a whole trace id, 32 hex digits (not all zeros), got {trace_id!r}")
    return text


# --- how it is written ---------------------------------------------------------------------------


class _LineSink(Protocol):
    def emit(self, level: str, message: str, fields: Mapping[str, Any]) -> None: ...


def line_fields(attributes: Mapping[str, Any], target: Target, ns: int) -> dict[str, Any]:
    """
    The log line's fields: the evaluated span's ids, its run and model, then the evaluation.
    """
    fields: dict[str, Any] = {
        "_ns": ns,
        A.EVENT_ACTION: EVALUATION_RESULT,
        A.TRACE_ID: target.trace_id,
        A.SPAN_ID: target.span_id,
        A.LC_RUN_ID: target.run_id,
    }
    if target.run_name is not None:
        fields[A.LC_RUN_NAME] = target.run_name
    fields.update(target.models)
    fields.update(attributes)
    return fields


def _message(attributes: Mapping[str, Any], target: Target) -> str:
    said = [
        str(attributes[key])
        for key in (A.GEN_AI_EVALUATION_SCORE_VALUE, A.GEN_AI_EVALUATION_SCORE_LABEL)
        if key in attributes
    ]
    if A.ERROR_TYPE in attributes:
        said.append(f"failed ({attributes[A.ERROR_TYPE]})")
    name = attributes[A.GEN_AI_EVALUATION_NAME]
    return f"{EVALUATION_RESULT} {name}: {' '.join(said)} ({target.run_name or target.run_id})"


def write(
    attributes: Mapping[str, Any],
    target: Target,
    sink: _LineSink | None,
    logger_provider: LoggerProvider | None = None,
) -> Evaluation:
    """
    Record one evaluation of *target*: a line on *sink* (none without one) and an OpenTelemetry
    log event on *logger_provider* (default: the global one; nothing without one).
    """
    ns = time.time_ns()
    level = "error" if A.ERROR_TYPE in attributes else "info"
    if sink is not None:
        sink.emit(level, _message(attributes, target), line_fields(attributes, target, ns))
    emit_event(attributes, target, logger_provider, ns)
    models = target.models
    return Evaluation(
        name=attributes[A.GEN_AI_EVALUATION_NAME],
        run_id=target.run_id,
        trace_id=target.trace_id,
        span_id=target.span_id,
        score=attributes.get(A.GEN_AI_EVALUATION_SCORE_VALUE),
        label=attributes.get(A.GEN_AI_EVALUATION_SCORE_LABEL),
        explanation=attributes.get(A.GEN_AI_EVALUATION_EXPLANATION),
        error_type=attributes.get(A.ERROR_TYPE),
        model=models.get(A.GEN_AI_RESPONSE_MODEL) or models.get(A.GEN_AI_REQUEST_MODEL),
        response_id=models.get(A.GEN_AI_RESPONSE_ID),
    )


def emit_event(attributes: Mapping[str, Any], target: Target, logger_provider: LoggerProvider | None, ns: int) -> None:
    """
    The ``gen_ai.evaluation.result`` event through the OpenTelemetry Logs API, with the evaluated
    span's context (trace id, span id, flags), so a backend files it under that span. The
    conventions' attributes only: the evaluation's, and the evaluated model call's response id.
    """
    provider = logger_provider if logger_provider is not None else _logs.get_logger_provider()
    logger = provider.get_logger(SCOPE_NAME, VERSION, schema_url=A.SCHEMA_URL)
    values = dict(attributes)
    response_id = target.models.get(A.GEN_AI_RESPONSE_ID)
    if response_id is not None:
        values[A.GEN_AI_RESPONSE_ID] = response_id
    failed = A.ERROR_TYPE in attributes
    context = SpanContext(
        int(target.trace_id, 16), int(target.span_id, 16), is_remote=False, trace_flags=TraceFlags(target.trace_flags)
    )
    logger.emit(_record(logger, context, values, ns, failed))


def _record(logger: Any, context: SpanContext, attributes: dict[str, Any], ns: int, failed: bool) -> Any:
    """
    The log record, in the form the installed API and SDK take (opentelemetry 1.30 to now):
    ``event_name`` and ``context`` where the record has them (1.35 on; before, the ``event.name``
    attribute and the ids themselves, which 1.35 on deprecates); the SDK's own record, with the
    logger's resource, where the SDK has one (to 1.38: before 1.37 its logger does not convert
    the API's record, and its exporters read the record's resource).
    """
    record_type, takes, sdk_logger = _record_forms()
    kwargs: dict[str, Any] = {
        "timestamp": ns,
        "observed_timestamp": ns,
        "severity_number": _logs.SeverityNumber.ERROR if failed else _logs.SeverityNumber.INFO,
        "severity_text": "ERROR" if failed else "INFO",
        "attributes": attributes,
    }
    if "event_name" in takes:
        kwargs["event_name"] = EVALUATION_RESULT
    else:
        attributes["event.name"] = EVALUATION_RESULT
    if "context" in takes:
        kwargs["context"] = trace.set_span_in_context(NonRecordingSpan(context))
    else:
        kwargs.update(trace_id=context.trace_id, span_id=context.span_id, trace_flags=context.trace_flags)
    if record_type is not None and sdk_logger is not None and isinstance(logger, sdk_logger):
        return record_type(resource=logger.resource, **kwargs)
    return _logs.LogRecord(**kwargs)


@functools.cache
def _record_forms() -> tuple[Any, frozenset[str], Any]:
    """
    What the installed OpenTelemetry takes: the SDK's own record type where it has one that
    carries a resource (else None), the API record's parameters, and the SDK's logger type.
    """
    takes = frozenset(inspect.signature(_logs.LogRecord.__init__).parameters)
    try:
        from opentelemetry.sdk import _logs as sdk_logs
    except ImportError:  # no SDK: whatever logger there is takes the API's record
        return None, takes, None
    record_type = getattr(sdk_logs, "LogRecord", None)
    if record_type is not None and "resource" not in inspect.signature(record_type.__init__).parameters:
        record_type = None
    return record_type, takes, sdk_logs.Logger
