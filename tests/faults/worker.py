"""
A traced app for the fault suite, run as a real process: ``python worker.py MODE LOG OUT [options]``.

Modes (how many processes share one log path, and when the handler is built):
- ``fork-after``: the parent builds the handler, writes a call, then forks the workers
  (gunicorn ``--preload``);
- ``fork-before``: the parent forks first, each worker builds its own handler;
- ``spawn``: fresh interpreters (multiprocessing's spawn), each building its own handler;
- ``one``: this process is one worker (the test starts several: apps pointed at one folder);
- ``loop``: one worker that calls until it is killed or told to stop (rotation and disk faults).

Every call is ``RunnableLambda | RunnableLambda`` under a sequence: three runs, six lines, each
carrying ``langchain.metadata.worker`` and ``.call`` so the test can count lines by run. Each
worker writes its ``handler.stats`` to ``OUT/stats-<worker>.json`` after ``close()``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import signal
import sys
import time
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableLambda

from lc_trace import TraceHandler

PAYLOAD = "a long prompt about roses " * 20


def _chain() -> Any:
    return RunnableLambda(lambda x: x.upper(), name="shout") | RunnableLambda(lambda x: x[:40], name="cut")


def _handler(args: argparse.Namespace, service: str = "fault-app") -> TraceHandler:
    return TraceHandler(
        log_path=args.log,
        service_name=service,
        log_max_bytes=args.max_bytes,
        log_backups=args.backups,
        flush_interval_ms=args.flush_ms,
    )


def _calls(handler: TraceHandler, worker: str, count: int) -> None:
    chain = _chain()
    for call in range(count):
        chain.invoke(PAYLOAD, {"callbacks": [handler], "metadata": {"worker": worker, "call": call}})


def _finish(handler: TraceHandler, worker: str, out: str) -> None:
    handler.close()
    stats = {
        name: getattr(handler.stats, name)
        for name in ("lines_written", "dropped_queue_full", "dropped_write_error", "dropped_after_close")
    }
    Path(out, f"stats-{worker}.json").write_text(json.dumps(stats))


def work(args: argparse.Namespace, worker: str, handler: TraceHandler | None = None) -> None:
    """One worker's life: build (or inherit) the handler, make its calls, close, report stats."""
    handler = handler or _handler(args, service=f"app-{worker}" if args.mode == "one" else "fault-app")
    _calls(handler, worker, args.calls)
    _finish(handler, worker, args.out)


def loop(args: argparse.Namespace) -> None:
    """Call until SIGTERM (then close and report) or SIGKILL; print a line once the first call is logged."""
    handler = _handler(args)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    chain = _chain()
    call = 0
    while not stopping:
        chain.invoke(PAYLOAD, {"callbacks": [handler], "metadata": {"worker": args.worker, "call": call}})
        call += 1
        if call == 1:
            handler.flush()
            print("ready", flush=True)
        if args.pace_ms:
            time.sleep(args.pace_ms / 1000)
    _finish(handler, args.worker, args.out)
    print(f"calls {call}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["fork-after", "fork-before", "spawn", "one", "loop"])
    parser.add_argument("log")
    parser.add_argument("out")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--max-bytes", type=int, default=256 * 1024)
    parser.add_argument("--backups", type=int, default=1000)
    parser.add_argument("--flush-ms", type=int, default=5)
    parser.add_argument("--worker", default="w0")
    parser.add_argument("--pace-ms", type=float, default=0)
    args = parser.parse_args()

    if args.mode == "one":
        work(args, args.worker)
    elif args.mode == "loop":
        loop(args)
    else:
        context = multiprocessing.get_context("spawn" if args.mode == "spawn" else "fork")
        handler = None
        if args.mode == "fork-after":  # built and used before the fork, as gunicorn --preload does
            handler = _handler(args)
            _calls(handler, "parent", 10)
        workers = [
            context.Process(target=work, args=(args, f"w{n}", handler), daemon=False) for n in range(args.workers)
        ]
        for process in workers:
            process.start()
        for process in workers:
            process.join()
        if handler is not None:
            _finish(handler, "parent", args.out)
        sys.exit(max(abs(p.exitcode or 0) for p in workers))


if __name__ == "__main__":
    main()
