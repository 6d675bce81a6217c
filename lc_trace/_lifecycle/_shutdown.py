"""
Everything lc_trace holds reaches the file and the collector, however the process is stopped.

``atexit`` covers a normal exit and an uncaught ``KeyboardInterrupt`` (SIGINT's default). Four
ways out skip it, and each gets its answer here (docs/reliability.md, *Stopping*):

* **SIGTERM with the default disposition** (a plain script, a container's PID 1, a gunicorn
  uvicorn worker, which resets SIGTERM before loading the app): the kernel ends the process.
  lc_trace's handler flushes, puts the default back and raises the signal again, so the process
  still dies of SIGTERM (exit status 143).
* **A server that handles SIGTERM and re-raises it after its graceful drain** (uvicorn restores
  the handler it found, then ``signal.raise_signal``): lc_trace's handler goes in front of the
  server's, flushes, then calls it, which decides everything else. Servers install theirs after
  loading the app, so a watcher thread looks every 0.25 s and arms the writers, and the next log
  line on the main thread (the only one that may set a handler) puts lc_trace's in front again.
  From SIGTERM on, each log line is written before ``emit`` returns and each span is exported as
  it ends, so what the drain finishes is saved even if it ends in the server's re-raise or in the
  SIGKILL after a grace period (Kubernetes); an app whose handler goes on is batched again after
  ``_STOPPING_FOR_S``.
* **Ctrl-C to a server's process group** (``uvicorn --workers``): each worker shuts down on its
  SIGINT and restores the default SIGTERM it found, and the SIGTERM its supervisor sends next can
  end it before ``atexit``. Where a server (or the app) has its own SIGINT handler, lc_trace's goes
  in front of it too and stops as on SIGTERM; Python's own ``KeyboardInterrupt`` is left alone.
* **``os._exit``** (Celery's prefork children): Celery's ``worker_process_shutdown`` and
  ``worker_shutdown`` signals, connected when Celery is loaded (never imported here).

Only ever from the main thread, never over ``SIG_IGN`` or a handler set outside Python; each
install is a function of its own that remembers what it went in front of, so a server that
restores the handler it found restores that chain. Every flush is bounded (the export timeouts)
and never raises into the app. ``LC_TRACE_SIGTERM=off`` keeps lc_trace out of signals.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any, Protocol

from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from lc_trace import _env
from lc_trace._lifecycle._flush import flush_provider

__all__ = ["flush_all", "install", "lifespan", "register_providers", "register_writer"]

_LINES_TIMEOUT_S = 2.0
"""How long a signal waits for the log lines to be written (a stalled disk must not hold exit)."""

_Handler = Callable[[int, FrameType | None], Any] | int | None
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Writer(Protocol):
    def flush(self, timeout_millis: int = ...) -> bool: ...
    def write_through(self) -> None: ...
    def batch_again(self) -> None: ...
    def arm(self) -> None: ...
    def disarm(self) -> None: ...


_writers: weakref.WeakSet[_Writer] = weakref.WeakSet()
_providers: list[tuple[Any, Any, float]] = []  # (tracer provider, meter provider, bound in s)
_state = {"stopping": False, "in_handler": False, "celery": False}
_stopping_since: list[float] = []
_watcher: dict[str, threading.Thread] = {}
_WATCH_INTERVAL_S = 0.25
_STOPPING_FOR_S = 120.0
"""A process still alive this long after SIGTERM (its handler chose to go on) goes back to batching."""


def register_writer(writer: _Writer) -> None:
    """
    A log writer to flush when the process is stopped (held weakly), and the moment to install.
    """
    _writers.add(writer)
    if _state["stopping"]:
        writer.write_through()
    else:  # a server often installs its own handler right after loading the app: look again at the first line
        writer.arm()
    install()


def register_providers(tracer_provider: Any, meter_provider: Any, bound_s: float) -> None:
    """
    ``configure()``'s providers: flushed when the process is stopped, within *bound_s*.
    """
    _providers.append((tracer_provider, meter_provider, bound_s))
    if _state["stopping"]:
        _export_as_they_end(tracer_provider, bound_s)
    install()


def install() -> None:
    """
    Put lc_trace's handler in front of the current one for each signal that stops a service,
    where it can chain: from the main thread, over the default or a Python handler (which it
    then calls), never over ``SIG_IGN``. Idempotent; never raises. ``LC_TRACE_SIGTERM=off``
    keeps lc_trace out of signals.
    """
    _connect_celery()
    if threading.current_thread() is not threading.main_thread() or _disabled():
        return
    try:
        for signum in _STOP_SIGNALS:
            current = signal.getsignal(signum)
            if _should_chain(signum, current):
                signal.signal(signum, _chain(current))
    except (ValueError, OSError):  # not the main interpreter, or no signals here
        return
    _start_watcher()


def _should_chain(signum: int, current: _Handler) -> bool:
    """
    SIGTERM: over anything but ``SIG_IGN`` or a handler set outside Python. SIGINT: only over a
    server's or an app's own handler, which makes Ctrl-C a stop (a worker that shuts down on it
    restores the default SIGTERM, so the SIGTERM its supervisor sends next ends the process
    before ``atexit``); Python's own ``KeyboardInterrupt`` is left alone, ``atexit`` covers it.
    """
    if _is_ours(current) or current is signal.SIG_IGN or current is None:
        return False
    if signum == signal.SIGINT:
        return callable(current) and current is not signal.default_int_handler
    return True


def _disabled() -> bool:
    return not _env.env_bool(_env.LC_TRACE_SIGTERM, True)


def _is_ours(handler: object) -> bool:
    return bool(getattr(handler, "_lc_trace", False))


def _chain(previous: _Handler) -> Callable[[int, FrameType | None], None]:
    """
    A handler that flushes, then hands the signal on: to *previous* when it is a function (the
    server's or the app's, which decides everything else), else to the kernel again with the
    default restored, so the process dies of the signal as it would have. Each install makes
    its own, so a server that restores the one it found restores that one, with its *previous*.
    """

    def on_stop_signal(signum: int, frame: FrameType | None) -> None:
        if not _state["in_handler"]:  # a second signal while flushing goes straight on
            _state["in_handler"] = True
            try:
                with contextlib.suppress(Exception):  # nothing of ours may change how the process stops
                    _begin_stopping()
                with contextlib.suppress(Exception):
                    flush_all()
            finally:
                _state["in_handler"] = False
        if callable(previous):
            previous(signum, frame)
            return
        signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        signal.raise_signal(signum)

    on_stop_signal._lc_trace = True  # type: ignore[attr-defined]
    return on_stop_signal


def _start_watcher() -> None:
    watcher = _watcher.get("thread")
    if watcher is None or not watcher.is_alive():
        watcher = threading.Thread(target=_watch, name="lc_trace-sigterm", daemon=True)
        watcher.start()
        _watcher["thread"] = watcher


def _watch() -> None:
    """
    Every quarter second: if something replaced lc_trace's SIGTERM handler or set a SIGINT one
    (a server installs its own after loading the app; an app sets one), arm the writers, so that the next line
    emitted on the main thread puts lc_trace's in front again (only the main thread can).
    """
    while True:
        time.sleep(_WATCH_INTERVAL_S)
        if _stopping_since and time.monotonic() - _stopping_since[0] > _STOPPING_FOR_S:
            _end_stopping()
        try:
            replaced = any(_should_chain(signum, signal.getsignal(signum)) for signum in _STOP_SIGNALS)
        except Exception:
            return
        if replaced and not _state["stopping"]:
            for writer in _live_writers():
                writer.arm()


def _live_writers() -> list[_Writer]:
    """The writers, even while another thread adds one (a set cannot be read while it grows)."""
    for _ in range(10):
        try:
            return list(_writers)
        except RuntimeError:
            continue
    return []


def _begin_stopping() -> None:
    _state["stopping"] = True
    _stopping_since[:] = [time.monotonic()]
    for writer in _live_writers():
        writer.write_through()
    for tracer_provider, _, bound_s in _providers:
        _export_as_they_end(tracer_provider, bound_s)


def _end_stopping() -> None:
    """The handler that SIGTERM reached decided not to exit: batch again, as before the signal."""
    _state["stopping"] = False
    _stopping_since.clear()
    for writer in _live_writers():
        writer.batch_again()


def flush_all() -> bool:
    """
    Write every queued line and export every ended span and metric, in threads of their own so
    that a lock the interrupted main thread holds costs time, not a hang: at most the longest
    bound (the lines' 2 s, or a provider's export timeout). True if everything got through.
    """
    jobs: list[tuple[Callable[[], bool], float]] = [
        (functools.partial(_flush_writer, writer), _LINES_TIMEOUT_S) for writer in _live_writers()
    ]
    known = set()
    for tracer_provider, meter_provider, bound_s in _providers:
        for provider in (tracer_provider, meter_provider):
            known.add(id(provider))
            jobs.append((functools.partial(flush_provider, provider, int(bound_s * 1000)), bound_s))
    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        if id(provider) not in known:  # the app's own global providers (handlers without configure())
            jobs.append((functools.partial(flush_provider, provider, int(_LINES_TIMEOUT_S * 1000)), _LINES_TIMEOUT_S))
    results: list[bool] = []
    threads = []
    for job, _ in jobs:
        thread = threading.Thread(target=_run_into, args=(job, results), name="lc_trace-flush", daemon=True)
        thread.start()
        threads.append(thread)
    if not threads:
        return True
    bound = max(b for _, b in jobs) + 0.5
    deadline = time.monotonic() + bound
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return len(results) == len(jobs) and all(results)


def _run_into(job: Callable[[], bool], results: list[bool]) -> None:
    results.append(job())


def _flush_writer(writer: _Writer) -> bool:
    try:
        return bool(writer.flush(int(_LINES_TIMEOUT_S * 1000)))
    except Exception:
        return False


class _ExportAsTheyEnd(SpanProcessor):
    """
    Added to ``configure()``'s provider once the process is stopping (never before: no cost
    until then): exports each span as it ends, on the thread that ended it, so a span the drain
    finishes is at the collector before the response it belongs to goes out.
    """

    def __init__(self, provider: Any, bound_s: float) -> None:
        self._provider = provider
        self._bound_ms = int(bound_s * 1000)
        self._busy = threading.local()

    def on_end(self, span: ReadableSpan) -> None:
        if not _state["stopping"] or getattr(self._busy, "on", False):
            return
        self._busy.on = True
        try:
            self._provider.force_flush(self._bound_ms)
        except Exception:
            pass
        finally:
            self._busy.on = False


def _export_as_they_end(tracer_provider: Any, bound_s: float) -> None:
    add = getattr(tracer_provider, "add_span_processor", None)
    if add is not None and not getattr(tracer_provider, "_lc_trace_export_as_they_end", False):
        tracer_provider._lc_trace_export_as_they_end = True
        add(_ExportAsTheyEnd(tracer_provider, bound_s))


# -- Celery ---------------------------------------------------------------------------------


def _connect_celery() -> None:
    """
    Connect to Celery's shutdown signals, once, if Celery is loaded (never imports it).
    """
    if _state["celery"] or "celery" not in sys.modules:
        return
    try:
        signals = importlib.import_module("celery.signals")
        signals.worker_process_shutdown.connect(_on_celery_shutdown, weak=False, dispatch_uid="lc_trace-process")
        signals.worker_shutdown.connect(_on_celery_shutdown, weak=False, dispatch_uid="lc_trace-worker")
        _state["celery"] = True
    except Exception:
        return


def _on_celery_shutdown(*args: Any, **kwargs: Any) -> None:
    """
    A prefork child leaves through ``os._exit`` right after this signal: flush now.
    """
    with contextlib.suppress(Exception):
        flush_all()


def _after_fork_in_child() -> None:
    _state["in_handler"] = False
    _state["stopping"] = False
    _connect_celery()
    if _watcher:  # threads do not survive a fork; the child's handlers are its own business from here
        _watcher.clear()
        _start_watcher()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# -- ASGI -----------------------------------------------------------------------------------


def lifespan(handler: Any) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """
    An ASGI lifespan for Starlette and FastAPI (``FastAPI(lifespan=lc_trace.lifespan(handler))``)
    that closes *handler* at the app's shutdown: a second line of defence beside the signal
    handling, for servers and set-ups lc_trace cannot see. An app with a lifespan of its own
    calls ``await handler.aclose()`` at its end instead.
    """

    @contextlib.asynccontextmanager
    async def _lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await handler.aclose()

    return _lifespan
