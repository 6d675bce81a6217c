"""Shared fixtures: a real in-memory OTel SDK pipeline, a log file per test, handler factories."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lc_trace import AsyncTraceHandler, TraceHandler
from lc_trace.testing import FakeChatModel, in_memory_tracing, read_log

HANDLERS = [TraceHandler, AsyncTraceHandler]
MODES = ["invoke", "ainvoke"]


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
