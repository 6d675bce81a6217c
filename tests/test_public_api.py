"""The public surface is small and pinned (httpx's habit): changing it is a deliberate act."""

from __future__ import annotations

import lc_trace


def test_all_is_pinned():
    """lc_trace exports exactly these names."""
    assert ["AsyncTraceHandler", "LogPathError", "Stats", "TraceHandler", "configure"] == lc_trace.__all__


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
