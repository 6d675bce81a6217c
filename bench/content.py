"""
Content part: what one captured value costs as it grows, side by side in one process.

Each value goes through ``Serializer.dumps`` as the handler's content capture does (serialise,
redact, truncate to ``max_content_length``). The goal (issue on production log files): a value
of any size costs about what one of ``max_content_length`` does, a 50 MB string within 2x of an
8 KB one. Medians of interleaved repetitions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from lc_trace._content import Serializer

MB = 1_000_000


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value, {"k": value}]
    return value


def shapes(max_length: int) -> dict[str, tuple[Any, Any]]:
    """Each shape twice: a value that fits in max_length, and a huge one."""
    prose = "Roses need six hours of sun and well-drained soil. " * (MB // 50)
    message = {"role": "user", "content": "which rose grows in shade?"}
    return {
        "string: 8 KB / 50 MB": (prose[:max_length], prose * 50),
        "string, a secret across the cut: 8 KB / 50 MB": (
            prose[: max_length - 10] + "sk-" + "A" * 40,
            prose[: max_length - 10] + "sk-" + "A" * 40 + prose * 50,
        ),
        "bytes: 8 KB / 50 MB": (b"\x00" * max_length, b"\x00" * (50 * MB)),
        "list of strings: 100 / 1,000,000": (["rose"] * 100, ["rose"] * MB),
        "dict: 100 keys / 100,000 keys": (
            {f"k{i}": "petal" for i in range(100)},
            {f"k{i}": "petal" for i in range(100_000)},
        ),
        "nested lists and dicts: 9 / 20 levels": (_nested(9), _nested(20)),
        "chat messages: 100 / 10,000": ([message] * 100, [message] * 10_000),
    }


def measure(reps: int, max_length: int) -> dict[str, Any]:
    serializer = Serializer(max_length=max_length)
    pairs = shapes(max_length)
    times: dict[tuple[str, int], list[float]] = {(name, i): [] for name in pairs for i in (0, 1)}
    for _ in range(reps):  # interleaved: every value once per repetition
        for name, values in pairs.items():
            for i, value in enumerate(values):
                started = time.perf_counter()
                out = serializer.dumps(value)
                times[name, i].append(time.perf_counter() - started)
                assert len(out) < max_length + 100 and "sk-AAAA" not in out, (name, len(out))
    cases = {}
    for name in pairs:
        small, huge = statistics.median(times[name, 0]), statistics.median(times[name, 1])
        cases[name] = {"small_us": small * 1e6, "huge_us": huge * 1e6, "ratio": huge / small}
    return {"max_length": max_length, "reps": reps, "cases": cases}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--max-length", type=int, default=8192)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    Path(args.result).write_text(json.dumps(measure(args.reps, args.max_length)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
