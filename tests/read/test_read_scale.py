"""
The read side at scale: every reading command over generated logs of tens of MB (the demo's
traces copied with new ids, four requests at a time interleaved, rotated as the writer rotates)
holds memory that does not grow with the file, and its one-pass summaries say what building
every trace says.

Memory is the peak RSS (``VmHWM``) of a fresh child process running the command, compared
between a 20 MB and a 60 MB log: the code before this measure held every parsed line, ~3.5 times
the file (150 MB: 546 MB for ``traces``, 960 MB for ``html``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.reader import demo_lines, generate_log
from lc_trace._read._files import log_files, read_lines
from lc_trace._read._runs import build_traces
from lc_trace._read._summary import summarise
from tests.conftest import REPO

MIB = 1 << 20

CHILD = """
import json, sys, contextlib, io, tempfile, os
from bench.reader import peak_rss_bytes
from lc_trace._cli import main
from lc_trace._cli._commands import export
from lc_trace._cli._parser import build_parser
command, path, trace_id = sys.argv[1:4]
out = io.StringIO()
with contextlib.redirect_stdout(out), tempfile.TemporaryDirectory() as tmp:
    if command == "export":  # read and build every span, to a sink that takes them at once
        from bench.common import CountingExporter
        sink = CountingExporter()
        code = export(build_parser().parse_args(["export", path, "-q"]), sink)
        print(sink.spans)
    elif command == "html":
        code = main(["html", path, "-o", os.path.join(tmp, "page.html")])
        print(os.path.getsize(os.path.join(tmp, "page.html")))
    elif command == "show":
        code = main(["show", trace_id, path])
    else:
        code = main([command, path, *(["--json"] if command == "usage" else [])])
print(json.dumps({"code": code, "peak": peak_rss_bytes(), "out": out.getvalue()[-300:]}))
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return demo_lines(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory, template: list[dict[str, Any]]) -> dict[int, Path]:
    """A 20 MB and a 60 MB log, each rotated into 10 MiB files."""
    made = {}
    for mib in (20, 60):
        path = tmp_path_factory.mktemp(f"log{mib}") / "lc_trace.jsonl"
        generate_log(path, mib, template, file_mib=10)
        made[mib] = path
    return made


def run_child(command: str, path: Path, trace_id: str = "") -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, command, str(path), trace_id],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert 0 == done.returncode, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert 0 == result["code"], result
    return result


@pytest.mark.parametrize("command", ["traces", "usage", "export", "html", "show"])
def test_memory_does_not_grow_with_the_file(command: str, logs: dict[int, Path]) -> None:
    """Tripling the log (20 MB → 60 MB, 1,200 → 3,700 traces) adds less than 12 MiB to the command's peak RSS, which stays under 120 MiB; holding the lines would add over 140 MiB."""
    small, large = logs[20], logs[60]
    sizes = {mib: sum(f.stat().st_size for f in log_files(path)) for mib, path in logs.items()}
    assert sizes[60] > 2.9 * sizes[20]
    first = json.loads(large.with_name("lc_trace.jsonl.5").read_bytes().split(b"\n", 1)[0])["trace.id"]
    peaks = {}
    for mib, path in ((20, small), (60, large)):
        trace_id = (
            first
            if mib == 60
            else json.loads(path.with_name("lc_trace.jsonl.1").read_bytes().split(b"\n", 1)[0])["trace.id"]
        )
        result = run_child(command, path, trace_id)
        peaks[mib] = result["peak"] / MIB
        if command == "show":
            assert result["out"].strip(), "show printed the tree"
    assert peaks[60] - peaks[20] < 12, peaks
    assert peaks[60] < 120, peaks


def test_summaries_say_what_whole_traces_say(
    template: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Over interleaved requests across rotated files, each trace's one-pass summary has the root, run count, start, duration, tokens, errors, failed runs, missing parents and model calls of the trace built from all its lines."""
    path = tmp_path_factory.mktemp("equal") / "lc_trace.jsonl"
    generate_log(path, 3, template, file_mib=0.5)
    files = log_files(path)
    assert len(files) >= 6
    whole = {t.trace_id: t for t in build_traces(read_lines(files))}
    summaries = summarise(read_lines(files), calls=True)
    assert len(whole) == len(summaries) > 150
    for summary in summaries:
        trace = whole[summary.trace_id]
        assert (
            trace.root_name,
            trace.service,
            trace.run_count,
            trace.first_ns,
            trace.duration_ns,
            trace.tokens(),
            trace.errors,
            trace.failed_runs,
            trace.missing_parents,
        ) == (
            summary.root_name,
            summary.service,
            summary.run_count,
            summary.first_ns,
            summary.duration_ns,
            summary.tokens(),
            summary.errors,
            summary.failed_runs,
            summary.missing_parents,
        )
        assert sorted(trace.model_calls(), key=repr) == sorted(summary.model_calls(), key=repr)
    assert 1 == summaries[0].missing_parents  # each root's parent is a web request's span, in no file
