"""
The read side at the size the writer keeps: ``lc-trace traces``, ``usage``, ``export`` (read and
span building, to a sink that accepts at once), ``html`` and ``show`` over a generated log of
the default rotation's size (100 MiB files, five backups: 600 MiB), each in a fresh process,
side by side with a plain orjson line scan (the floor: reading and parsing, nothing kept).

    python -m bench.reader                         # 600 MiB, a markdown table on stdout
    python -m bench.reader --mib 150 --before 5b81b4f   # also the code of a commit, on the same log
    python -m bench.reader --smoke                 # 12 MiB, for a quick check that it runs

Throughput is the log's size over the command's wall time (imports included), and over its CPU
time (user + system: less at the mercy of what else the machine runs); peak RSS is the
child's ``VmHWM`` (``peak_rss_bytes``). The log is generated into a temporary folder and deleted after. It is a
web app's day: the flower-shop demo's traces copied with new ids, four requests at a time
interleaved line by line, each root a child of a request span that is in no file, written by
two worker processes (``process.pid``, ``service.instance.id``).
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

__all__ = ["demo_lines", "generate_log", "peak_rss_bytes"]

ROOT = Path(__file__).resolve().parent.parent
_MIB = 1 << 20
_COMMANDS = ("floor", "traces", "usage", "export", "html", "show")


def demo_lines(folder: Path) -> list[dict[str, Any]]:
    """
    The flower-shop demo's log lines (content on), written by a real handler into *folder*.
    """
    from lc_trace import TraceHandler
    from lc_trace._cli._demo import run_demo

    path = folder / "template.jsonl"
    handler = TraceHandler(log_path=path, service_name="flower-shop")
    try:
        run_demo(handler)
    finally:
        handler.close()
    return [orjson.loads(raw) for raw in path.read_bytes().splitlines()]


def _stamp_ns(stamp: str) -> int:
    seconds = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int(stamp[20:-1].ljust(9, "0"))


def generate_log(
    path: Path,
    mib: float,
    template: list[dict[str, Any]],
    *,
    file_mib: float = 100,
    concurrency: int = 4,
    seed: int = 18,
    day_s: int = 86_400,
) -> int:
    """
    Write about *mib* MiB of log at *path*, rotated as the writer rotates (``path.N`` … ``path.1``,
    ``path``, *file_mib* each): copies of *template*'s traces with new ids, *concurrency* copies'
    lines interleaved, spread over *day_s* seconds. Returns the number of traces written.
    """
    rng = random.Random(seed)
    bits = rng.getrandbits
    base_ns = _stamp_ns(template[0]["@timestamp"])
    offsets = [_stamp_ns(line["@timestamp"]) - base_ns for line in template]
    template_bytes = sum(len(orjson.dumps(line)) + 1 for line in template)
    copies = max(int(mib * _MIB / template_bytes), 1)
    traces_per_copy = len({line["trace.id"] for line in template})
    start_ns = 1_796_083_200 * 1_000_000_000  # 2026-12-01T00:00:00Z
    step_ns = day_s * 1_000_000_000 // copies
    workers = [(4242, "web-1"), (4243, "web-2")]
    files: list[Path] = []
    out = None
    written = 0
    last_second, prefix = -1, ""

    def stamp(ns: int) -> str:
        nonlocal last_second, prefix
        second = ns // 1_000_000_000
        if second != last_second:
            last_second, prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{prefix}.{ns % 1_000_000_000:09d}Z"

    for group in range(0, copies, concurrency):
        batch: list[list[bytes]] = []
        for copy in range(group, min(group + concurrency, copies)):
            ids: dict[str, str] = {}
            pid, instance = workers[copy % 2]
            shift = start_ns + group * step_ns + (copy - group) * 3_000_000  # the group's requests 3 ms apart
            lines = []
            for line, offset in zip(template, offsets, strict=True):
                new = dict(line)
                new["@timestamp"] = stamp(shift + offset)
                for key, width in (("trace.id", 32), ("span.id", 16), ("parent.id", 16)):
                    if key in new:
                        new[key] = ids.setdefault(new[key], format(bits(width * 4), f"0{width}x"))
                for key in ("langchain.run.id", "langchain.run.parent_id"):
                    if key in new:
                        new[key] = ids.setdefault(new[key], format(bits(128), "032x"))
                if "parent.id" not in new:  # a root: the web request's span, which nobody exported
                    new["parent.id"] = ids.setdefault("request " + new["trace.id"], format(bits(64), "016x"))
                new["process.pid"], new["service.instance.id"] = pid, instance
                lines.append(orjson.dumps(new) + b"\n")
            batch.append(lines)
        for row in range(len(template)):
            for lines in batch:
                if out is None or written >= file_mib * _MIB:
                    if out is not None:
                        out.close()
                    files.append(path.with_name(f"{path.name}.new{len(files)}"))
                    out = open(files[-1], "wb")
                    written = 0
                out.write(lines[row])
                written += len(lines[row])
    assert out is not None
    out.close()
    for index, file in enumerate(files):  # oldest is path.N, newest path
        number = len(files) - 1 - index
        file.rename(path if number == 0 else path.with_name(f"{path.name}.{number}"))
    return copies * traces_per_copy


# --- one measurement, in a fresh process ----------------------------------------------------------


def _child(command: str, path: str, trace_id: str) -> dict[str, Any]:
    """
    Run one command over the log at *path*; its wall time and peak RSS.
    """
    import contextlib
    import io

    started = time.perf_counter()
    out = io.StringIO()
    if command == "floor":
        from lc_trace._read._files import log_files

        lines = 0
        for file in log_files(path):
            with open(file, "rb") as handle:
                for raw in handle:
                    orjson.loads(raw)
                    lines += 1
    else:
        from lc_trace._cli import main
        from lc_trace._cli._commands import export
        from lc_trace._cli._parser import build_parser

        with contextlib.redirect_stdout(out), tempfile.TemporaryDirectory() as tmp:
            if command == "export":
                from bench.common import CountingExporter

                sink = CountingExporter()
                export(build_parser().parse_args(["export", path, "-q"]), sink)
                out.write(f"{sink.spans} spans\n")
            elif command == "html":
                main(["html", path, "-o", os.path.join(tmp, "page.html")])
                out.write(f"page {os.path.getsize(os.path.join(tmp, 'page.html'))}\n")
            elif command == "show":
                main(["show", trace_id, path])
            else:
                main([command, path] + (["--json"] if command == "usage" else []))
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)  # a forked child's CPU times start at zero
    return {
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": peak_rss_bytes() / _MIB,
        "out_tail": out.getvalue()[-200:],
    }


def peak_rss_bytes() -> int:
    """
    This process's peak resident set size: ``VmHWM``, which starts afresh at exec, where
    ``getrusage``'s ``ru_maxrss`` keeps the forking parent's peak (a benchmark's or pytest's).
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _measure(command: str, path: Path, trace_id: str, before: Path | None) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in ([before] if before else []) + [ROOT])
    code = [sys.executable, "-m", "bench.reader", "--child", command, str(path), trace_id]
    # `-m` puts the working folder first on sys.path: the checkout's, for its lc_trace to win.
    done = subprocess.run(code, env=env, cwd=before or ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{command} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _checkout(commit: str, into: Path) -> Path:
    """
    The ``lc_trace`` package as it was at *commit*, unpacked into *into* (``git archive``).
    """
    archive = subprocess.run(["git", "archive", commit, "lc_trace"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reader", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=float, default=600, help="log size (default 600: the default rotation's)")
    parser.add_argument("--smoke", action="store_true", help="12 MiB in 3 MiB files: a quick check that it runs")
    parser.add_argument("--before", metavar="COMMIT", help="also measure lc_trace as it was at COMMIT")
    parser.add_argument("--only", default=",".join(_COMMANDS), help=f"commands (default {','.join(_COMMANDS)})")
    parser.add_argument("--child", nargs=3, metavar=("COMMAND", "PATH", "TRACE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child)))
        return 0
    mib, file_mib = (12.0, 3.0) if args.smoke else (args.mib, 100.0)
    commands = [c.strip() for c in args.only.split(",") if c.strip()]
    with tempfile.TemporaryDirectory(prefix="lc_trace_bench_reader_") as tmp:
        folder = Path(tmp)
        path = folder / "lc_trace.jsonl"
        started = time.perf_counter()
        traces = generate_log(path, mib, demo_lines(folder), file_mib=file_mib)
        files = sorted(folder.glob("lc_trace.jsonl*"))
        size = sum(f.stat().st_size for f in files)
        print(
            f"[bench.reader] generated {size / _MIB:,.0f} MiB in {len(files)} files, {traces:,} traces, "
            f"in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
        trace_id = orjson.loads(path.read_bytes().split(b"\n", 1)[0])["trace.id"]
        versions: list[tuple[str, Path | None]] = [("this", None)]
        if args.before:
            versions.insert(0, (args.before, _checkout(args.before, Path(tempfile.mkdtemp(dir=tmp)))))
        rows = []
        for label, code in versions:
            for command in commands:
                result = _measure(command, path, trace_id, code)
                mb_s, cpu_mb_s = size / 1e6 / result["seconds"], size / 1e6 / result["cpu_seconds"]
                rows.append((label, command, result["seconds"], mb_s, cpu_mb_s, result["peak_rss_mib"]))
                print(
                    f"[bench.reader] {label} {command}: {result['seconds']:.1f} s, {mb_s:.0f} MB/s "
                    f"({cpu_mb_s:.0f} MB/s of CPU time), peak RSS {result['peak_rss_mib']:.0f} MiB; "
                    f"{result['out_tail'][-120:]!r}",
                    file=sys.stderr,
                )
    print(f"Log: {size / _MIB:,.0f} MiB ({size / 1e6:,.0f} MB) in {len(files)} files, {traces:,} traces.\n")
    print("| code | command | seconds | MB/s | MB/s of CPU time | peak RSS (MiB) |\n|---|---|---:|---:|---:|---:|")
    for label, command, seconds, mb_s, cpu_mb_s, rss in rows:
        print(f"| {label} | {command} | {seconds:.1f} | {mb_s:.0f} | {cpu_mb_s:.0f} | {rss:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
