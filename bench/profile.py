"""
One contender on one scenario under pyinstrument, to find where its time goes.

    python -m bench --profile lc_trace --case stream/async --out profile.txt

(pyinstrument is installed in .venv-bench by bench/requirements.txt.)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench.contenders import CONTENDERS
from bench.scenarios import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contender", required=True, choices=sorted(CONTENDERS))
    parser.add_argument("--case", default="chain/sync", help="scenario/mode, e.g. stream/async")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--flat", action="store_true", help="self time per function instead of the call tree")
    parser.add_argument("--result", required=True, help="where to write the profile text")
    args = parser.parse_args(argv)
    from pyinstrument import Profiler

    warnings.showwarning = lambda *a, **k: None
    key, mode = args.case.split("/")
    case = SCENARIOS[key].build()
    with tempfile.TemporaryDirectory(prefix="lc_trace_bench_profile_") as tmp:
        attached = CONTENDERS[args.contender].setup(Path(tmp))
        callbacks = attached.callbacks
        profiler = Profiler(interval=0.0002, async_mode="enabled")
        if mode == "sync":
            for _ in range(20):
                case.call(callbacks)
            profiler.start()
            end = time.perf_counter() + args.seconds
            while time.perf_counter() < end:
                case.call(callbacks)
            profiler.stop()
        else:

            async def run() -> None:
                for _ in range(20):
                    await case.acall(callbacks)
                profiler.start()
                end = time.perf_counter() + args.seconds
                while time.perf_counter() < end:
                    await case.acall(callbacks)
                profiler.stop()

            asyncio.run(run())
        attached.close()
    text = profiler.output_text(unicode=True, color=False, show_all=False, flat=args.flat, time="percent_of_total")
    Path(args.result).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
