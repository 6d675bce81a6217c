"""
The benchmark, one command:

    python -m bench --out BENCHMARKS.md     # full run, ~30 min on 2 cores
    python -m bench --smoke                 # every part once, tiny iterations (CI)
    python -m bench --only lc_trace,span-floor,chain --rounds 3
    python -m bench --profile lc_trace --case stream/async --out profile.txt

This process only orchestrates (standard library only): every measurement runs in a fresh
process of ``.venv-bench`` (created and installed on first use), one per contender and round,
rounds interleaved, because the peers' instrumentors patch LangChain globally.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import render
from bench.venv import ROOT, ensure_bench_venv

# The names below mirror bench.contenders / bench.scenarios, which import LangChain and so
# cannot be imported here (this process may run on any Python).
CONTENDERS = {
    "noop": "no-op handler (not inline)",
    "noop-inline": "no-op handler, `run_inline`",
    "span-floor": "span floor: one empty span per run",
    "lc_trace": "**lc_trace** TraceHandler, content on",
    "lc_trace-no-content": "lc_trace TraceHandler, content off",
    "lc_trace-async": "lc_trace AsyncTraceHandler, content on",
    "lc_trace-async-no-content": "lc_trace AsyncTraceHandler, content off",
    "lc_trace-instrument": "lc_trace TraceHandler, content on, spans current (`lc_trace.instrument()`)",
    "openinference": "OpenInference LangChainInstrumentor, content on",
    "openllmetry": "OpenLLMetry LangchainInstrumentor, content on",
    "langfuse": "Langfuse langchain CallbackHandler, content on",
    "file-callback": "LangChain FileCallbackHandler",
}
SCENARIOS = {
    "chain": {"title": "prompt | chat model | parser", "sync_label": "invoke", "async_label": "ainvoke"},
    "nested": {"title": "ten runnables nested in an outer one", "sync_label": "invoke", "async_label": "ainvoke"},
    "stream": {"title": "streaming chat model, 200 chunks", "sync_label": "invoke", "async_label": "ainvoke"},
    "agent": {
        "title": "tool-calling agent loop: model, 2 tools, model",
        "sync_label": "invoke",
        "async_label": "ainvoke",
    },
    "gather": {
        "title": "1,000 calls of scenario 1 at once: `batch` (threads) / `asyncio.gather` of `ainvoke`",
        "sync_label": "batch",
        "async_label": "gather",
    },
}
PARTS = ("overhead", "writer", "memory", "content", "collector")
PEERS_OPTIONAL_IN_SMOKE = ("openinference", "openllmetry", "langfuse")


@dataclass(frozen=True)
class Plan:
    """
    Iterations for one kind of run. Budgets are bench.timing.Budget fields.
    """

    rounds: int
    gather_rounds: int
    budget: dict[str, Any]
    gather_budget: dict[str, Any]
    gather_calls: int
    writer: list[str]
    memory: list[str]
    content: list[str]
    collector: list[str]
    merge_groups: bool = False  # one process per contender for all scenarios (smoke)
    timeout_s: int = 900


FULL = Plan(
    rounds=4,
    gather_rounds=3,
    budget={"warmup_s": 0.1, "sample_s": 0.02, "samples": 7},
    gather_budget={"warmup_s": 0.0, "sample_s": 0.0, "samples": 1, "min_warmup_calls": 1},
    gather_calls=1_000,
    writer=["--lines", "200000", "--reps", "5", "--lag-seconds", "2"],
    memory=["--runs", "1000000", "--stall-runs", "100000", "--stall-threads", "4"],
    content=["--reps", "21"],
    collector=["--rounds", "5", "--seconds", "6"],
)
SMOKE = Plan(
    rounds=1,
    gather_rounds=1,
    budget={"warmup_s": 0.0, "sample_s": 0.0, "samples": 1, "min_warmup_calls": 1},
    gather_budget={"warmup_s": 0.0, "sample_s": 0.0, "samples": 1, "min_warmup_calls": 1},
    gather_calls=20,
    writer=["--lines", "5000", "--reps", "1", "--lag-seconds", "0.2"],
    memory=["--runs", "5000", "--stall-runs", "4000", "--stall-threads", "2", "--stall-queue-size", "1000"],
    content=["--reps", "1"],
    collector=["--rounds", "1", "--seconds", "0.5", "--warmup", "0.1"],
    merge_groups=True,
    timeout_s=180,
)


@dataclass
class Selection:
    contenders: list[str]
    scenarios: list[str]
    parts: list[str]


@dataclass
class Run:
    workers: list[dict[str, Any]] = field(default_factory=list)
    writer: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    content: dict[str, Any] | None = None
    collector: dict[str, Any] | None = None
    walls: dict[str, float] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def select(only: str | None) -> Selection:
    """
    ``--only`` takes contender names, scenario keys and part names, mixed; each kind named
    restricts that kind. Naming contenders or scenarios alone means the overhead part only.
    """
    tokens = [t.strip() for t in (only or "").split(",") if t.strip()]
    unknown = [t for t in tokens if t not in CONTENDERS and t not in SCENARIOS and t not in PARTS]
    if unknown:
        raise SystemExit(f"--only: unknown {unknown}; known: {[*CONTENDERS, *SCENARIOS, *PARTS]}")
    contenders = [t for t in tokens if t in CONTENDERS] or list(CONTENDERS)
    scenarios = [t for t in tokens if t in SCENARIOS] or list(SCENARIOS)
    parts = [t for t in tokens if t in PARTS]
    if not parts:
        parts = ["overhead"] if any(t in CONTENDERS or t in SCENARIOS for t in tokens) else list(PARTS)
    return Selection(contenders, scenarios, parts)


def clean_env() -> dict[str, str]:
    """
    The environment for measuring processes: no lc_trace/OTel/LangSmith/Traceloop settings of
    the caller's, so every contender runs with its defaults.
    """
    prefixes = ("LC_TRACE_", "OTEL_", "TRACELOOP_", "LANGCHAIN_", "LANGSMITH_", "OPENINFERENCE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_module(python: Path, module: str, args: list[str], timeout_s: int) -> dict[str, Any]:
    """
    ``python -m module args --result FILE`` in a fresh process; its JSON, or an error.
    """
    with tempfile.TemporaryDirectory(prefix="lc_trace_bench_run_") as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [str(python), "-m", module, *args, "--result", str(result_path)]
        try:
            done = subprocess.run(cmd, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout_s} s"}
        if done.returncode != 0 or not result_path.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return {"error": f"exit {done.returncode}: {' / '.join(tail)}"}
        result: dict[str, Any] = json.loads(result_path.read_text())
        if done.stderr.strip():
            result["stderr_tail"] = done.stderr.strip().splitlines()[-3:]
        return result


def installed(python: Path, contender: str) -> bool:
    """
    Whether a peer's package imports in the measuring interpreter.
    """
    module = {
        "openinference": "openinference.instrumentation.langchain",
        "openllmetry": "opentelemetry.instrumentation.langchain",
        "langfuse": "langfuse.langchain",
    }
    code = f"import importlib.util,sys; sys.exit(importlib.util.find_spec({module[contender]!r}) is None)"
    return subprocess.run([str(python), "-c", code], env=clean_env(), cwd=ROOT).returncode == 0


def overhead(python: Path, plan: Plan, sel: Selection, smoke: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """
    Round r runs every contender once, each in its own fresh process; the contender order
    rotates with r so no contender always runs first or last.
    """
    notes: list[str] = []
    contenders = list(sel.contenders)
    if smoke:
        for name in PEERS_OPTIONAL_IN_SMOKE:
            if name in contenders and not installed(python, name):
                contenders.remove(name)
                notes.append(f"smoke run: {name} skipped, not installed in {python}")
                log(notes[-1])
    fast = [s for s in sel.scenarios if s != "gather"]
    groups: list[tuple[list[str], dict[str, Any], int]] = []
    if plan.merge_groups:
        groups.append((sel.scenarios, plan.budget, plan.rounds))
    else:
        if fast:
            groups.append((fast, plan.budget, plan.rounds))
        if "gather" in sel.scenarios:
            groups.append((["gather"], plan.gather_budget, plan.gather_rounds))
    results: list[dict[str, Any]] = []
    for r in range(max(g[2] for g in groups)):
        order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
        for keys, budget, rounds in groups:
            if r >= rounds:
                continue
            for name in order:
                started = time.perf_counter()
                args = ["--contender", name, "--scenarios", ",".join(keys), "--budget", json.dumps(budget)]
                result = run_module(
                    python, "bench.worker", [*args, "--gather-calls", str(plan.gather_calls)], plan.timeout_s
                )
                result.setdefault("contender", name)
                result["round"] = r
                results.append(result)
                took = time.perf_counter() - started
                log(f"round {r + 1}/{rounds} {name:26} {'+'.join(keys):26} {took:5.1f} s {result.get('error', 'ok')}")
    return results, notes


def machine(python: Path) -> dict[str, str]:
    """
    What the figures were measured on.
    """
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    version = subprocess.run(
        [str(python), "-c", "import platform;print(platform.python_implementation(), platform.python_version())"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": version,
        "load": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def preamble(run: Run, plan: Plan, sel: Selection, info: dict[str, str], argv: list[str], note: str) -> list[str]:
    versions: dict[str, str] = {}
    for result in run.workers:
        versions.update(result.get("versions", {}))
    libs = ", ".join(f"{k} {v}" for k, v in versions.items() if k != "python")
    command = " ".join(["python -m bench", *argv])
    lines = [
        "# Benchmarks",
        "",
        "What lc_trace costs a LangChain app, measured side by side with the floors (no callbacks, no-op "
        "handlers, one empty span per run) and the peers (OpenInference, OpenLLMetry, LangChain's own "
        "`FileCallbackHandler`) in one run on one machine; then its log writer and its memory.",
        "",
        "Regenerate (creates `.venv-bench` with the peers on first use; ~30 minutes on 2 cores):",
        "",
        "```bash",
        f".venv/bin/{command.strip()}",
        "```",
        "",
    ]
    if plan.merge_groups:  # the smoke plan
        lines += [
            "> **Smoke run**: tiny iterations, one round; it proves the benchmark runs, its figures mean nothing.",
            "",
        ]
    if note:
        lines += [f"> {note}", ""]
    lines += [
        "| machine | |",
        "|---|---|",
        f"| date | {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')} |",
        f"| CPU | {info['cpu']} |",
        f"| memory | {info['memory']} |",
        f"| OS | {info['os']} |",
        f"| Python | {info['python']} |",
        f"| libraries | {libs} |",
        f"| load average (1/5/15 min) at start → end | {info['load']} → {info['load_end']} |",
        "| wall time | " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in run.walls.items()) + " |",
        f"| iterations | overhead: rounds {plan.rounds} (gather: {plan.gather_rounds}), each a fresh process per "
        f"contender; per process the best of {plan.budget['samples']} samples of "
        f"~{plan.budget['sample_s'] * 1e3:.0f} ms after {plan.budget['warmup_s'] * 1e3:.0f} ms of warm-up "
        f"(gather: {plan.gather_budget['samples']} call after one warm-up call) |",
        "",
    ]
    return lines


EXPLANATION = """## What the figures mean

- **µs per event** = (time per call with the contender − time per call of the bare chain, timed
  first in the same fresh process) ÷ the events one call delivers, counted by a handler that counts
  every callback. It is what tracing adds to each LangChain callback, including LangChain's own
  dispatch to the handler (which the no-op rows show on their own). A negative figure is noise: the
  contender costs less than the run-to-run spread.
- **Goals per case** give the ratio of the medians over rounds, then in brackets the lowest and highest
  of the same ratio taken round by round (each round's processes against each other): where that range
  straddles the limit, the case is within the run-to-run spread, not decided.
- **The floors.** *no-op handler (not inline)*: LangChain's dispatch cost for a plain handler; under
  `ainvoke` every event goes through `run_in_executor`. *no-op, `run_inline`*: the cheapest a handler
  can be called. *span floor*: an inline handler that starts one empty OTel span per run (child of its
  parent run's span) and ends it; nothing else. lc_trace does that plus mapping, attributes, content
  capture, a log line and metrics.
- **Export.** Every contender that makes spans has its own SDK `TracerProvider` with a
  `BatchSpanProcessor` over an exporter that only counts (no network, no serialisation); the same for
  lc_trace, the span floor and the peers. No meter provider is set, so metrics (lc_trace's, OpenLLMetry's)
  go to OTel's no-op meter. lc_trace writes its log lines to a real file in a temporary folder;
  `FileCallbackHandler` writes its text to a real file too.
- **Content captured.** lc_trace by default (rows "content on"); OpenInference by default; OpenLLMetry
  with `TRACELOOP_TRACE_CONTENT=true`; Langfuse's `CallbackHandler` by default (its client is given the
  contender's provider and the counting exporter, so its own batch processor runs offline).
  `FileCallbackHandler` writes chain enter/exit text only.
- **Fresh processes.** The peers' instrumentors patch `BaseCallbackManager.__init__` globally and leave
  state behind (a bare chain timed after one instrument/uninstrument cycle ran 3× slower than in a clean
  process), so every contender runs in its own process, which first times the bare chain and only then
  attaches the contender. Rounds are interleaved (round r runs every contender once, the order rotating)
  and the figure is the median over rounds; within a process the best of its samples is used, because
  noise from other work on the machine only ever adds time.
- **Scenario 5** under "sync" is `chain.batch` of the 1,000 inputs (LangChain's thread pool), the sync
  way to run them at once; under "async" it is `asyncio.gather` of 1,000 `ainvoke`s.
- **The writer** is timed on its own (`lc_trace._logs._writer.LineWriter`, fed real lc_trace lines), against a
  plain buffered `write` of the same lines; it must not fall behind an app, and never block it.
- **Loop lag** is how long the event loop was held by other work before a probe task that only yields
  could run again; a burst of lc_trace events must not hold it for long. The loop's work includes each
  call itself (the "bare" row). The garbage collector's pauses stop every thread and walk the app's whole
  heap, so they are timed separately, and the lag is also given outside them. The `lc_trace+freeze`
  row is the same handler in an app that called `gc.freeze()` after its start-up (docs/performance.md):
  a full collection then skips the imported libraries' objects. "events/s reached" below
  the target means the loop was saturated: the calls and their handlers took all of it.
- **Memory**: resident size sampled across a million runs must not grow after warm-up (the slope of
  its second half is the test); with the disk stalled, the writer's queue must stay within its bound
  (lines beyond it are dropped and counted, and the count reaches the file once the disk recovers).
- The goals are checked case by case; one noisy case can fail a goal, so read the per-case figures.
  Where a goal fails, `docs/decisions.md` ("Performance") says what the profile shows standing in
  the way (the OTel SDK's per-attribute validation; full garbage collections of the app's heap), and
  `docs/performance.md` gives the knobs and the `gc.freeze()` advice.
- Regenerate with `--smoke` for a quick check that everything still runs (numbers meaningless);
  `--profile NAME --case SCENARIO/MODE` writes a pyinstrument profile of one contender
  (`docs/profiling.md`).
"""


def profile(python: Path, name: str, case: str, seconds: float, flat: bool, out: str | None) -> int:
    args = ["--contender", name, "--case", case, "--seconds", str(seconds), *(["--flat"] if flat else [])]
    with tempfile.TemporaryDirectory() as tmp:
        text_path = Path(out).resolve() if out else Path(tmp) / "profile.txt"
        done = subprocess.run(
            [str(python), "-m", "bench.profile", *args, "--result", str(text_path)], cwd=ROOT, env=clean_env()
        )
        if done.returncode == 0 and not out:
            print(text_path.read_text())
        elif done.returncode == 0:
            log(f"profile written to {text_path}")
    return done.returncode


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny iterations, one round, every part (goals reported, not enforced)"
    )
    parser.add_argument("--rounds", type=int, help="rounds of the overhead part (default 4; gather: 3)")
    parser.add_argument(
        "--only", help="comma list of contenders, scenarios and parts (overhead, writer, memory, content, collector)"
    )
    parser.add_argument("--out", help="write the markdown (or, with --profile, the profile) here; default stdout")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--python", help="measure with this interpreter instead of .venv-bench (no install)")
    parser.add_argument("--note", default="", help="a paragraph quoted under the command in the report")
    parser.add_argument("--profile", metavar="CONTENDER", help="profile one contender with pyinstrument instead")
    parser.add_argument("--case", default="chain/sync", help="scenario/mode for --profile (default chain/sync)")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long --profile runs the case")
    parser.add_argument("--flat", action="store_true", help="--profile: self time per function, not the call tree")
    args = parser.parse_args(argv)
    python = Path(args.python) if args.python else ensure_bench_venv(log)
    if args.profile:
        return profile(python, args.profile, args.case, args.seconds, args.flat, args.out)
    plan = SMOKE if args.smoke else FULL
    if args.rounds:
        plan = Plan(**{**plan.__dict__, "rounds": args.rounds, "gather_rounds": min(args.rounds, plan.gather_rounds)})
    sel = select(args.only)
    info = machine(python)
    run, notes = Run(), list[str]()
    if "overhead" in sel.parts:
        started = time.perf_counter()
        run.workers, notes = overhead(python, plan, sel, args.smoke)
        run.walls["overhead"] = time.perf_counter() - started
    for part, module, extra in (
        ("writer", "bench.writer", plan.writer),
        ("memory", "bench.memory", plan.memory),
        ("content", "bench.content", plan.content),
        ("collector", "bench.collector", plan.collector),
    ):
        if part in sel.parts:
            started = time.perf_counter()
            log(f"{part} ...")
            result = run_module(python, module, extra, 3600)
            run.walls[part] = time.perf_counter() - started
            if "error" in result:
                notes.append(f"{part} part failed: {result['error']}")
                log(notes[-1])
            else:
                setattr(run, part, result)
            log(f"{part} done in {run.walls[part]:.0f} s")
    info["load_end"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    shown = [f"--{k} {v}" for k, v in (("only", args.only), ("rounds", args.rounds), ("out", args.out)) if v]
    shown = (["--smoke"] if args.smoke else []) + shown
    report = {
        "preamble": preamble(run, plan, sel, info, shown, args.note)
        + [f"> {n}" for n in notes]
        + ([""] if notes else []),
        "labels": {name: CONTENDERS[name] for name in sel.contenders},
        "scenarios": SCENARIOS,
        "workers": run.workers,
        "writer": run.writer,
        "memory": run.memory,
        "content": run.content,
        "collector": run.collector,
        "epilogue": [EXPLANATION],
    }
    text = render(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(text)
        log(f"wrote {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
