"""
A run's span current while the run's own code runs, so that what other instrumentation
starts there (the HTTP request of a chat model, the SQL and HTTP calls of a tool) nests under
``chat {model}`` / ``execute_tool {tool}`` / ``retrieval {name}``. Opt in with
``lc_trace.instrument()``.

Why wrappers and not the callbacks alone: under ``ainvoke`` LangChain runs
the end callbacks in a copied context, so a context attached at a run's start cannot be
detached at its end; the anchors that try leak it (the next call becomes a child of the last)
or log "Failed to detach context". So the rule "never leave context attached" lives here, in
wrappers around LangChain's own entry points, each of which attaches and restores in one
frame, in one context:

* where the entry point is given the run's manager (a chat model's ``_generate_with_cache``, a
  text LLM's ``_generate_helper``, sync and async), it makes that run's span current for the call;
* where the run starts inside the entry point (``stream``/``astream`` of models, a tool's
  ``run``/``arun``, a retriever's ``invoke``/``ainvoke``), the wrapper opens a *scope*; the
  handler's start callback for that run, which LangChain calls in the caller's context (ours
  are sync, or inline under the async API), makes the span current there, and the wrapper puts
  the context back as it was when the call returns. A stream is wrapped step by step: the span
  is current inside each ``next()`` and never in the consumer's code between chunks.

End callbacks never touch the context, so nothing depends on where LangChain runs them.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar, Token
from typing import Any
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from lc_trace._recorder import Recorder
from lc_trace._stats import report_once

__all__ = ["claim", "instrument", "uninstrument"]


class _Scope:
    """
    One call of a wrapped entry point; holds the span of the run it started, once known.
    """

    __slots__ = ("span",)

    def __init__(self) -> None:
        self.span: Span | None = None


_SCOPE: ContextVar[_Scope | None] = ContextVar("lc_trace_scope", default=None)
scope_var = _SCOPE  # read by the handlers: one ContextVar.get per model/tool/retriever start


def claim(recorder: Recorder, run_id: UUID) -> None:
    """
    A model, tool or retriever run started: if it is the first run of an open scope, make its
    span current in this context (the scope's owner restores the context when the call returns).
    """
    scope = _SCOPE.get()
    if scope is None or scope.span is not None:
        return
    try:
        span = recorder.span_of(run_id)
        if span is None:
            return
        scope.span = span
        otel_context.attach(trace.set_span_in_context(span))  # reset by the scope's owner, not here
    except Exception:  # never the app's problem: the run is traced, only not current
        recorder.stats.add("internal_errors")
        report_once(recorder.stats, "internal:claim", "could not make a run's span current", exc_info=True)


def _enter(scope: _Scope) -> tuple[Token[_Scope | None], object]:
    current = otel_context.get_current()
    value = trace.set_span_in_context(scope.span, current) if scope.span is not None else current
    return _SCOPE.set(scope), otel_context.attach(value)


def _leave(tokens: tuple[Token[_Scope | None], object]) -> None:
    otel_context.detach(tokens[1])  # type: ignore[arg-type]  # a Token, made in this frame's context
    _SCOPE.reset(tokens[0])


# -- wrappers -------------------------------------------------------------------------------


def _scoped(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tokens = _enter(_Scope())
        try:
            return fn(*args, **kwargs)
        finally:
            _leave(tokens)

    return wrapper


def _ascoped(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        tokens = _enter(_Scope())
        try:
            return await fn(*args, **kwargs)
        finally:
            _leave(tokens)

    return wrapper


def _scoped_iter(fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        inner = fn(*args, **kwargs)
        scope = _Scope()
        try:
            while True:
                tokens = _enter(scope)
                try:
                    item = next(inner)
                except StopIteration:
                    return
                finally:
                    _leave(tokens)
                yield item
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()

    return wrapper


def _ascoped_iter(fn: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        inner = fn(*args, **kwargs)
        scope = _Scope()
        try:
            while True:
                tokens = _enter(scope)
                try:
                    item = await inner.__anext__()
                except StopAsyncIteration:
                    return
                finally:
                    _leave(tokens)
                yield item
        finally:
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()

    return wrapper


def _span_for(run_manager: Any) -> Span | None:
    """
    The span of the run *run_manager* manages, from the first lc_trace handler that knows it.
    """
    try:
        run_id = getattr(run_manager, "run_id", None)
        for handler in getattr(run_manager, "handlers", ()):
            recorder = getattr(handler, "_recorder", None)
            if isinstance(recorder, Recorder):
                span = recorder.span_of(run_id)  # type: ignore[arg-type]
                if span is not None:
                    return span
    except Exception:  # never the app's problem: the call runs, its span only not current
        pass
    return None


def _single(run_managers: Any) -> Any:
    return run_managers[0] if isinstance(run_managers, list) and len(run_managers) == 1 else None


def _with_run(fn: Callable[..., Any], position: int, keyword: str, pick: Callable[[Any], Any]) -> Callable[..., Any]:
    """
    Wrap a method given its run's manager (as argument *position* after self, or *keyword*).
    """

    def span_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Span | None:
        manager = kwargs.get(keyword, args[position] if len(args) > position else None)
        return _span_for(pick(manager)) if manager is not None else None

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        span = span_of(args, kwargs)
        if span is None:
            return fn(self, *args, **kwargs)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            return fn(self, *args, **kwargs)
        finally:
            otel_context.detach(token)

    @functools.wraps(fn)
    async def awrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        span = span_of(args, kwargs)
        if span is None:
            return await fn(self, *args, **kwargs)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            return await fn(self, *args, **kwargs)
        finally:
            otel_context.detach(token)

    return awrapper if inspect.iscoroutinefunction(fn) else wrapper


# -- instrument -----------------------------------------------------------------------------

_LOCK = threading.Lock()
_ORIGINALS: dict[tuple[type, str], Any] = {}


def _targets() -> list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]]:
    from langchain_core.language_models import BaseChatModel, BaseLLM
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.tools import BaseTool

    def manager(fn: Callable[..., Any]) -> Callable[..., Any]:
        return _with_run(fn, 2, "run_manager", lambda m: m)

    def managers(fn: Callable[..., Any]) -> Callable[..., Any]:
        return _with_run(fn, 2, "run_managers", _single)

    return [
        (BaseChatModel, "_generate_with_cache", manager),
        (BaseChatModel, "_agenerate_with_cache", manager),
        (BaseChatModel, "stream", _scoped_iter),
        (BaseChatModel, "astream", _ascoped_iter),
        (BaseLLM, "_generate_helper", managers),
        (BaseLLM, "_agenerate_helper", managers),
        (BaseLLM, "stream", _scoped_iter),
        (BaseLLM, "astream", _ascoped_iter),
        (BaseTool, "run", _scoped),
        (BaseTool, "arun", _ascoped),
        (BaseRetriever, "invoke", _scoped),
        (BaseRetriever, "ainvoke", _ascoped),
    ]


def instrument() -> None:
    """
    Make each LangChain model, tool and retriever run's span current while its code runs, so
    spans other OpenTelemetry instrumentation starts there (httpx, requests, a database) nest
    under it. Process-wide and idempotent; ``uninstrument()`` undoes it.

    The context is always put back as it was when a call returns (or between the chunks of a
    stream); what LangChain's callbacks receive does not change.
    """
    with _LOCK:
        for cls, name, wrap in _targets():
            if (cls, name) in _ORIGINALS:
                continue
            original = cls.__dict__.get(name)
            if original is None:  # a LangChain without this entry point: nothing to wrap there
                continue
            _ORIGINALS[(cls, name)] = original
            setattr(cls, name, wrap(original))


def uninstrument() -> None:
    """
    Put LangChain's entry points back as ``instrument()`` found them.
    """
    with _LOCK:
        for (cls, name), original in _ORIGINALS.items():
            setattr(cls, name, original)
        _ORIGINALS.clear()
