"""
lc_trace: one LangChain callback handler that gives OpenTelemetry spans (GenAI semantic
conventions) and ECS JSON log lines written in the background.

    from lc_trace import AsyncTraceHandler
    handler = AsyncTraceHandler(service_name="flower-shop")
    await chain.ainvoke({"flower": "rose"}, config={"callbacks": [handler]})

A score given to a run later, from anywhere: ``lc_trace.record_evaluation("helpful", run_id=..., score=1.0)``.

The public names load on first use (PEP 562), so the ``lc-trace`` log viewer, which needs
none of them, starts without importing LangChain and the OpenTelemetry SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lc_trace._configure import configure
    from lc_trace._current import instrument, uninstrument
    from lc_trace._evaluation import Evaluation
    from lc_trace._feedback import RunNotFoundError, evaluated, record_evaluation
    from lc_trace._handlers import AsyncTraceHandler, TraceHandler
    from lc_trace._lifecycle._shutdown import lifespan
    from lc_trace._logs._writer import LogPathError
    from lc_trace._propagation import current_traceparent
    from lc_trace._stats import Stats

    __version__: str

__all__ = [
    "AsyncTraceHandler",
    "Evaluation",
    "LogPathError",
    "RunNotFoundError",
    "Stats",
    "TraceHandler",
    "configure",
    "current_traceparent",
    "evaluated",
    "instrument",
    "lifespan",
    "record_evaluation",
    "uninstrument",
]

_HOMES = {
    "AsyncTraceHandler": "lc_trace._handlers",
    "Evaluation": "lc_trace._evaluation",
    "LogPathError": "lc_trace._logs._writer",
    "RunNotFoundError": "lc_trace._feedback",
    "Stats": "lc_trace._stats",
    "TraceHandler": "lc_trace._handlers",
    "configure": "lc_trace._configure",
    "current_traceparent": "lc_trace._propagation",
    "evaluated": "lc_trace._feedback",
    "instrument": "lc_trace._current",
    "lifespan": "lc_trace._lifecycle._shutdown",
    "record_evaluation": "lc_trace._feedback",
    "uninstrument": "lc_trace._current",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # on first use too: importlib.metadata alone takes ~20 ms to import
        from lc_trace._version import VERSION

        globals()[name] = VERSION
        return VERSION
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'lc_trace' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    value.__module__ = "lc_trace"  # public objects print as lc_trace.X
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "__version__"})
