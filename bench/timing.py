"""
Timing loops. Each case is warmed up and its calls per sample chosen (from the bare chain, so
a contender repeats exactly the bare chain's work); then the samples are taken in passes over
all cases, so one case's samples are spread across the whole phase and a burst of noise from
other work on the machine cannot spoil all of them. A sample is the mean ns per call over n
calls, timed with ``perf_counter_ns``.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["AsyncCall", "Budget", "Samples", "SyncCall", "calibrate", "time_async", "time_sync"]

SyncCall = Callable[[], Any]
AsyncCall = Callable[[], Awaitable[Any]]
Samples = dict[str, list[float]]  # case -> ns per call, one per sample


@dataclass(frozen=True)
class Budget:
    """
    Warm-up and sample lengths (seconds) and the number of samples (passes).
    """

    warmup_s: float
    sample_s: float
    samples: int
    min_warmup_calls: int = 2


def calibrate(per_call_ns: float, budget: Budget) -> int:
    """
    Calls per sample so that one bare sample lasts about ``budget.sample_s``.
    """
    return max(1, int(budget.sample_s * 1e9 / max(per_call_ns, 1.0)))


def _warm(call: SyncCall, budget: Budget) -> float:
    start, calls = time.perf_counter_ns(), 0
    while calls < budget.min_warmup_calls or time.perf_counter_ns() - start < budget.warmup_s * 1e9:
        call()
        calls += 1
    return (time.perf_counter_ns() - start) / calls


def time_sync(calls: dict[str, SyncCall], budget: Budget, ns: dict[str, int] | None) -> tuple[dict[str, int], Samples]:
    """
    Warm up every case, then ``budget.samples`` passes over them; n per case from ``ns`` or calibrated.
    """
    chosen = {key: ns[key] if ns else calibrate(_warm(call, budget), budget) for key, call in calls.items()}
    if ns:
        for call in calls.values():
            _warm(call, budget)
    samples: Samples = {key: [] for key in calls}
    for _ in range(budget.samples):
        for key, call in calls.items():
            n = chosen[key]
            gc.collect()
            t0 = time.perf_counter_ns()
            for _ in range(n):
                call()
            samples[key].append((time.perf_counter_ns() - t0) / n)
    return chosen, samples


def time_async(
    calls: dict[str, AsyncCall], budget: Budget, ns: dict[str, int] | None
) -> tuple[dict[str, int], Samples]:
    """
    ``time_sync`` for coroutines, all in one event loop (so its executor and state persist).
    """

    async def warm(acall: AsyncCall) -> float:
        start, count = time.perf_counter_ns(), 0
        while count < budget.min_warmup_calls or time.perf_counter_ns() - start < budget.warmup_s * 1e9:
            await acall()
            count += 1
        return (time.perf_counter_ns() - start) / count

    async def run() -> tuple[dict[str, int], Samples]:
        chosen: dict[str, int] = {}
        for key, acall in calls.items():
            per_call = await warm(acall)
            chosen[key] = ns[key] if ns else calibrate(per_call, budget)
        samples: Samples = {key: [] for key in calls}
        for _ in range(budget.samples):
            for key, acall in calls.items():
                n = chosen[key]
                gc.collect()
                t0 = time.perf_counter_ns()
                for _ in range(n):
                    await acall()
                samples[key].append((time.perf_counter_ns() - t0) / n)
        return chosen, samples

    return asyncio.run(run())
