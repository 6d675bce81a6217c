"""
The fresh-process body: time the bare scenarios, then attach one contender and time them
again, and write JSON.

Why a process per contender and round: the peers' instrumentors patch LangChain globally and
leave state behind (a bare chain timed after one instrument/uninstrument cycle ran 3x slower
than in a clean process), so same-process numbers would be wrong. The bare chain is always
timed first, before anything is attached or instrumented.

    python -m bench.worker --contender lc_trace --scenarios chain,stream --result out.json
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.contenders import CONTENDERS, Attached
from bench.scenarios import SCENARIOS, Case, count_events
from bench.timing import AsyncCall, Budget, Samples, SyncCall, time_async, time_sync

MODES = ("sync", "async")
DISTRIBUTIONS = (
    "langchain-core",
    "opentelemetry-sdk",
    "lc_trace",
    "openinference-instrumentation-langchain",
    "opentelemetry-instrumentation-langchain",
)


class _Complaints(logging.Handler):
    """
    Counts warnings and errors (LangChain logs a failing callback as a warning) and keeps the first.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < 3:
            self.first.append(record.getMessage()[:300])


def versions() -> dict[str, str]:
    """
    Versions of the libraries that matter here (absent ones are left out).
    """
    found = {"python": platform.python_version()}
    for name in DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def _phase(
    cases: dict[str, Case], modes: list[str], callbacks: list[Any], budget: Budget, ns: dict[str, int] | None
) -> tuple[dict[str, int], Samples]:
    """
    Every case under every mode with these callbacks: calls per sample and samples, by ``key/mode``.
    """
    chosen: dict[str, int] = {}
    samples: Samples = {}
    if "sync" in modes:
        calls: dict[str, SyncCall] = {f"{k}/sync": functools.partial(c.call, callbacks) for k, c in cases.items()}
        n, s = time_sync(calls, budget, ns and {k: ns[k] for k in calls})
        chosen.update(n)
        samples.update(s)
    if "async" in modes:
        acalls: dict[str, AsyncCall] = {f"{k}/async": functools.partial(c.acall, callbacks) for k, c in cases.items()}
        n, s = time_async(acalls, budget, ns and {k: ns[k] for k in acalls})
        chosen.update(n)
        samples.update(s)
    return chosen, samples


def _missing(requires: tuple[str, ...]) -> str | None:
    for dist in requires:
        try:
            importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return f"{dist} not installed in {sys.prefix}"
    return None


def measure(contender: str, keys: list[str], modes: list[str], budget: Budget, workdir: Path) -> dict[str, Any]:
    """
    Events per call, bare timings, then the contender's timings, for every scenario and mode.
    """
    spec = CONTENDERS[contender]
    result: dict[str, Any] = {"contender": contender, "versions": versions(), "cases": {}, "pid": os.getpid()}
    missing = _missing(spec.requires)
    if missing:
        result["error"] = missing
        return result
    cases = {key: SCENARIOS[key].build() for key in keys}
    for key in keys:
        for mode in modes:
            result["cases"][f"{key}/{mode}"] = {"events": count_events(cases[key], mode)}
    ns, bare = _phase(cases, modes, [], budget, None)
    for case, entry in result["cases"].items():
        entry["n"], entry["bare"] = ns[case], bare[case]
    complaints = _Complaints()
    logging.getLogger().addHandler(complaints)
    try:
        attached: Attached = spec.setup(workdir)
    except Exception as exc:  # a peer that does not work with this langchain-core: say so
        result["error"] = f"setup failed: {type(exc).__name__}: {exc}"
        return result
    try:
        _, timed = _phase(cases, modes, attached.callbacks, budget, ns)
    except Exception as exc:
        result["error"] = f"failed while timing: {type(exc).__name__}: {exc}"
        traceback.print_exc()
        return result
    for case, entry in result["cases"].items():
        entry["contender"] = timed[case]
    result["info"] = attached.close()
    result["complaints"] = {"count": complaints.count, "first": complaints.first}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contender", required=True, choices=sorted(CONTENDERS))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--budget", default='{"warmup_s": 0.2, "sample_s": 0.05, "samples": 5}')
    parser.add_argument("--gather-calls", type=int, default=scenarios.GATHER_CALLS)
    parser.add_argument("--result", required=True, help="where to write the JSON result")
    args = parser.parse_args(argv)
    warnings.simplefilter("default")
    warnings.showwarning = lambda *a, **k: None  # peers' deprecation notices would flood the output
    scenarios.GATHER_CALLS = args.gather_calls
    budget = Budget(**json.loads(args.budget))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lc_trace_bench_") as tmp:
        result = measure(args.contender, args.scenarios.split(","), args.modes.split(","), budget, Path(tmp))
    result["wall_s"] = round(time.perf_counter() - started, 2)
    Path(args.result).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
