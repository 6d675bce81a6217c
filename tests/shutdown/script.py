"""
A plain script, as a user writes one: ``lc_trace.configure()``, then a loop of chain calls until
it is stopped. Prints ``ready`` once, then each call's number once the call has returned (what
"the client got"). ``--own-handler before|after`` sets a SIGTERM handler of its own before or
after ``configure()``: it stops the loop and exits with status 3, its own decision.
``--worker`` plays a ``uvicorn --workers`` child on Ctrl-C, step by step and in the order that lost
lines: it takes SIGINT and SIGTERM before ``configure()``, stops the loop on SIGINT, restores the
dispositions it found (the default SIGTERM), and then its supervisor's SIGTERM arrives.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from tests.shutdown.chains import FAST, config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--own-handler", choices=["before", "after"])
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--limit", type=int, default=100_000)
    args = parser.parse_args()
    stop = []

    def own(signum: int, frame: Any) -> None:
        print("own handler", flush=True)
        stop.append(signum)

    if args.own_handler == "before":
        signal.signal(signal.SIGTERM, own)
    found: dict[int, Any] = {}
    if args.worker:  # as uvicorn's capture_signals, before the app (and lc_trace) is loaded
        found = {
            sig: signal.signal(sig, lambda signum, frame: stop.append(signum))
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
    callbacks: list[Any] = []
    if os.environ.get("LC_TRACE_OFF") != "1":
        import lc_trace

        callbacks = [lc_trace.configure("shutdown-script")]
    if args.own_handler == "after":
        signal.signal(signal.SIGTERM, own)
    print("ready", flush=True)
    for call in range(args.limit):
        if stop and args.worker:
            for sig, handler in found.items():  # the drain is over: what it found goes back
                signal.signal(sig, handler)
            os.kill(os.getpid(), signal.SIGTERM)  # the supervisor's, before the worker re-raises SIGINT
            signal.raise_signal(signal.SIGINT)
        if stop:
            sys.exit(3)
        FAST.invoke(f"a rose for call {call}", config(call, callbacks))
        print(call, flush=True)


if __name__ == "__main__":
    main()
