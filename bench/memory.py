"""
Memory: resident size across a million runs (it must stay flat), and the writer queue's bound
held while the disk is too slow to keep up.

The slow disk is real, not a patched writer: the log path is a FIFO whose only reader (a
thread here) takes 64 KiB every 100 ms, so lc_trace's writer thread blocks in ``write()``
exactly as it would on a stalled disk, and the app keeps emitting. At the end the reader
drains at full speed so the handler can close.

    python -m bench.memory --runs 1000000 --stall-runs 200000 --result out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableLambda

from bench.common import counting_provider, rss_bytes
from lc_trace import TraceHandler

MIB = 1024 * 1024


def _step(x: int) -> int:
    return x + 1


def flat_rss(workdir: Path, runs: int, samples: int = 100) -> dict[str, Any]:
    """
    ``runs`` sync invokes of a one-runnable chain (one run, two events each) with a
    TraceHandler, content on, logging to a real file (default rotation); RSS every runs/samples.
    """
    provider, exporter = counting_provider()
    handler = TraceHandler(tracer_provider=provider, log_path=workdir / "memory.jsonl", service_name="bench")
    chain = RunnableLambda(_step, name="request")
    config: Any = {"callbacks": [handler]}
    every = max(1, runs // samples)
    series: list[tuple[int, int]] = [(0, rss_bytes())]
    start = time.perf_counter()
    for i in range(1, runs + 1):
        chain.invoke(i, config)
        if i % every == 0:
            series.append((i, rss_bytes()))
    wall = time.perf_counter() - start
    handler.flush()
    stats = handler.stats
    result = {
        "runs": runs,
        "wall_s": wall,
        "series": series,
        "lines_written": stats.lines_written,
        "lines_dropped": stats.dropped,
        "open_runs": handler.open_runs,
        "spans_exported": (provider.force_flush(), exporter.spans)[1],
    }
    handler.close()
    result.update(_flatness(series))
    return result


def _flatness(series: list[tuple[int, int]]) -> dict[str, float]:
    """
    Growth after the first tenth (warm-up: caches, the writer's buffers, the span queue) and
    the least-squares slope over the second half, in MiB per 100,000 runs.
    """
    warm = series[max(1, len(series) // 10)][1]
    half = series[len(series) // 2 :]
    xs = [x for x, _ in half]
    ys = [y / MIB for _, y in half]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs) or 1.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return {
        "rss_start_mib": series[0][1] / MIB,
        "rss_warm_mib": warm / MIB,
        "rss_end_mib": series[-1][1] / MIB,
        "rss_max_mib": max(y for _, y in series) / MIB,
        "growth_after_warmup_mib": (series[-1][1] - warm) / MIB,
        "slope_mib_per_100k": slope * 100_000,
    }


class SlowReader(threading.Thread):
    """
    The only reader of the FIFO: 64 KiB every 100 ms (a disk ~1000x slower than this one),
    until ``fast`` is set.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opens at once, before any writer
        self.fast = threading.Event()
        self.stop = threading.Event()
        self.bytes = 0
        self.drop_lines = 0
        self._tail = b""

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                data = os.read(self.fd, 1 << 20 if self.fast.is_set() else 64 * 1024)
            except BlockingIOError:
                data = b""
            self.bytes += len(data)
            chunk = self._tail + data
            self.drop_lines += chunk.count(b'"lc_trace_dropped"')
            self._tail = chunk[-64:]
            if not self.fast.is_set() or not data:
                time.sleep(0.1 if not self.fast.is_set() else 0.001)


def stalled_writer(workdir: Path, runs: int, threads: int, queue_size: int | None) -> dict[str, Any]:
    """
    ``runs`` invokes from ``threads`` app threads against a FIFO log path drained slowly; the
    queue length is sampled every millisecond and after every call's batch.
    """
    fifo = workdir / "stalled.jsonl"
    os.mkfifo(fifo, 0o600)
    reader = SlowReader(fifo)
    reader.start()
    provider, _ = counting_provider()
    handler = TraceHandler(tracer_provider=provider, log_path=fifo, service_name="bench", queue_size=queue_size)
    writer = handler._writer  # the bench reads the queue the app cannot see
    assert writer is not None
    bound = writer._queue_size
    queue = writer._queue
    peak = [0]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            peak[0] = max(peak[0], len(queue))
            time.sleep(0.001)

    chain = RunnableLambda(_step, name="request")
    config: Any = {"callbacks": [handler]}

    def app(count: int) -> None:
        for i in range(count):
            chain.invoke(i, config)
            if len(queue) > peak[0]:
                peak[0] = len(queue)

    gc.collect()
    rss_before = rss_bytes()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    workers = [threading.Thread(target=app, args=(runs // threads,)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    produce_s = time.perf_counter() - start
    rss_after = rss_bytes()
    queued_bytes = sum(len(line) for line in list(queue))
    sampling.set()
    stats = handler.stats
    queued_at_end, dropped = len(queue), stats.dropped_queue_full
    reader.fast.set()
    drain_start = time.perf_counter()
    closed = handler.close(timeout_millis=60_000)
    drain_s = time.perf_counter() - drain_start
    time.sleep(0.2)
    reader.stop.set()
    reader.join(2)
    os.close(reader.fd)
    lines = runs // threads * threads * 2
    return {
        "runs": runs // threads * threads,
        "threads": threads,
        "lines_emitted": lines,
        "queue_bound": bound,
        "queue_peak": peak[0],
        "queued_at_end": queued_at_end,
        "dropped_queue_full": dropped,
        "lines_written": stats.lines_written,
        "drop_lines_in_file": reader.drop_lines,
        "produce_s": produce_s,
        "app_us_per_run": produce_s / max(1, runs) * threads * 1e6,
        "rss_growth_mib": (rss_after - rss_before) / MIB,
        "queued_mib": queued_bytes / MIB,
        "drain_s": drain_s,
        "closed_cleanly": closed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--stall-runs", type=int, default=200_000)
    parser.add_argument("--stall-threads", type=int, default=4)
    parser.add_argument("--stall-queue-size", type=int, help="the handler's queue_size (default: its own)")
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lc_trace_bench_memory_") as tmp:
        flat = flat_rss(Path(tmp), args.runs)  # first: the stalled case leaves a bigger heap behind
        result: dict[str, Any] = {
            "flat": flat,
            "stalled": stalled_writer(Path(tmp), args.stall_runs, args.stall_threads, args.stall_queue_size),
        }
    result["wall_s"] = round(time.perf_counter() - started, 2)
    Path(args.result).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
