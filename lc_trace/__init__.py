"""
lc_trace: one LangChain callback handler that gives OpenTelemetry spans (GenAI semantic
conventions) and ECS JSON log lines written in the background.

    from lc_trace import AsyncTraceHandler
    handler = AsyncTraceHandler(service_name="flower-shop")
    await chain.ainvoke({"flower": "rose"}, config={"callbacks": [handler]})
"""

from lc_trace._config import configure
from lc_trace._handlers import AsyncTraceHandler, TraceHandler
from lc_trace._stats import Stats
from lc_trace._writer import LogPathError

__all__ = ["AsyncTraceHandler", "LogPathError", "Stats", "TraceHandler", "configure"]
__version__ = "0.1.0"

for _name in __all__:
    globals()[_name].__module__ = "lc_trace"
del _name
