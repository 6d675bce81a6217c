"""The public surface is small and pinned (httpx's habit): changing it is a deliberate act."""

from __future__ import annotations

import lc_trace


def test_all_is_pinned():
    """lc_trace exports exactly these names."""
    assert [
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
    ] == lc_trace.__all__


def test_public_names_report_the_package():
    """Public objects print as lc_trace.X, not as their private module."""
    for name in lc_trace.__all__:
        assert "lc_trace" == getattr(lc_trace, name).__module__


def test_handlers_are_langchain_handlers():
    """The handlers are what LangChain expects in config['callbacks']."""
    from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler

    assert issubclass(lc_trace.AsyncTraceHandler, AsyncCallbackHandler)
    assert issubclass(lc_trace.TraceHandler, BaseCallbackHandler)
    assert not issubclass(lc_trace.TraceHandler, AsyncCallbackHandler)


def test_the_viewer_does_not_import_langchain():
    """`lc-trace traces` starts fast: importing the CLI loads neither LangChain nor the OTel SDK."""
    import subprocess
    import sys

    code = "import sys, lc_trace._cli; print(sorted(m for m in ('langchain_core', 'opentelemetry.sdk') if m in sys.modules))"
    assert (
        "[]" == subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    )


def test_unknown_attribute_is_an_attribute_error():
    """A misspelt name fails like any module attribute would."""
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'TraceHandlr'"):
        lc_trace.TraceHandlr  # noqa: B018


def test_the_version_is_the_distributions():
    """__version__ and the tracer's and meter's scope version are pyproject.toml's version, read from the metadata."""
    from importlib import metadata

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    from lc_trace._metrics import MetricSink
    from lc_trace._spans._api import lc_trace_tracer

    version = metadata.version("lc_trace")
    assert version == lc_trace.__version__
    assert "__version__" in dir(lc_trace)
    assert version == lc_trace_tracer(TracerProvider()).start_span("x").instrumentation_scope.version
    assert version == MetricSink(MeterProvider())._duration.instrumentation_scope.version
