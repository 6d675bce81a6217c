"""Shared fixtures: a real in-memory OTel SDK pipeline, a log file per test, handler factories."""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import fnmatch
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import lc_trace._handlers
from lc_trace import AsyncTraceHandler, TraceHandler
from lc_trace._conventions import LATEST, OPT_IN, V1_41
from lc_trace._env import OTEL_SEMCONV_STABILITY_OPT_IN
from lc_trace._logs._writer import _LIVE
from lc_trace.testing import FakeChatModel, in_memory_tracing, read_log
from tests.conventions import Expected
from tests.twin import twin_chooser

pytest_plugins = ["tests.stack.fixtures"]

HANDLERS = [TraceHandler, AsyncTraceHandler]
MODES = ["invoke", "ainvoke"]
CONVENTIONS = [V1_41, LATEST]
# Every test of these runs once per GenAI conventions version a handler can follow.
_IN_BOTH_CONVENTIONS = (
    "tests/spans/",
    "tests/capture/test_metrics.py",
    "tests/capture/test_mapping.py",
    "tests/capture/test_providers.py",
    "tests/capture/test_seeds.py",
    "tests/capture/test_agent_metrics.py",
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The span and metric tests run once per version (``genai_conventions``, which every test uses)."""
    path = metafunc.definition.path.as_posix()
    if any(part in path for part in _IN_BOTH_CONVENTIONS):
        metafunc.parametrize("genai_conventions", CONVENTIONS, indirect=True)


@pytest.fixture
def genai_conventions(request: pytest.FixtureRequest) -> str:
    """The GenAI conventions version the test's handlers follow (v1.41.0 unless parametrized)."""
    return str(getattr(request, "param", V1_41))


@pytest.fixture
def expected(genai_conventions: str) -> Expected:
    """The names and values the test's conventions version gives (tests/conventions.py)."""
    return Expected(genai_conventions)


@pytest.fixture(autouse=True)
def _follow_conventions(genai_conventions: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every handler a v0.1.0 test builds (by any means) follows v0.1.0, through the opt-in switch users set."""
    if genai_conventions == LATEST:
        monkeypatch.setenv(OTEL_SEMCONV_STABILITY_OPT_IN, OPT_IN)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses a ``browser`` fixture (Chromium, tests/browser.py) is marked ``browser``."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()) and item.get_closest_marker("browser") is None:
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A real SDK provider whose finished spans the test can read."""
    return in_memory_tracing()


@pytest.fixture
def exporter(tracing: tuple[TracerProvider, InMemorySpanExporter]) -> InMemorySpanExporter:
    return tracing[1]


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "lc_trace.jsonl"


@pytest.fixture
def make_handler(tracing: tuple[TracerProvider, InMemorySpanExporter], log_path: Path) -> Iterator[Callable[..., Any]]:
    """Build handlers on the test's provider and log file; every one is closed afterwards."""
    made: list[Any] = []

    def make(cls: type = TraceHandler, **kwargs: Any) -> Any:
        kwargs.setdefault("tracer_provider", tracing[0])
        kwargs.setdefault("log_path", log_path)
        handler = cls(**kwargs)
        made.append(handler)
        return handler

    yield make
    for handler in made:
        handler.close()


def call(runnable: Runnable[Any, Any], value: Any, config: dict[str, Any] | None, mode: str) -> Any:
    """Run *runnable* the way a user's sync or async code would."""
    if mode == "invoke":
        return runnable.invoke(value, config)
    return asyncio.run(runnable.ainvoke(value, config))


def flower_chain(model: FakeChatModel | None = None) -> Runnable[Any, Any]:
    """The seeds' flower-shop chain: prompt | chat model | parser (4 runs)."""
    prompt = ChatPromptTemplate.from_messages([("system", "You are a florist."), ("human", "Which flower for {who}?")])
    return prompt | (model or FakeChatModel(responses=["A red rose."])) | StrOutputParser()


def spans_by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def parent_name(span: ReadableSpan, exporter: InMemorySpanExporter) -> str | None:
    if span.parent is None:
        return None
    for other in exporter.get_finished_spans():
        if other.context.span_id == span.parent.span_id:
            return other.name
    return "<missing>"


def log_lines(handler: Any) -> list[dict[str, Any]]:
    assert handler.flush(), "flush timed out"
    return read_log(handler.log_path)


# --- every log line a test leaves behind is checked against the index template's schema ----
# deploy/elasticsearch/lc-trace-logs.schema.json is the one source of both the Elasticsearch
# index template and this check, so a line that would be rejected for a type conflict (or a
# field nobody added to the schema) fails the test that wrote it.

REPO = Path(__file__).resolve().parents[1]
LOG_SCHEMA_PATH = REPO / "deploy" / "elasticsearch" / "lc-trace-logs.schema.json"
_ROTATED = re.compile(r"\.jsonl(\.\d+)?$")
_LC_TRACE_LINE_START = b'{"@timestamp":'  # EcsShaper puts @timestamp first, whatever the file is named


@functools.cache
def log_schema() -> dict[str, Any]:
    """The log-line JSON Schema, parsed once."""
    schema: dict[str, Any] = json.loads(LOG_SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


_NOT_IN_SCHEMA = (
    "not a field of the log-line schema (add it to deploy/elasticsearch/lc-trace-logs.schema.json, "
    "or declare a test's own processor fields with @pytest.mark.log_schema_extra_keys)"
)
_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    # jsonschema checks date-time only with an extra package; the stdlib parser is enough here.
    if isinstance(value, str):
        dt.datetime.fromisoformat(value)
    return True


@functools.cache
def _validator(extra_keys: frozenset[str]) -> jsonschema.Draft202012Validator:
    schema = log_schema()
    if extra_keys:
        schema = {**schema, "properties": {**schema["properties"], **dict.fromkeys(extra_keys, True)}}
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=_FORMATS)


def _error_key(error: jsonschema.ValidationError, line: dict[str, Any], schema: dict[str, Any]) -> str:
    """The key a validation error is about, to name it in the report."""
    if error.absolute_path:
        return str(error.absolute_path[0])
    if error.validator == "additionalProperties":
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        return ", ".join(k for k in line if k not in schema["properties"] and not any(p.search(k) for p in patterns))
    if error.validator == "required":  # one error per missing key, named first in its message
        return next((k for k in error.validator_value if error.message.startswith(repr(k))), "<line>")
    return "<line>"


def key_problems(keys: Iterable[str]) -> list[str]:
    """
    Keys Elasticsearch would refuse side by side: one that is both a value and the prefix of
    another (``a.b`` and ``a.b.c``), or one with an empty part (``a..b``, ``a.``).
    """
    ordered = sorted(set(keys))
    problems = [f"{key}: a dotted key with an empty part" for key in ordered if not all(key.split("."))]
    for key in ordered:
        index = bisect.bisect_left(ordered, key + ".")
        if index < len(ordered) and ordered[index].startswith(key + "."):
            problems.append(f"{key}: a value here, and the object holding {ordered[index]} elsewhere")
    return problems


def log_schema_violations(
    path: Path, *, extra_keys: Iterable[str] = (), torn_tail: bool = False, name: str | None = None
) -> list[str]:
    """
    Every way the lines of one log file break the schema, as ``file:line: key: reason``; also
    keys that conflict across the file's lines. *extra_keys* are fields of the test's own
    structlog processors; *torn_tail* allows an unterminated last line (a crash's).
    """
    label = name or str(path)
    data = path.read_bytes()
    rows = data.split(b"\n")
    tail = rows.pop()  # b"" when the file ends with a newline, as lc_trace always leaves it
    problems: list[str] = []
    validator = _validator(frozenset(extra_keys))
    keys: set[str] = set()
    for number, raw in enumerate(rows, 1):
        try:
            line = json.loads(raw)
        except ValueError as exc:
            problems.append(f"{label}:{number}: <line>: not JSON ({exc})")
            continue
        if not isinstance(line, dict):
            problems.append(f"{label}:{number}: <line>: not a JSON object")
            continue
        keys.update(line)
        for error in sorted(validator.iter_errors(line), key=lambda e: list(e.absolute_path)):
            if error.validator == "additionalProperties":
                reason = _NOT_IN_SCHEMA
            else:
                reason = error.message if len(error.message) <= 300 else error.message[:300] + "…"
            problems.append(f"{label}:{number}: {_error_key(error, line, validator.schema)}: {reason}")
    if tail and not torn_tail:
        problems.append(f"{label}:{len(rows) + 1}: <line>: no final newline (a torn line)")
    if keys:  # the fields Filebeat adds share the document: lc_trace's keys must not collide with them either
        keys.update(log_schema()["x-elasticsearch-shipper-fields"]["properties"])
    problems.extend(f"{label}: {problem}" for problem in key_problems(keys))
    return problems


def _is_log_file(path: Path) -> bool:
    if not path.is_file():
        return False
    if _ROTATED.search(path.name):
        return True
    with open(path, "rb") as file:
        return file.read(len(_LC_TRACE_LINE_START)) == _LC_TRACE_LINE_START


def _exempt_files(marks: list[pytest.Mark]) -> tuple[list[str] | None, list[str]]:
    """
    From the test's ``log_schema_exempt`` marks: globs of files not checked at all (None: every
    file) and globs of files whose unterminated last line is allowed.
    """
    skipped: list[str] | None = []
    torn: list[str] = []
    for mark in marks:
        reason = mark.args[0] if mark.args else mark.kwargs.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise pytest.UsageError("log_schema_exempt needs a reason string")
        files = list(mark.kwargs.get("files", ["*"]))
        if mark.kwargs.get("torn_tail", False):
            torn.extend(files)
        elif "files" not in mark.kwargs:
            skipped = None
        elif skipped is not None:
            skipped.extend(files)
    return skipped, torn


def _matches(relative: str, globs: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(relative, glob) or fnmatch.fnmatch(relative.rsplit("/", 1)[-1], glob) for glob in globs)


@pytest.fixture(autouse=True)
def _log_lines_match_the_schema(request: pytest.FixtureRequest) -> Iterator[None]:
    """
    After a test that used ``tmp_path``, every lc_trace log file it left there (``*.jsonl``,
    rotated ``*.jsonl.N``, or any file of lc_trace lines, subprocesses' too) must validate
    against the index template's schema. Opt-outs: ``@pytest.mark.log_schema_exempt(reason,
    files=[globs], torn_tail=bool)``; user processors' fields: ``@pytest.mark.log_schema_extra_keys(*keys)``.
    """
    if "tmp_path" not in request.fixturenames:
        yield
        return
    root: Path = request.getfixturevalue("tmp_path")
    yield
    skipped, torn = _exempt_files(list(request.node.iter_markers("log_schema_exempt")))
    if skipped is None:
        return
    extra = [key for mark in request.node.iter_markers("log_schema_extra_keys") for key in mark.args]
    for writer in list(_LIVE):  # a handler the test left open: its queued lines count too
        if writer.path.is_relative_to(root):
            writer.flush(5_000)
    problems: list[str] = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if _matches(relative, skipped) or not _is_log_file(path):
            continue
        problems.extend(
            log_schema_violations(path, extra_keys=extra, torn_tail=_matches(relative, torn), name=relative)
        )
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else "")
        pytest.fail(
            f"log lines under {root} do not match {LOG_SCHEMA_PATH.relative_to(REPO)}:\n  {shown}", pytrace=False
        )


@pytest.fixture(autouse=True)
def _both_span_paths_agree(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """
    Every handler built on an SDK provider runs its spans through the finished-span path and,
    in step, through the API path on a twin provider; after the test both exports must be the
    same (tests/twin.py). Ids are the same by construction (the twin replays them), times too
    (the Recorder passes them).
    """
    made: dict[int, Any] = {}
    monkeypatch.setattr(lc_trace._handlers, "span_sink", twin_chooser(lc_trace._handlers.span_sink, made))
    yield
    for twins in made.values():
        problems = twins.differences()
        if problems:
            pytest.fail("the finished-span path and the API path exported different spans:\n" + "\n".join(problems[:5]))
