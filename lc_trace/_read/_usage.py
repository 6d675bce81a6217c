"""
``lc-trace usage``: what the model calls of a log cost, grouped by model, conversation, service
and day (or hour), and how many failures the traces had.

Pure arithmetic over the reader's model calls (from whole traces or from their summaries): a
model call is a ``chat_model`` or ``llm`` run; its tokens are the ``gen_ai.usage.*`` counts of
its end line, the same numbers its span carries (cache-read input tokens are a part of the input
tokens, not added to them; reasoning tokens a part of the output). Each call is priced once, by
``_cost``, and its price added to every group it is in. Latency percentiles are
nearest-rank over the calls' durations. Failures are counted where they happened: a failure that
a chain, a graph node and an agent each passed up is one failure (and three failed runs).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from lc_trace._read._cost import CallPrice, Cost, Pricer, price_source
from lc_trace._read._runs import ModelCall

__all__ = ["GROUPINGS", "Usage", "UsageReport", "usage_report"]

GROUPINGS = ("model", "conversation", "service", "time")
_PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
_TOKEN_NAMES = ("input", "output", "cache_read", "cache_creation", "reasoning")  # ModelCall.tokens' order


class _Trace(Protocol):
    """
    What usage needs of a trace: a ``TraceView`` or a ``TraceSummary`` kept with its calls.
    """

    @property
    def errors(self) -> int: ...

    @property
    def failed_runs(self) -> int: ...

    def model_calls(self) -> Iterator[ModelCall]: ...


@dataclass
class Usage:
    """
    Calls, failed calls, tokens by kind, and the calls' durations, for one group.
    """

    calls: int = 0
    errors: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_TOKEN_NAMES, 0))
    durations_ns: list[int] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)

    def add(self, call: ModelCall, price: CallPrice | None = None) -> None:
        """
        Count one model call, and its price.
        """
        if price is not None:
            self.cost.add(price)
        self.calls += 1
        self.errors += call.failed
        for name, count in zip(_TOKEN_NAMES, call.tokens, strict=True):
            self.tokens[name] += count
        self.durations_ns.append(call.duration_ns)

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
            "cost": self.cost.as_dict(),
        }


@dataclass
class UsageReport:
    """
    Totals, and the same figures per model, conversation, service and time bucket.
    """

    bucket: str
    total: Usage = field(default_factory=Usage)
    groups: dict[str, dict[str, Usage]] = field(default_factory=lambda: {name: {} for name in GROUPINGS})
    failures: int = 0
    failed_runs: int = 0

    def as_dict(self) -> dict[str, Any]:
        """
        The report as JSON-ready data (``--json``).
        """
        return {
            "bucket": self.bucket,
            "total": self.total.as_dict(),
            "failures": {"where_they_happened": self.failures, "failed_runs": self.failed_runs},
            "price_source": price_source(),
            "unpriced": self.total.cost.unpriced_by_reason(),
            **{
                f"by_{name}": [{"key": key, **usage.as_dict()} for key, usage in sorted(groups.items())]
                for name, groups in self.groups.items()
            },
        }


def usage_report(traces: Iterable[_Trace], bucket: str = "day") -> UsageReport:
    """
    Add up every model call and failure of *traces*; time buckets are UTC days, or hours with ``hour``.
    """
    if bucket not in ("day", "hour"):
        raise ValueError(f"bucket must be 'day' or 'hour', got {bucket!r}")
    stamp = "%Y-%m-%d" if bucket == "day" else "%Y-%m-%dT%H:00Z"
    report = UsageReport(bucket)
    by_model, by_conversation, by_service, by_time = (report.groups[name] for name in GROUPINGS)
    last_second, when = -1, ""
    pricer = Pricer()
    for trace in traces:
        report.failures += trace.errors
        report.failed_runs += trace.failed_runs
        for call in trace.model_calls():
            second = call.start_ns // 1_000_000_000
            if second != last_second:
                last_second, when = second, time.strftime(stamp, time.gmtime(second))
            price = pricer.price(call)
            report.total.add(call, price)
            for groups, key in (
                (by_model, call.model),
                (by_conversation, call.conversation),
                (by_service, call.service),
                (by_time, when),
            ):
                usage = groups.get(key)
                if usage is None:
                    usage = groups[key] = Usage()
                usage.add(call, price)
    return report
