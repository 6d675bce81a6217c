"""
The writer, measured on its own: lines per second sustained into a file against a plain
buffered write of the same lines, and the event-loop lag an app sees while lc_trace logs a
burst of 10,000 events/s.

    python -m bench.writer --lines 200000 --reps 5 --lag-seconds 2 --result out.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableLambda

from bench.common import counting_provider, median
from bench.contenders import SpanFloorHandler
from bench.scenarios import SCENARIOS
from lc_trace import AsyncTraceHandler, TraceHandler
from lc_trace._logs._writer import LineWriter

FROZEN = "lc_trace+freeze"


def sample_lines(workdir: Path, count: int) -> list[bytes]:
    """
    *count* real lc_trace lines (content on), made by tracing scenarios 1 and 4, cycled.
    """
    provider, _ = counting_provider()
    path = workdir / "sample.jsonl"
    handler = TraceHandler(tracer_provider=provider, log_path=path, service_name="bench")
    for key in ("chain", "agent"):
        case = SCENARIOS[key].build()
        for _ in range(20):
            case.call([handler])
    handler.close()
    real = path.read_bytes().splitlines(keepends=True)
    path.unlink()
    return list(itertools.islice(itertools.cycle(real), count))


def plain_write(path: Path, lines: list[bytes]) -> float:
    """
    The floor: one buffered file, one write call per line. Returns lines per second.
    """
    start = time.perf_counter()
    with open(path, "ab") as file:
        for line in lines:
            file.write(line)
    return len(lines) / (time.perf_counter() - start)


def writer_write(path: Path, lines: list[bytes]) -> tuple[float, int]:
    """
    lc_trace's LineWriter (waiting for room, so nothing is dropped): emit every line, then
    flush. Returns lines per second and lines written.
    """
    writer = LineWriter(path, on_full="wait", max_bytes=0)
    start = time.perf_counter()
    emit = writer.emit
    for line in lines:
        emit(line)
    writer.flush()
    rate = len(lines) / (time.perf_counter() - start)
    writer.close()
    return rate, writer.stats.lines_written


def throughput(workdir: Path, count: int, reps: int) -> dict[str, Any]:
    """
    Floor and writer, interleaved, ``reps`` times each; medians.
    """
    lines = sample_lines(workdir, count)
    floors, writers, written = [], [], []
    for rep in range(reps):
        floor_path, writer_path = workdir / f"floor{rep}.jsonl", workdir / f"writer{rep}.jsonl"
        floors.append(plain_write(floor_path, lines))
        rate, ok = writer_write(writer_path, lines)
        writers.append(rate)
        written.append(ok)
        floor_path.unlink()
        writer_path.unlink()
    return {
        "lines": count,
        "mean_line_bytes": round(sum(map(len, lines)) / len(lines)),
        "floor_lines_per_s": median(floors),
        "writer_lines_per_s": median(writers),
        "floor_all": floors,
        "writer_all": writers,
        "all_written": all(w == count for w in written),
    }


# -- loop lag ---------------------------------------------------------------------------------


class _GcPauses:
    """
    Records the garbage collector's pauses: a full collection stops every thread, and it is
    the app's own heap it walks, so it shows up in the lag with or without lc_trace.
    """

    def __init__(self) -> None:
        self.full = 0
        self.longest = 0.0
        self.spans: list[tuple[float, float]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        end = time.perf_counter()
        self.longest = max(self.longest, end - self._start)
        self.full += info["generation"] == 2
        if end - self._start > 0.0002:
            self.spans.append((self._start, end))

    def overlaps(self, start: float, end: float) -> bool:
        return any(s < end and start < e for s, e in self.spans)


async def _burst(handler: BaseCallbackHandler | None, seconds: float, rate: int) -> dict[str, Any]:
    async def step(x: int) -> int:
        return x + 1

    chain = RunnableLambda(step, name="request")  # 2 events a call
    config: Any = {"callbacks": [handler]} if handler is not None else {}
    per_tick = max(1, rate // 1000 // 2)  # calls per millisecond
    lags: list[float] = []
    long_gaps: list[tuple[float, float]] = []  # over 0.2 ms: checked against GC pauses afterwards
    done = False

    async def probe() -> None:
        # Yields and measures how long until it runs again: the time other work held the loop.
        # A sleep(0) probe, not a timer: on this VM a 1 ms timer alone wakes up to ~3.5 ms late.
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            now = time.perf_counter()
            lags.append(now - last)
            if now - last > 0.0002:
                long_gaps.append((last, now))
            last = now

    pauses = _GcPauses()
    gc.callbacks.append(pauses)
    prober = asyncio.create_task(probe())
    await asyncio.sleep(0.01)
    start = time.perf_counter()
    next_tick, calls = start, 0
    while time.perf_counter() - start < seconds:
        for _ in range(per_tick):  # each call its own loop step, as concurrent requests would be
            await chain.ainvoke(calls, config)
            calls += 1
            await asyncio.sleep(0)
        next_tick += 0.001
        await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
    elapsed = time.perf_counter() - start
    done = True
    await prober
    gc.callbacks.remove(pauses)
    lags.sort()
    outside_gc = [end - start for start, end in long_gaps if not pauses.overlaps(start, end)]
    return {
        "events_per_s": round(2 * calls / elapsed),
        "max_lag_ms": lags[-1] * 1e3,
        "max_lag_outside_gc_ms": max(outside_gc, default=0.0) * 1e3,
        "p99_lag_ms": lags[int(0.99 * (len(lags) - 1))] * 1e3,
        "p999_lag_ms": lags[int(0.999 * (len(lags) - 1))] * 1e3,
        "over_1ms": sum(1 for lag in lags if lag > 0.001),
        "probes": len(lags),
        "gc_full_collections": pauses.full,
        "gc_max_pause_ms": pauses.longest * 1e3,
    }


def loop_lag(workdir: Path, seconds: float, rate: int, reps: int) -> dict[str, Any]:
    """
    The same paced burst with no handler, with the span floor, and with an AsyncTraceHandler
    logging to a real file; ``reps`` rounds, interleaved, so machine noise hits all of them.

    ``lc_trace+freeze`` is the same handler in an app that called ``gc.freeze()`` once its
    start-up was done (the mitigation docs/performance.md suggests): a full collection then walks
    only what was made since, not the ~100k objects of the imported libraries.
    """
    floor_provider, _ = counting_provider()
    provider, _ = counting_provider()
    handler = AsyncTraceHandler(tracer_provider=provider, log_path=workdir / "lag.jsonl", service_name="bench")
    variants: dict[str, Any] = {
        "bare": None,
        "span-floor": SpanFloorHandler(floor_provider),
        "lc_trace": handler,
        FROZEN: handler,
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for _ in range(reps):
        for name, callback in variants.items():
            gc.collect()
            if name == FROZEN:
                gc.freeze()
            try:
                runs[name].append(asyncio.run(_burst(callback, seconds, rate)))
            finally:
                gc.unfreeze()
    handler.close()
    result: dict[str, Any] = {"target_events_per_s": rate, "seconds": seconds, "reps": reps}
    for name, rounds in runs.items():
        result[name] = {
            "events_per_s": median([r["events_per_s"] for r in rounds]),
            "max_lag_ms": median([r["max_lag_ms"] for r in rounds]),
            "worst_lag_ms": max(r["max_lag_ms"] for r in rounds),
            "max_lag_outside_gc_ms": median([r["max_lag_outside_gc_ms"] for r in rounds]),
            "p99_lag_ms": median([r["p99_lag_ms"] for r in rounds]),
            "p999_lag_ms": median([r["p999_lag_ms"] for r in rounds]),
            "over_1ms_per_s": sum(r["over_1ms"] for r in rounds) / (seconds * reps),
            "gc_full_collections": sum(r["gc_full_collections"] for r in rounds),
            "gc_max_pause_ms": max(r["gc_max_pause_ms"] for r in rounds),
            "rounds": rounds,
        }
    result["lc_trace"]["lines_written"] = handler.stats.lines_written
    result["lc_trace"]["lines_dropped"] = handler.stats.dropped
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--lag-seconds", type=float, default=2.0)
    parser.add_argument("--lag-rate", type=int, default=10_000)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lc_trace_bench_writer_") as tmp:
        result = {
            "throughput": throughput(Path(tmp), args.lines, args.reps),
            "lag": loop_lag(Path(tmp), args.lag_seconds, args.lag_rate, args.reps),
            "pid": os.getpid(),
        }
    result["wall_s"] = round(time.perf_counter() - started, 2)
    Path(args.result).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
