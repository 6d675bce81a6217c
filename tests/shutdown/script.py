"""
A plain script, as a user writes one: ``lc_trace.configure()``, then a loop of chain calls until
it is stopped. Prints ``ready`` once, then each call's number once the call has returned (what
"the client got"). ``--own-handler before|after`` sets a SIGTERM handler of its own before or
after ``configure()``: it stops the loop and exits with status 3, its own decision.
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
    parser.add_argument("--limit", type=int, default=100_000)
    args = parser.parse_args()
    stop = []

    def own(signum: int, frame: Any) -> None:
        print("own handler", flush=True)
        stop.append(signum)

    if args.own_handler == "before":
        signal.signal(signal.SIGTERM, own)
    callbacks: list[Any] = []
    if os.environ.get("LC_TRACE_OFF") != "1":
        import lc_trace

        callbacks = [lc_trace.configure("shutdown-script")]
    if args.own_handler == "after":
        signal.signal(signal.SIGTERM, own)
    print("ready", flush=True)
    for call in range(args.limit):
        if stop:
            sys.exit(3)
        FAST.invoke(f"a rose for call {call}", config(call, callbacks))
        print(call, flush=True)


if __name__ == "__main__":
    main()
