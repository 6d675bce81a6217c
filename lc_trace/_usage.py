"""
``lc-trace usage``: what the model calls of a log cost, grouped by model, conversation, service
and day (or hour).

Pure arithmetic over the reader's runs: a model call is a ``chat_model`` or ``llm`` run; its
tokens are the ``gen_ai.usage.*`` counts of its end line, the same numbers its span carries
(cache-read input tokens are a part of the input tokens, not added to them; reasoning tokens a
part of the output). Latency percentiles are nearest-rank over the calls' durations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lc_trace import _attributes as A
from lc_trace._reader import RunView, TraceView

__all__ = ["GROUPINGS", "Usage", "UsageReport", "usage_report"]

_MODEL_TYPES = frozenset({"chat_model", "llm"})
GROUPINGS = ("model", "conversation", "service", "time")
_PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
_TOKENS = (
    ("input", A.GEN_AI_USAGE_INPUT_TOKENS),
    ("output", A.GEN_AI_USAGE_OUTPUT_TOKENS),
    ("cache_read", A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
    ("cache_creation", A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS),
    ("reasoning", A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
)


@dataclass
class Usage:
    """
    Calls, failed calls, tokens by kind, and the calls' durations, for one group.
    """

    calls: int = 0
    errors: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: {name: 0 for name, _ in _TOKENS})
    durations_ns: list[int] = field(default_factory=list)

    def add(self, run: RunView) -> None:
        """
        Count one model call.
        """
        self.calls += 1
        self.errors += run.failed
        for name, key in _TOKENS:
            self.tokens[name] += run.usage(key)
        self.durations_ns.append(run.duration_ns)

    def percentile_ms(self, share: float) -> float | None:
        """
        The nearest-rank percentile of the durations, in milliseconds (None with no calls).
        """
        if not self.durations_ns:
            return None
        ordered = sorted(self.durations_ns)
        return ordered[max(math.ceil(share * len(ordered)) - 1, 0)] / 1e6

    def as_dict(self) -> dict[str, Any]:
        """
        The figures as JSON-ready data.
        """
        return {
            "calls": self.calls,
            "errors": self.errors,
            "tokens": dict(self.tokens),
            "latency_ms": {name: self.percentile_ms(share) for name, share in _PERCENTILES},
        }


@dataclass
class UsageReport:
    """
    Totals, and the same figures per model, conversation, service and time bucket.
    """

    bucket: str
    total: Usage = field(default_factory=Usage)
    groups: dict[str, dict[str, Usage]] = field(default_factory=lambda: {name: {} for name in GROUPINGS})

    def as_dict(self) -> dict[str, Any]:
        """
        The report as JSON-ready data (``--json``).
        """
        return {
            "bucket": self.bucket,
            "total": self.total.as_dict(),
            **{
                f"by_{name}": [{"key": key, **usage.as_dict()} for key, usage in sorted(groups.items())]
                for name, groups in self.groups.items()
            },
        }


def usage_report(traces: Iterable[TraceView], bucket: str = "day") -> UsageReport:
    """
    Add up every model call of *traces*; time buckets are UTC days, or hours with ``hour``.
    """
    if bucket not in ("day", "hour"):
        raise ValueError(f"bucket must be 'day' or 'hour', got {bucket!r}")
    stamp = "%Y-%m-%d" if bucket == "day" else "%Y-%m-%dT%H:00Z"
    report = UsageReport(bucket)
    for trace in traces:
        for run in trace.runs.values():
            if run.run_type not in _MODEL_TYPES:
                continue
            line = run.end or run.first
            fields = line.fields if line is not None else {}
            keys = {
                "model": str(fields.get(A.GEN_AI_RESPONSE_MODEL) or fields.get(A.GEN_AI_REQUEST_MODEL) or "?"),
                "conversation": str(fields.get(A.GEN_AI_CONVERSATION_ID) or "-"),
                "service": run.service or "?",
                "time": time.strftime(stamp, time.gmtime(run.start_ns // 1_000_000_000)),
            }
            report.total.add(run)
            for name, key in keys.items():
                report.groups[name].setdefault(key, Usage()).add(run)
    return report
