"""
``lc-trace html`` (``lc_trace._read._html``): one self-contained page, checked in a real headless
Chromium (Debian's ``chromium``, driven by ``tests/browser.py``): the trace list and a trace's
waterfall render with the right spans, bar widths follow durations, failures are marked, and the
browser console stays clean. Screenshots are kept in ``test-artifacts/html/`` (or
``$LC_TRACE_TEST_ARTIFACTS/html``).
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from langchain_core.runnables import RunnableLambda

from lc_trace import TraceHandler
from lc_trace._cli._demo import run_demo
from lc_trace._read._files import log_files, read_lines
from lc_trace._read._runs import build_traces
from lc_trace.testing import read_log
from tests.browser import Browser, chromium_path
from tests.cli.test_cli import failing_agent_log, run_cli
from tests.conftest import REPO

ARTIFACTS = Path(os.environ.get("LC_TRACE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "html"
HOSTILE = "</script><script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'>"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The flower shop's log, one more trace whose content is hostile markup, and the page of both."""
    folder = tmp_path_factory.mktemp("html")
    log = folder / "lc_trace.jsonl"
    handler = TraceHandler(log_path=log, service_name="flower-shop")
    try:
        run_demo(handler)
        RunnableLambda(lambda text: text.upper(), name="shout").invoke(HOSTILE, {"callbacks": [handler]})
    finally:
        handler.close()
    page = folder / "page.html"
    code, out, err = run_cli(["html", str(log), "-o", str(page)])
    assert (0, f"6 traces written to {page}\n", "") == (code, out, err)
    return log, page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if chromium_path() is None:
        message = "chromium is not installed here (.ci/run installs it: apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    one = Browser()
    yield one
    one.close()


class TestPage:
    def test_self_contained(self, shop: tuple[Path, Path]) -> None:
        """The page loads nothing from anywhere: no src, href, import, url() or fetch of another resource."""
        text = shop[1].read_text(encoding="utf-8")
        assert [] == re.findall(r"""(?:src|href)\s*=\s*["'](?!#)""", text.split('<script id="lc-data"')[0])
        assert [] == re.findall(r"@import|url\(|fetch\(|XMLHttpRequest|<link|<iframe", text)
        assert 2 == text.count("</script>")  # the data element's end and the script's: none inside the data

    def test_only_the_traces_asked_for(self, shop: tuple[Path, Path], tmp_path: Path) -> None:
        """`html LOG --trace ID…` keeps those traces; an unknown prefix exits 1 and says so."""
        log = shop[0]
        first = read_log(log)[0]["trace.id"]
        page = tmp_path / "one.html"
        assert (0, f"1 traces written to {page}\n", "") == run_cli(
            ["html", str(log), "--trace", first[:8], "-o", str(page)]
        )
        data = json.loads(page.read_text(encoding="utf-8").split('type="application/json">')[1].split("</script>")[0])
        assert [first] == [row[0] for row in data["rows"]]
        code, _, err = run_cli(["html", str(log), "--trace", "fffffff", "-o", str(page)])
        assert (1, "lc-trace: no trace id starts with 'fffffff'\n") == (code, err)


class TestInChromium:
    def test_list_and_waterfall_render_with_widths_that_follow_durations(
        self, shop: tuple[Path, Path], browser: Browser
    ) -> None:
        """The list shows every trace; the agent's waterfall shows its spans in tree order, each bar placed and sized by its run's start and duration, its events as ticks, the failed tool in red."""
        log, page = shop
        browser.console.clear()
        browser.open(page)
        traces = build_traces(read_lines(log_files(log)))
        assert f"{len(traces)} of {len(traces)} traces" == browser.evaluate(
            "document.getElementById('count').textContent"
        )
        listed = browser.evaluate("[...document.querySelectorAll('.trow')].map(r => r.dataset.trace)")
        assert sorted(t.trace_id for t in traces) == sorted(listed)

        [agent] = [t for t in traces if t.root_name == "florist_agent"]
        browser.evaluate(f"lcTrace.pickTrace('{agent.trace_id}')")
        drawn = browser.evaluate(
            """[...document.querySelectorAll('.wrow')].map(r => {
                 const bar = r.querySelector('.bar'), track = r.querySelector('.track').getBoundingClientRect(),
                       box = bar.getBoundingClientRect();
                 const ticks = [...r.querySelectorAll('.tick')].map(t => (t.getBoundingClientRect().left - track.left) / track.width);
                 return {name: r.querySelector('.label').textContent, error: bar.classList.contains('error'),
                         left: (box.left - track.left) / track.width, width: box.width / track.width, ticks: ticks};
               })"""
        )
        runs = []
        stack = list(reversed(agent.roots))
        while stack:
            run = stack.pop()
            runs.append(run)
            stack.extend(reversed(run.children))
        assert [r.span_name for r in runs] == [d["name"] for d in drawn]
        origin = min(r.start_ns for r in runs)
        total = max(r.start_ns + r.duration_ns for r in runs) - origin
        for run, bar in zip(runs, drawn, strict=True):
            assert (run.start_ns - origin) / total == pytest.approx(bar["left"], abs=0.003), run.span_name
            assert run.duration_ns / total == pytest.approx(bar["width"], abs=0.003), run.span_name  # 1 px is ~0.0025
            assert run.failed == bar["error"], run.span_name
            events = [(line.time_ns - origin) / total for line in run.events]  # agent actions, custom events: ticks
            assert events == pytest.approx(bar["ticks"], abs=0.003), run.span_name
        assert ["execute_tool book_delivery"] == [d["name"] for d in drawn if d["error"]]

        browser.evaluate(
            "[...document.querySelectorAll('.wrow')].find(r => r.textContent.includes('book_delivery')).click()"
        )
        detail = browser.evaluate("document.getElementById('detail').innerText")
        assert "ConnectionError: courier service unreachable (address: 12 Garden Road)" in detail
        assert "Traceback (most recent call last)" in detail
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.screenshot(ARTIFACTS / "agent-trace.png")
        assert (ARTIFACTS / "agent-trace.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert [] == browser.console

    def test_sort_filter_and_hostile_content_stays_text(self, shop: tuple[Path, Path], browser: Browser) -> None:
        """Clicking a header sorts, the filter box and the errors switch narrow the list, and markup in a prompt is shown, never run."""
        browser.console.clear()
        browser.open(shop[1])
        browser.evaluate("document.querySelector('#list-head span[data-key=\"2\"]').click()")  # duration, longest first
        durations = browser.evaluate(
            "[...document.querySelectorAll('.trow')].sort((a, b) => a.offsetTop - b.offsetTop).map(r => r.children[4].textContent)"
        )
        as_ms = [float(d.split()[0]) * (1000 if d.endswith(" s") else 1) for d in durations]
        assert sorted(as_ms, reverse=True) == as_ms
        browser.evaluate("document.getElementById('filter').value = 'catalog'; lcTrace.applyView()")
        assert "3 of 6 traces" == browser.evaluate("document.getElementById('count').textContent")
        browser.evaluate("document.getElementById('filter').value = ''; document.getElementById('errors-only').click()")
        assert "1 of 6 traces" == browser.evaluate("document.getElementById('count').textContent")

        shout = next(line["trace.id"] for line in read_log(shop[0]) if line.get("langchain.run.name") == "shout")
        browser.evaluate(f"lcTrace.pickTrace('{shout}')")
        detail = browser.evaluate("document.getElementById('detail').innerText")
        assert json.dumps(HOSTILE) in detail
        assert None is browser.evaluate("window.pwned === undefined ? null : window.pwned")
        browser.screenshot(ARTIFACTS / "hostile-content.png")
        assert [] == browser.console


def test_a_run_that_never_ended_is_drawn_to_its_last_line_and_said_so(
    shop: tuple[Path, Path], tmp_path: Path, browser: Browser
) -> None:
    """A killed process's run (no end line) is a hatched bar up to its last line, marked never ended in the list and the pane."""
    lines = shop[0].read_text(encoding="utf-8").splitlines(keepends=True)
    agent = next(json.loads(x)["trace.id"] for x in lines if json.loads(x)["langchain.run.name"] == "florist_agent")
    log = tmp_path / "killed.jsonl"
    log.write_text(
        "".join(
            x
            for x in lines
            if not (json.loads(x)["trace.id"] == agent and json.loads(x)["event.action"] == "chain_end")
        ),
        encoding="utf-8",
    )
    page = tmp_path / "killed.html"
    assert 0 == run_cli(["html", str(log), "--trace", agent, "-o", str(page)])[0]
    browser.console.clear()
    browser.open(page)
    root = browser.evaluate(
        "(() => { const r = document.querySelector('.wrow'); return [r.querySelector('.bar').className, r.querySelector('.ms').textContent, document.getElementById('detail').innerText]; })()"
    )
    assert "bar internal open" == root[0]
    assert root[1].endswith("(never ended)")
    assert "never ended (last line known)" in root[2]
    assert [] == browser.console


def test_an_empty_log_gives_a_page_that_says_so(tmp_path: Path, browser: Browser) -> None:
    """No traces: the page still opens, says there are none, and the console stays clean."""
    log = tmp_path / "empty.jsonl"
    log.touch()
    page = tmp_path / "empty.html"
    assert (0, f"0 traces written to {page}\n", "") == run_cli(["html", str(log), "-o", str(page)])
    browser.console.clear()
    browser.open(page)
    assert "0 of 0 traces" == browser.evaluate("document.getElementById('count').textContent")
    assert "No traces." == browser.evaluate("document.getElementById('waterfall').textContent")
    assert [] == browser.console


@pytest.mark.log_schema_exempt("copies of the demo's lines with new ids, made by the test")
def test_ten_thousand_traces(tmp_path: Path, browser: Browser) -> None:
    """A day's file of 10,000 traces: the page is written, opens, sorts and filters in Chromium with a clean console (times kept beside the screenshot)."""
    source = tmp_path / "shop.jsonl"
    handler = TraceHandler(log_path=source, service_name="flower-shop", capture_content=False)
    try:
        run_demo(handler)
    finally:
        handler.close()
    lines = [orjson.loads(raw) for raw in source.read_bytes().splitlines()]
    big = tmp_path / "day.jsonl"
    with open(big, "wb") as out:
        for _ in range(2000):
            ids: dict[str, str] = {}
            for line in lines:
                copy = dict(line)
                for key, bits in (("trace.id", 128), ("span.id", 64), ("parent.id", 64)):
                    if key in copy:
                        copy[key] = ids.setdefault(copy[key], format(random.getrandbits(bits), f"0{bits // 4}x"))
                out.write(orjson.dumps(copy) + b"\n")
    page = tmp_path / "day.html"
    assert 0 == run_cli(["html", str(big), "-o", str(page)])[0]
    browser.console.clear()
    seconds = browser.open(page, timeout_s=120)
    timings: dict[str, Any] = browser.evaluate(
        """(() => {
             const t0 = performance.now();
             document.querySelector('#list-head span[data-key="2"]').click();
             const t1 = performance.now();
             document.getElementById('filter').value = 'florist'; lcTrace.applyView();
             const t2 = performance.now();
             lcTrace.pickTrace(document.querySelector('.trow').dataset.trace);
             const t3 = performance.now();
             return {sort_ms: t1 - t0, filter_ms: t2 - t1, open_trace_ms: t3 - t2,
                     count: document.getElementById('count').textContent,
                     rows_in_dom: document.querySelectorAll('.trow').length};
           })()"""
    )
    assert "2000 of 10000 traces" == timings["count"]
    assert timings["rows_in_dom"] < 100  # only the rows in view are drawn
    assert [] == browser.console
    # Every trace is listed; the spans of the newest 1,000 are in the page, an older one's row says how to see it.
    data = json.loads(page.read_text(encoding="utf-8").split('type="application/json">')[1].split("</script>")[0])
    newest = sorted(data["rows"], key=lambda row: row[1])[-1000:]
    assert {row[0] for row in newest} == set(data["details"])
    assert "spans in this page: the newest 1000 traces'" == browser.evaluate(
        "document.getElementById('details-note').textContent"
    )
    oldest = min(data["rows"], key=lambda row: row[1])[0]
    browser.evaluate(f"lcTrace.pickTrace('{oldest}')")
    note = browser.evaluate("document.getElementById('waterfall').innerText")
    assert f"lc-trace show {oldest}" in note and "newest 1000 of 10000 traces" in note
    assert [] == browser.console
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(ARTIFACTS / "ten-thousand-traces.png")
    timings.update(load_s=round(seconds, 2), page_mib=round(page.stat().st_size / 2**20, 1))
    (ARTIFACTS / "ten-thousand-traces.json").write_text(json.dumps(timings, indent=2), encoding="utf-8")
    assert seconds < 60  # a generous bound: the figures are in the artefact


def test_a_failure_passed_up_is_one_error_and_every_failed_span_is_red(tmp_path: Path, browser: Browser) -> None:
    """An agent whose tool raises: the list says 1 error, the waterfall draws the tool, the `tools` node and the agent in red, and the agent's pane says it passed the tool's failure up."""
    log = failing_agent_log(tmp_path / "lc_trace.jsonl")
    page = tmp_path / "page.html"
    assert 0 == run_cli(["html", str(log), "-o", str(page)])[0]
    browser.console.clear()
    browser.open(page)
    agent = next(line["trace.id"] for line in read_log(log) if line["langchain.run.name"] == "florist")
    errors = browser.evaluate(
        f"[...document.querySelectorAll('.trow')].find(r => r.dataset.trace === '{agent}').children[7].textContent"
    )
    assert "1" == errors
    browser.evaluate(f"lcTrace.pickTrace('{agent}')")
    red = browser.evaluate(
        "[...document.querySelectorAll('.wrow')].filter(r => r.querySelector('.bar.error')).map(r => r.querySelector('.label').textContent)"
    )
    assert ["invoke_agent florist", "tools", "execute_tool broken_vase"] == red
    detail = browser.evaluate("document.getElementById('detail').innerText")
    assert "error, passed up from tools (one failure: counted once, where it happened)" in detail
    assert [] == browser.console
