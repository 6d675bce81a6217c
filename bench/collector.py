"""
What a dead collector costs the calls of an app set up with ``lc_trace.configure()``: the
chain scenario timed with a real, working OpenTelemetry Collector, then with nothing listening,
side by side in one run (issue 9: at most 1.2x slower). Also the time from the last call to the
process's exit in each case.

Each measurement is a fresh process (``--worker``) that runs for longer than a retry interval,
so the outage's tries are inside the timed window; rounds interleave the cases. It needs the
stack programs the tests build (``python -m tests.stack install``). Part ``collector`` of
``python -m bench``, or on its own (prints a markdown table):

    .venv/bin/python -m bench.collector --rounds 5 --seconds 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = ("grpc", "http/protobuf")


def worker(seconds: float, warmup_s: float) -> dict[str, Any]:
    """
    Time the chain scenario (sync ``invoke``) for *seconds* after *warmup_s*, with configure().
    """
    import lc_trace
    from bench.scenarios import build_chain

    with tempfile.TemporaryDirectory(prefix="lc_trace_bench_collector_") as tmp:
        handler = lc_trace.configure("bench-collector", log_path=Path(tmp) / "lc_trace.jsonl")
        case = build_chain()
        callbacks = [handler]
        end = time.perf_counter() + warmup_s
        while time.perf_counter() < end:
            case.call(callbacks)
        calls, started = 0, time.perf_counter()
        end = started + seconds
        while time.perf_counter() < end:
            for _ in range(50):
                case.call(callbacks)
            calls += 50
        elapsed = time.perf_counter() - started
        assert handler.flush(10_000)
        stats = handler.stats
        return {
            "us_per_call": elapsed / calls * 1e6,
            "calls": calls,
            "spans_exported": stats.spans_exported,
            "spans_dropped": stats.spans_dropped,
            "last_call": time.time(),
        }


def _run_worker(env: dict[str, str], seconds: float, warmup_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lc_trace_bench_collector_run_") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "bench.collector", "--worker", "--seconds", str(seconds)]
        cmd += ["--warmup", str(warmup_s), "--result", str(out)]
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        exited = time.time()
        if done.returncode != 0 or not out.exists():
            return {"error": (done.stderr or done.stdout).strip().splitlines()[-3:]}
        result: dict[str, Any] = json.loads(out.read_text())
        result["exit_after_last_call_s"] = exited - result.pop("last_call")
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collector", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="timed window per process (default 6)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help="write the summary as JSON here (python -m bench) instead of a table")
    args = parser.parse_args(argv)
    if args.worker:
        result = worker(args.seconds, args.warmup)
        Path(args.result).write_text(json.dumps(result))
        return 0
    results = measure(args.rounds, args.seconds, args.warmup)
    if args.result:
        summary = {"rounds": args.rounds, "seconds": args.seconds, "warmup_s": args.warmup, "cases": summarise(results)}
        Path(args.result).write_text(json.dumps(summary))
    else:
        print("\n".join(table(summarise(results))))
    return 0


def measure(rounds: int, seconds: float, warmup_s: float) -> dict[str, list[dict[str, Any]]]:
    """
    Every case once per round, in fresh processes, the order rotating; the stack started once.
    """
    sys.path.insert(0, str(ROOT))
    from tests.stack import servers
    from tests.stack.cache import free_port

    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LC_TRACE_"))}
    base["PYTHONPATH"] = str(ROOT)
    with tempfile.TemporaryDirectory(prefix="lc_trace_bench_stack_") as tmp:
        jaeger = servers.jaeger(Path(tmp)).start()
        collector = servers.collector(Path(tmp), f"127.0.0.1:{jaeger.ports['otlp_grpc']}").start()
        dead = free_port()
        try:
            cases: dict[str, dict[str, str]] = {}
            for protocol in PROTOCOLS:
                live = collector.ports["otlp_grpc" if protocol == "grpc" else "otlp_http"]
                for label, port in (("working collector", live), ("nothing listening", dead)):
                    cases[f"{protocol}, {label}"] = {
                        **base,
                        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                        "OTEL_EXPORTER_OTLP_INSECURE": "true",
                    }
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
            for r in range(rounds):
                names = list(cases)
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    result = _run_worker(cases[name], seconds, warmup_s)
                    results[name].append(result)
                    print(f"round {r + 1}/{rounds} {name:40} {result}", file=sys.stderr, flush=True)
        finally:
            collector.stop()
            jaeger.stop()
    return results


def summarise(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """
    Per case: the median µs per call, the median of the per-round ratios to the working
    collector of the same protocol, the longest exit after the last call, the last round's spans.
    """
    cases: dict[str, dict[str, Any]] = {}
    for protocol in PROTOCOLS:
        working = results[f"{protocol}, working collector"]
        for label in ("working collector", "nothing listening"):
            name = f"{protocol}, {label}"
            runs = results[name]
            errors = [r["error"] for r in runs + working if "error" in r]
            if errors:
                cases[name] = {"error": str(errors[0])}
                continue
            cases[name] = {
                "us_per_call": statistics.median(r["us_per_call"] for r in runs),
                "ratio": statistics.median(
                    r["us_per_call"] / w["us_per_call"] for r, w in zip(runs, working, strict=True)
                ),
                "exit_s": max(r["exit_after_last_call_s"] for r in runs),
                "spans_exported": runs[-1]["spans_exported"],
                "spans_dropped": runs[-1]["spans_dropped"],
            }
    return cases


def table(cases: dict[str, dict[str, Any]]) -> list[str]:
    """
    The summary as a markdown table (also the report's section; bench.report imports nothing).
    """
    lines = [
        "| case | µs per call | vs working collector | exit after the last call (longest) "
        "| spans exported / dropped (last round) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, case in cases.items():
        if "error" in case:
            lines.append(f"| {name} | failed: {case['error']} | | | |")
            continue
        lines.append(
            f"| {name} | {case['us_per_call']:,.0f} | {case['ratio']:.2f}× | {case['exit_s']:.1f} s "
            f"| {case['spans_exported']:,} / {case['spans_dropped']:,} |"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
