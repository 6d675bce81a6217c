"""
``lc-trace html``: one self-contained HTML page of a log's traces, to open from a file anywhere.

No network, no CDN: the styles, the script and the data are all in the page. The trace list
(root, service, start, duration, runs, tokens, errors) holds every trace that passes the
filters, is sortable and filterable, and draws only the rows in view, so a day's file stays
quick. The spans of the newest traces (``DEFAULT_DETAILS``, or as many as asked) are in the page
too, a JSON string each parsed only when that trace is opened: a waterfall (bars placed by start
and sized by duration, nested by parent, failures in red, events as ticks) and a detail pane
(attributes, content, events, error and stack trace). An older trace's row says how to get its
spans (``lc-trace html ID``, ``lc-trace show ID``): a page of a whole rotation's 600 MB stays
tens of MB, not the log's size. Data reaches the page as JSON in a non-executed script element
and is only ever set as text, never as markup.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import orjson

from lc_trace import _attributes as A
from lc_trace._read._runs import RunView, TraceView

__all__ = ["DEFAULT_DETAILS", "page_row", "render_page", "trace_details"]

DEFAULT_DETAILS = 1000  # traces whose spans the page holds: ~10-20 kB each
_DEFAULT_MAX_VALUE_CHARS = 4000  # per attribute in the page; the log keeps the whole value
_ERROR_KEYS = (A.ERROR_TYPE, A.ERROR_MESSAGE, A.ERROR_STACK_TRACE)


class _Row(Protocol):
    """
    What a list row shows: a ``TraceSummary`` or a ``TraceView``.
    """

    trace_id: str
    first_ns: int

    @property
    def duration_ns(self) -> int: ...

    @property
    def root_name(self) -> str: ...

    @property
    def service(self) -> str: ...

    @property
    def run_count(self) -> int: ...

    @property
    def errors(self) -> int: ...

    def tokens(self) -> tuple[int, int]: ...


def page_row(trace: _Row) -> list[Any]:
    """
    A trace's row in the list.
    """
    tokens_in, tokens_out = trace.tokens()
    return [
        trace.trace_id,
        trace.first_ns // 1_000_000,
        round(trace.duration_ns / 1e6, 3),
        trace.root_name,
        trace.service,
        trace.run_count,
        tokens_in,
        tokens_out,
        trace.errors,
    ]


def trace_details(trace: TraceView, max_value_chars: int = _DEFAULT_MAX_VALUE_CHARS) -> str:
    """
    A trace's spans as the page's JSON text (parsed in the browser only when it is opened).
    """
    return orjson.dumps(list(_spans(trace, max_value_chars))).decode()


def render_page(rows: Sequence[list[Any]], details: Mapping[str, str], title: str) -> str:
    """
    The page: the list of *rows*, and the spans of the traces in *details*, as one string.
    """
    data = orjson.dumps({"rows": rows, "details": details, "detailCount": len(details)}).decode()
    data = data.replace("<", "\\u003c")  # never "</script>" inside the element
    return _PAGE.replace("%TITLE%", html.escape(title)).replace("%DATA%", data)


def _spans(trace: TraceView, limit: int) -> Iterator[list[Any]]:
    """
    The trace's runs depth first (siblings by start): what the waterfall row and the detail
    pane of each need; times in milliseconds from the trace's start.
    """
    origin = min((run.start_ns for run in trace.runs.values()), default=trace.first_ns)
    stack: list[tuple[int, RunView]] = [(0, root) for root in reversed(trace.roots)]
    while stack:
        depth, run = stack.pop()
        attributes = {k: _cut(v, limit) for k, v in run.attributes().items()}
        content = {k: attributes.pop(k) for k in list(attributes) if k in A.CONTENT_KEYS}
        error = {k: attributes.pop(k) for k in _ERROR_KEYS if k in attributes}
        events = [
            [
                line.action,
                round((line.time_ns - origin) / 1e6, 3),
                {k: _cut(v, limit) for k, v in run.event_attributes(line).items()},
            ]
            for line in run.events
        ]
        status = "error" if run.failed else "open" if run.end is None else "ok"
        passed_up = run.passed_up_from
        yield [
            run.span_id,
            depth,
            run.span_name or run.name,
            run.run_type,
            (run.span_kind or "INTERNAL").lower(),
            round((run.start_ns - origin) / 1e6, 3),
            round(run.duration_ns / 1e6, 3),
            status,
            attributes,
            content,
            events,
            error,
            (passed_up.span_name or passed_up.name) if passed_up is not None else None,
        ]
        stack.extend((depth + 1, child) for child in reversed(run.children))


def _cut(value: Any, limit: int) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"…[{len(value) - limit} more chars in the log]"
    return value


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%TITLE%</title>
<style>
:root { --row: 24px; --fg: #1d2330; --muted: #6b7385; --line: #e3e6ec; --pick: #e8f0fe; --bar: #4c7bd9; --client: #2f9e76; --err: #d64545; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); display: flex; flex-direction: column; height: 100vh; }
header { padding: 8px 12px; border-bottom: 1px solid var(--line); display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
header h1 { font-size: 15px; margin: 0; font-weight: 600; }
header input[type=search] { width: 280px; padding: 3px 6px; }
#count, #details-note { color: var(--muted); }
#list { height: 34vh; min-height: 140px; border-bottom: 1px solid var(--line); display: flex; flex-direction: column; }
.grid { display: grid; grid-template-columns: 170px minmax(120px, 2fr) minmax(90px, 1fr) 150px 80px 50px 110px 56px; gap: 0 10px; padding: 0 12px; align-items: center; }
#list-head { border-bottom: 1px solid var(--line); height: var(--row); user-select: none; }
#list-head span { cursor: pointer; white-space: nowrap; font-weight: 600; }
#list-head span.sorted::after { content: " \\25BE"; }
#list-head span.sorted.up::after { content: " \\25B4"; }
#list-body { flex: 1; overflow-y: auto; position: relative; }
#list-spacer { position: relative; }
.trow { position: absolute; left: 0; right: 0; height: var(--row); cursor: pointer; white-space: nowrap; }
.trow:hover { background: #f5f7fa; }
.trow.picked { background: var(--pick); }
.trow span, .wrow .label { overflow: hidden; text-overflow: ellipsis; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.bad { color: var(--err); font-weight: 600; }
main { flex: 1; display: flex; min-height: 0; }
#waterfall { flex: 3; overflow: auto; border-right: 1px solid var(--line); padding: 6px 0; }
#detail { flex: 2; overflow: auto; padding: 8px 12px; }
#wf-title { padding: 0 12px 6px; font-weight: 600; }
.wrow { display: grid; grid-template-columns: 38% 1fr; height: 22px; align-items: center; cursor: pointer; padding: 0 12px; }
.wrow:hover { background: #f5f7fa; }
.wrow.picked { background: var(--pick); }
.wrow .label { white-space: nowrap; }
.track { position: relative; height: 14px; margin-right: 76px; }
.bar { position: absolute; top: 0; height: 14px; min-width: 1px; background: var(--bar); border-radius: 2px; }
.bar.client { background: var(--client); }
.bar.error { background: var(--err); }
.bar.open { background: repeating-linear-gradient(45deg, #999, #999 4px, #bbb 4px, #bbb 8px); }
.tick { position: absolute; top: -2px; width: 2px; height: 18px; background: #f0a020; }
.ms { position: absolute; top: -1px; font-size: 11px; color: var(--muted); white-space: nowrap; padding-left: 4px; }
#detail h2 { font-size: 14px; margin: 0 0 6px; }
#detail h3 { font-size: 12px; margin: 12px 0 4px; text-transform: uppercase; color: var(--muted); }
#detail table { border-collapse: collapse; width: 100%; }
#detail td { border-bottom: 1px solid var(--line); padding: 2px 4px; vertical-align: top; word-break: break-word; }
#detail td:first-child { color: var(--muted); width: 38%; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f8fa; padding: 6px; margin: 0 0 6px; max-height: 320px; overflow: auto; }
pre.stack { background: #fdf0f0; }
.empty { color: var(--muted); padding: 12px; }
</style>
</head>
<body>
<header>
  <h1>%TITLE%</h1>
  <input type="search" id="filter" placeholder="filter: trace id, root, service" aria-label="filter traces">
  <label><input type="checkbox" id="errors-only"> errors only</label>
  <span id="count"></span>
  <span id="details-note"></span>
</header>
<section id="list">
  <div id="list-head" class="grid">
    <span data-key="0">trace</span><span data-key="3">root</span><span data-key="4">service</span>
    <span data-key="1">started (UTC)</span><span data-key="2" class="num">duration</span><span data-key="5" class="num">runs</span>
    <span data-key="6" class="num">tokens in/out</span><span data-key="8" class="num">errors</span>
  </div>
  <div id="list-body"><div id="list-spacer"></div></div>
</section>
<main>
  <section id="waterfall"><div class="empty">Pick a trace.</div></section>
  <section id="detail"><div class="empty">Pick a span.</div></section>
</main>
<script id="lc-data" type="application/json">%DATA%</script>
<script>
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("lc-data").textContent);
  const ROWS = DATA.rows;
  const body = document.getElementById("list-body");
  const spacer = document.getElementById("list-spacer");
  const count = document.getElementById("count");
  const rowHeight = 24;
  let shown = ROWS.slice();
  let sortKey = 1, sortUp = false, picked = null;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = String(text);
    return node;
  }
  function ms(value) {
    return value >= 1000 ? (value / 1000).toFixed(2) + " s" : value.toFixed(1) + " ms";
  }
  function clock(epochMs) {
    return new Date(epochMs).toISOString().replace("T", " ").slice(0, 19);
  }

  function applyView() {
    const text = document.getElementById("filter").value.trim().toLowerCase();
    const errorsOnly = document.getElementById("errors-only").checked;
    shown = ROWS.filter(function (r) {
      if (errorsOnly && !r[8]) return false;
      return !text || r[0].startsWith(text) || r[3].toLowerCase().includes(text) || r[4].toLowerCase().includes(text);
    });
    const key = sortKey, sign = sortUp ? 1 : -1;
    shown.sort(function (a, b) {
      const x = key === 6 ? a[6] + a[7] : a[key], y = key === 6 ? b[6] + b[7] : b[key];
      return (x < y ? -1 : x > y ? 1 : 0) * sign;
    });
    document.querySelectorAll("#list-head span").forEach(function (s) {
      s.classList.toggle("sorted", Number(s.dataset.key) === sortKey);
      s.classList.toggle("up", sortUp);
    });
    count.textContent = shown.length + " of " + ROWS.length + " traces";
    spacer.style.height = shown.length * rowHeight + "px";
    drawRows();
  }

  function drawRows() {
    const first = Math.max(0, Math.floor(body.scrollTop / rowHeight) - 5);
    const last = Math.min(shown.length, first + Math.ceil(body.clientHeight / rowHeight) + 10);
    spacer.replaceChildren();
    for (let i = first; i < last; i++) {
      const r = shown[i];
      const row = el("div", "trow grid");
      row.style.top = i * rowHeight + "px";
      row.dataset.trace = r[0];
      if (r[0] === picked) row.classList.add("picked");
      row.append(
        el("span", "mono", r[0].slice(0, 16) + "…"), el("span", "", r[3]), el("span", "", r[4]),
        el("span", "mono", clock(r[1])), el("span", "num", ms(r[2])), el("span", "num", r[5]),
        el("span", "num", r[6] + " / " + r[7]), el("span", "num" + (r[8] ? " bad" : ""), r[8])
      );
      spacer.append(row);
    }
  }

  function pickTrace(traceId) {
    picked = traceId;
    drawRows();
    const row = ROWS.find(function (r) { return r[0] === traceId; });
    if (!(traceId in DATA.details)) {  // an older trace: its row only (the page keeps the newest traces' spans)
      const pane = document.getElementById("waterfall");
      const note = el("div", "empty", "");
      note.id = "no-details";
      note.append(el("div", "mono", traceId), el("div", "", "This page holds the spans of the newest " +
        DATA.detailCount + " of " + ROWS.length + " traces, not this one's. To see it: lc-trace show " +
        traceId + "   or   lc-trace html " + traceId));
      pane.replaceChildren(note);
      document.getElementById("detail").replaceChildren(el("div", "empty", "Pick a trace whose spans are in the page."));
      if (location.hash !== "#" + traceId) history.replaceState(null, "", "#" + traceId);
      return;
    }
    const spans = JSON.parse(DATA.details[traceId]);
    const total = Math.max.apply(null, spans.map(function (s) { return s[5] + s[6]; }).concat([0.001]));
    const pane = document.getElementById("waterfall");
    pane.replaceChildren(el("div", "", ""));
    const title = el("div", "", "");
    title.id = "wf-title";
    title.append(el("span", "mono", traceId), el("span", "", "  " + row[3] + " · " + spans.length + " spans · " + ms(total)));
    pane.replaceChildren(title);
    spans.forEach(function (s, index) {
      const line = el("div", "wrow");
      line.dataset.span = s[0];
      const label = el("div", "label", s[2]);
      label.style.paddingLeft = s[1] * 14 + "px";
      label.title = s[2] + " (" + s[3] + ")";
      const track = el("div", "track");
      const bar = el("div", "bar " + s[4] + (s[7] === "error" ? " error" : s[7] === "open" ? " open" : ""));
      bar.style.left = (s[5] / total) * 100 + "%";
      bar.style.width = (s[6] / total) * 100 + "%";
      bar.dataset.durationMs = s[6];
      const note = el("span", "ms", ms(s[6]) + (s[7] === "open" ? " (never ended)" : ""));
      note.style.left = ((s[5] + s[6]) / total) * 100 + "%";
      track.append(bar, note);
      s[10].forEach(function (e) {  // the run's events (custom events, agent actions...) as ticks
        const tick = el("div", "tick");
        tick.style.left = (e[1] / total) * 100 + "%";
        tick.title = e[0] + " at " + ms(e[1]);
        track.append(tick);
      });
      line.append(label, track);
      line.addEventListener("click", function () { pickSpan(spans, index); });
      pane.append(line);
    });
    pickSpan(spans, 0);
    if (location.hash !== "#" + traceId) history.replaceState(null, "", "#" + traceId);
  }

  function table(object) {
    const t = el("table");
    Object.keys(object).sort().forEach(function (k) {
      const tr = el("tr");
      const v = object[k];
      tr.append(el("td", "mono", k), el("td", "", typeof v === "object" ? JSON.stringify(v) : v));
      t.append(tr);
    });
    return t;
  }
  function pretty(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return String(text); }
  }

  function pickSpan(spans, index) {
    document.querySelectorAll(".wrow").forEach(function (r, i) { r.classList.toggle("picked", i === index); });
    const s = spans[index];
    const pane = document.getElementById("detail");
    pane.replaceChildren(el("h2", "", s[2]));
    const status = s[7] === "open" ? "never ended (last line known)"
      : s[12] ? "error, passed up from " + s[12] + " (one failure: counted once, where it happened)" : s[7];
    const facts = { "run type": s[3], kind: s[4], status: status,
                    "starts at": ms(s[5]), duration: ms(s[6]), "span id": s[0] };
    pane.append(table(facts));
    if (Object.keys(s[11]).length) {
      pane.append(el("h3", "", "error"));
      pane.append(el("pre", "bad", (s[11]["error.type"] || "") + ": " + (s[11]["error.message"] || "")));
      if (s[11]["error.stack_trace"]) pane.append(el("pre", "stack mono", s[11]["error.stack_trace"]));
    }
    pane.append(el("h3", "", "attributes"), table(s[8]));
    const content = Object.keys(s[9]).sort();
    if (content.length) {
      pane.append(el("h3", "", "content"));
      content.forEach(function (k) { pane.append(el("div", "mono", k), el("pre", "mono", pretty(s[9][k]))); });
    }
    if (s[10].length) {
      pane.append(el("h3", "", "events"));
      s[10].forEach(function (e) {
        pane.append(el("div", "", e[0] + " at " + ms(e[1])), table(e[2]));
      });
    }
  }

  document.getElementById("list-head").addEventListener("click", function (event) {
    const key = event.target.dataset && event.target.dataset.key;
    if (key === undefined) return;
    if (Number(key) === sortKey) sortUp = !sortUp; else { sortKey = Number(key); sortUp = key === "0" || key === "3" || key === "4"; }
    applyView();
  });
  spacer.addEventListener("click", function (event) {
    const row = event.target.closest(".trow");
    if (row) pickTrace(row.dataset.trace);
  });
  body.addEventListener("scroll", drawRows);
  window.addEventListener("resize", drawRows);
  document.getElementById("filter").addEventListener("input", applyView);
  document.getElementById("errors-only").addEventListener("change", applyView);
  window.lcTrace = { pickTrace: pickTrace, applyView: applyView };

  if (DATA.detailCount < ROWS.length) {
    document.getElementById("details-note").textContent = "spans in this page: the newest " + DATA.detailCount + " traces'";
  }
  applyView();
  const wanted = location.hash.slice(1);
  if (wanted && ROWS.some(function (r) { return r[0] === wanted; })) pickTrace(wanted);
  else if (shown.length) pickTrace(shown[0][0]);
  else document.getElementById("waterfall").replaceChildren(el("div", "empty", "No traces."));
})();
</script>
</body>
</html>
"""
