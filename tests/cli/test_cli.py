"""
Tests for ``lc-trace`` (``lc_trace._cli``) and the flower-shop demo it runs (``lc_trace._cli._demo``).

Every test runs the real thing in-process: the demo drives real langchain-core runnables with
FakeChatModel, the handler writes a real log file, and the viewer reads it back.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import tool
from opentelemetry.trace import StatusCode

from lc_trace import TraceHandler
from lc_trace._cli import main
from lc_trace._cli._demo import run_demo
from lc_trace.testing import FakeChatModel, in_memory_tracing, read_log
from tests.conftest import REPO
from tests.shutdown.receiver import Receiver

EXPECTED_ACTIONS = {
    "chain_start", "chain_end", "llm_start", "llm_end", "tool_start", "tool_end", "tool_error",
    "retriever_start", "retriever_end", "custom_event", "agent_action", "agent_finish",
}  # fmt: skip


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """
    ``main(argv)`` with its exit code, stdout and stderr.
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def trace_ids_by_root(log: list[dict[str, Any]]) -> dict[str, list[str]]:
    """
    Trace ids of the log, keyed by the name of their root run, in the order they started.
    """
    found: dict[str, list[str]] = {}
    for line in log:
        if line["event.action"] == "chain_start" and "langchain.run.parent_id" not in line:
            found.setdefault(line["langchain.run.name"], []).append(line["trace.id"])
    return found


def tokens_of(log: list[dict[str, Any]], trace_id: str) -> tuple[int, int]:
    """
    Input and output tokens the log's llm_end lines report for one trace.
    """
    ends = [x for x in log if x["event.action"] == "llm_end" and x["trace.id"] == trace_id]
    return sum(x["gen_ai.usage.input_tokens"] for x in ends), sum(x["gen_ai.usage.output_tokens"] for x in ends)


def show(trace_id: str, path: Path) -> list[str]:
    """
    The lines ``lc-trace show`` prints for one trace (it must succeed).
    """
    code, out, err = run_cli(["show", trace_id, str(path)])
    assert (0, "") == (code, err)
    return out.splitlines()


@pytest.fixture(autouse=True)
def no_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    The demo stays offline even where the environment names an OTLP collector.
    """
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """
    One ``lc-trace demo`` run: its log file and what it printed.
    """
    path = tmp_path_factory.mktemp("demo") / "shop.jsonl"
    with pytest.MonkeyPatch.context() as env:
        env.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
        code, out, err = run_cli(["demo", "--log-path", str(path)])
    assert (0, "") == (code, err)
    return path, out


@pytest.fixture
def log(demo: tuple[Path, str]) -> list[dict[str, Any]]:
    """
    The demo's log lines, parsed.
    """
    return read_log(demo[0])


class TestDemoCommand:
    def test_log_lines_are_json_with_trace_and_span_ids(self, demo: tuple[Path, str]) -> None:
        """Every line the demo writes is a JSON object that carries a 32-hex trace id and a 16-hex span id."""
        lines = demo[0].read_text(encoding="utf-8").splitlines()
        assert len(lines) > 50
        for text in lines:
            line = json.loads(text)
            assert re.fullmatch(r"[0-9a-f]{32}", line["trace.id"])
            assert re.fullmatch(r"[0-9a-f]{16}", line["span.id"])
            assert "flower-shop" == line["service.name"]

    def test_log_has_every_kind_of_event(self, log: list[dict[str, Any]]) -> None:
        """The demo exercises chains, a model, tools, a retriever, custom events and an agent, and one tool fails."""
        assert EXPECTED_ACTIONS <= {line["event.action"] for line in log}
        [failure] = [line for line in log if line["event.action"] == "tool_error"]
        assert ("book_delivery", "ConnectionError", "failure") == (
            failure["gen_ai.tool.name"],
            failure["error.type"],
            failure["event.outcome"],
        )
        events = {line["langchain.event.name"] for line in log if line["event.action"] == "custom_event"}
        assert {"order_progress", "question_received"} == events

    def test_streamed_model_reports_usage(self, log: list[dict[str, Any]]) -> None:
        """The greeting card is streamed, and its model's end line still has the token usage."""
        trace_id = trace_ids_by_root(log)["greeting_card"][0]
        [end] = [x for x in log if x["trace.id"] == trace_id and x["event.action"] == "llm_end"]
        assert (True, 9, 9) == (
            end["gen_ai.request.stream"],
            end["gen_ai.usage.input_tokens"],
            end["gen_ai.usage.output_tokens"],
        )
        assert end["langchain.stream.chunk_count"] > 1

    def test_prints_the_conversation_log_path_and_summary(
        self, demo: tuple[Path, str], log: list[dict[str, Any]]
    ) -> None:
        """The demo prints the shop's answers, the log file's path, and one summary line per trace it wrote."""
        path, out = demo
        assert "order: Twelve roses are 60 yuan" in out
        assert f"log file: {path}" in out
        roots = trace_ids_by_root(log)
        assert [1, 1, 3] == [len(roots[name]) for name in ("greeting_card", "florist_agent", "ask_the_catalog")]
        agent_id = roots["florist_agent"][0]
        [agent_line] = [x for x in out.splitlines() if x.startswith(agent_id)]
        tokens_in, tokens_out = tokens_of(log, agent_id)
        assert ["florist_agent", "7", f"{tokens_in}/{tokens_out}", "1"] == [agent_line.split()[i] for i in (3, 4, 7, 8)]
        assert f"lc-trace show {agent_id[:8]} {path}" in out
        assert f"lc-trace html {path} -o traces.html" in out
        assert "5 traces written" in out

    def test_second_run_in_one_process_appends_and_summarises_only_its_own(self, tmp_path: Path) -> None:
        """Running the demo twice in one process works, appends to the file, and each summary lists only that run's traces."""
        path = tmp_path / "twice.jsonl"
        first, second = run_cli(["demo", "--log-path", str(path)]), run_cli(["demo", "--log-path", str(path)])
        assert (0, 0) == (first[0], second[0])
        assert "5 traces written" in second[1]
        assert 10 == len({line["trace.id"] for line in read_log(path)})

    def test_default_log_path_is_under_the_working_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With no --log-path and no LC_TRACE_LOG_PATH the demo writes ./lc_trace_logs/lc_trace.jsonl, where `traces` finds it."""
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("LC_TRACE_LOG_PATH", raising=False)
        assert 0 == run_cli(["demo"])[0]
        assert (tmp_path / "lc_trace_logs" / "lc_trace.jsonl").is_file()
        code, out, _ = run_cli(["traces"])
        assert 0 == code
        assert 6 == len(out.splitlines())  # a header and five traces


class TestTracesCommand:
    def test_one_line_per_trace_newest_last(self, demo: tuple[Path, str], log: list[dict[str, Any]]) -> None:
        """`traces` lists each trace once, in the order they started, with its root run, run count and tokens."""
        code, out, err = run_cli(["traces", str(demo[0])])
        assert (0, "") == (code, err)
        header, *rows = out.splitlines()
        assert header.startswith("TRACE ID")
        assert ["greeting_card", "florist_agent", "ask_the_catalog", "ask_the_catalog", "ask_the_catalog"] == [
            r.split()[3] for r in rows
        ]
        card = rows[0].split()
        assert [trace_ids_by_root(log)["greeting_card"][0], "4", "9/9", "0"] == [card[0], card[4], card[7], card[8]]

    def test_last_n(self, demo: tuple[Path, str]) -> None:
        """`--last 2` keeps only the two newest traces."""
        code, out, _ = run_cli(["traces", str(demo[0]), "--last", "2"])
        assert 0 == code
        assert ["ask_the_catalog", "ask_the_catalog"] == [row.split()[3] for row in out.splitlines()[1:]]

    def test_rotated_files_are_read_oldest_first(self, demo: tuple[Path, str], tmp_path: Path) -> None:
        """A log rotated into PATH.2, PATH.1 and PATH, even mid-trace, lists the same traces as the unrotated file."""
        lines = demo[0].read_text(encoding="utf-8").splitlines(keepends=True)
        path = tmp_path / "rotated.jsonl"
        third = len(lines) // 3
        Path(f"{path}.2").write_text("".join(lines[:third]), encoding="utf-8")
        Path(f"{path}.1").write_text("".join(lines[third : 2 * third]), encoding="utf-8")
        path.write_text("".join(lines[2 * third :]), encoding="utf-8")
        assert run_cli(["traces", str(demo[0])]) == run_cli(["traces", str(path)])

    def test_missing_file_is_a_clear_error(self, tmp_path: Path) -> None:
        """A log file that does not exist gives exit code 2 and a one-line message naming it, not a traceback."""
        missing = tmp_path / "nowhere.jsonl"
        code, out, err = run_cli(["traces", str(missing)])
        assert (2, "") == (code, out)
        assert 1 == len(err.splitlines())
        assert err.startswith(f"lc-trace: no log file at {missing} (pass PATH")

    def test_default_path_comes_from_the_environment(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without PATH, `traces` reads $LC_TRACE_LOG_PATH, and says so when that file is missing."""
        missing = tmp_path / "env.jsonl"
        monkeypatch.setenv("LC_TRACE_LOG_PATH", str(missing))
        code, _, err = run_cli(["traces"])
        assert 2 == code
        assert str(missing) in err

    @pytest.mark.log_schema_exempt(
        "a crash's torn last line, written on purpose", files=["crashed.jsonl"], torn_tail=True
    )
    def test_truncated_last_line_is_skipped_and_counted(self, demo: tuple[Path, str], tmp_path: Path) -> None:
        """A last line cut short by a crash is skipped with a note on stderr, and the rest of the file is still read."""
        path = tmp_path / "crashed.jsonl"
        text = demo[0].read_text(encoding="utf-8")
        path.write_text(text[: len(text) - 40], encoding="utf-8")
        code, out, err = run_cli(["traces", str(path)])
        assert 0 == code
        assert "skipped 1 invalid line(s)" in err
        assert 5 == len(out.splitlines()[1:])

    @pytest.mark.log_schema_exempt(
        "a crash's torn last line, written on purpose", files=["crashed.jsonl"], torn_tail=True
    )
    def test_run_whose_end_was_lost_is_shown_as_open(self, demo: tuple[Path, str], tmp_path: Path) -> None:
        """When the truncated line was a root's end, `show` still draws the tree and says that run has no end."""
        lines = demo[0].read_text(encoding="utf-8").splitlines(keepends=True)
        last = json.loads(lines[-1])
        path = tmp_path / "crashed.jsonl"
        path.write_text("".join(lines[:-1]) + lines[-1][:30], encoding="utf-8")
        code, out, err = run_cli(["show", last["trace.id"], str(path)])
        assert 0 == code
        assert "skipped 1 invalid line(s)" in err
        assert out.splitlines()[1].startswith(f"{last['langchain.run.name']} [chain]  no end recorded")

    def test_empty_file_has_no_traces(self, tmp_path: Path) -> None:
        """An empty log file is not an error: `traces` says there are none."""
        path = tmp_path / "empty.jsonl"
        path.touch()
        assert (0, f"no traces in {path}\n", "") == run_cli(["traces", str(path)])


class TestShowCommand:
    def test_agent_tree(self, demo: tuple[Path, str], log: list[dict[str, Any]]) -> None:
        """The agent's trace nests its model calls and tools under it, lists its actions and custom events, and shows the failing tool's error."""
        agent_id = trace_ids_by_root(log)["florist_agent"][0]
        header, root, *children = show(agent_id[:8], demo[0])
        assert header.startswith(f"trace {agent_id}")
        assert root.startswith("florist_agent [agent]  chain_end success")
        assert all(line.startswith("  ") and not line.startswith("   ") for line in children)
        runs = [line.split()[0] for line in children if not line.lstrip().startswith("*")]
        assert [
            "FakeChatModel",
            "flower_price",
            "check_stock",
            "FakeChatModel",
            "book_delivery",
            "FakeChatModel",
        ] == runs
        [failed] = [line for line in children if line.lstrip().startswith("book_delivery")]
        assert "tool_error failure" in failed
        assert failed.endswith("error ConnectionError: courier service unreachable (address: 12 Garden Road)")
        events = [line.split()[1:3] for line in children if line.lstrip().startswith("*")]
        assert [
            ["agent_action", "flower_price"],
            ["agent_action", "check_stock"],
            ["custom_event", "order_progress"],
        ] == events[:3]
        assert ["agent_finish"] == events[-1][:1]

    def test_model_lines_carry_model_and_tokens(self, demo: tuple[Path, str], log: list[dict[str, Any]]) -> None:
        """Each model call shows the model that answered and its token counts, which add up to the trace's total."""
        agent_id = trace_ids_by_root(log)["florist_agent"][0]
        lines = show(agent_id, demo[0])
        models = [line for line in lines if line.lstrip().startswith("FakeChatModel")]
        counts = [tuple(map(int, re.search(r"tokens (\d+) in / (\d+) out", line).groups())) for line in models]  # type: ignore[union-attr]
        assert all("model fake-chat-1-2026-11-01" in line for line in models)
        assert tokens_of(log, agent_id) == (sum(c[0] for c in counts), sum(c[1] for c in counts))
        assert f"tokens {sum(c[0] for c in counts)} in / {sum(c[1] for c in counts)} out  1 error(s)" in lines[0]

    def test_retrieval_chain_nesting(self, demo: tuple[Path, str], log: list[dict[str, Any]]) -> None:
        """In a catalog question the retriever sits three levels down and the custom event under the step that sent it."""
        trace_id = trace_ids_by_root(log)["ask_the_catalog"][0]
        tree = [(len(line) - len(line.lstrip()), line.split()[0:3]) for line in show(trace_id, demo[0])[1:]]
        assert (0, ["ask_the_catalog", "[chain]", "chain_end"]) == tree[0]
        assert (4, ["*", "custom_event", "question_received"]) == tree[2]
        assert (6, ["FlowerCatalog", "[retriever]", "retriever_end"]) in tree
        assert (2, ["FakeChatModel", "[chat_model]", "llm_end"]) in tree

    @pytest.mark.log_schema_exempt(
        "hand-written minimal lines for the viewer, not lc_trace's output", files=["two.jsonl"]
    )
    def test_unknown_or_ambiguous_prefix(self, tmp_path: Path) -> None:
        """A prefix that matches no trace, or more than one, exits 1 and says which."""
        path = tmp_path / "two.jsonl"
        lines = [
            {
                "@timestamp": "2026-01-01T00:00:00.000000Z",
                "event.action": "chain_start",
                "trace.id": trace_id,
                "span.id": "0" * 16,
                "langchain.run.id": trace_id,
                "langchain.run.name": "x",
            }
            for trace_id in ("abc1" + "0" * 28, "abc2" + "0" * 28)
        ]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
        code, _, err = run_cli(["show", "abc", str(path)])
        assert 1 == code
        assert "'abc' matches 2 traces" in err
        code, _, err = run_cli(["show", "fff", str(path)])
        assert (1, "lc-trace: no trace id starts with 'fff'\n") == (code, err)
        assert "abc2" + "0" * 28 in show("ABC2", path)[0]


class TestTailCommand:
    def test_last_lines(self, demo: tuple[Path, str], log: list[dict[str, Any]]) -> None:
        """`tail -n 3` prints the file's last three lines, one short line each."""
        code, out, _ = run_cli(["tail", str(demo[0]), "-n", "3"])
        assert 0 == code
        assert [line["message"] for line in log[-3:]] == [re.split(r"  +", row)[3] for row in out.splitlines()]


class TestUsage:
    def test_no_command_is_a_usage_error(self) -> None:
        """`lc-trace` with no command exits 2 with argparse's usage message."""
        code, _, err = run_cli([])
        assert 2 == code
        assert "usage: lc-trace" in err

    def test_version_is_the_installed_package_version(self) -> None:
        """`lc-trace --version` prints the version in the package's metadata, and exits 0."""
        done = subprocess.run(
            [sys.executable, "-m", "lc_trace", "--version"], capture_output=True, text=True, cwd=REPO, check=False
        )
        assert (0, f"lc-trace {importlib.metadata.version('lc_trace')}\n", "") == (
            done.returncode,
            done.stdout,
            done.stderr,
        )

    def test_usage_prices_the_calls_and_only_usage_loads_the_price_table(
        self, demo: tuple[Path, str], log: list[dict[str, Any]]
    ) -> None:
        """In a fresh interpreter, `lc-trace usage` prints a cost column and why the demo's calls have no price (its
        FakeChatModel is in no price table); `lc-trace traces` does not load genai-prices (~150 ms, ~22 MB)."""
        path, _ = demo
        calls = sum(1 for line in log if line["event.action"] == "llm_end")
        script = (
            "import sys\nfrom lc_trace._cli import main\n"
            "code = main(sys.argv[1:])\n"
            "print('genai_prices loaded:', 'genai_prices' in sys.modules)\n"
            "sys.exit(code)\n"
        )
        loaded = {}
        for command in ("traces", "usage"):
            done = subprocess.run(
                [sys.executable, "-c", script, command, str(path)],
                capture_output=True,
                text=True,
                cwd=REPO,
                check=False,
            )
            assert (0, "") == (done.returncode, done.stderr)
            lines = done.stdout.splitlines()
            loaded[command] = lines[-1]
        assert {"traces": "genai_prices loaded: False", "usage": "genai_prices loaded: True"} == loaded
        assert lines[0].endswith("COST USD ")
        assert f"  {calls:>6}  model or provider not in genai-prices' table: fake/fake-chat-1-2026-11-01" in lines


class TestOneGrammar:
    """Every reading command takes the log path as an argument and trace ids with `--trace`."""

    @pytest.mark.parametrize("command", ["traces", "show", "tail", "usage", "export", "html"])
    def test_every_reading_command_takes_trace(self, command: str) -> None:
        """`--trace ID` is in every reading command's help."""
        code, out, _ = run_cli([command, "--help"])
        assert 0 == code
        assert "--trace ID" in out

    def test_html_takes_the_log_path_as_an_argument(self, demo: tuple[Path, str], tmp_path: Path) -> None:
        """`lc-trace html LOG -o page.html` writes the page of the log's traces, as the demo's last line says."""
        page = tmp_path / "page.html"
        code, out, err = run_cli(["html", str(demo[0]), "-o", str(page)])
        traces = len(run_cli(["traces", str(demo[0])])[1].splitlines()) - 1
        assert (0, f"{traces} traces written to {page}\n", "") == (code, out, err)
        assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
        assert f"lc-trace html {demo[0]} -o traces.html" in demo[1]

    def test_html_log_option_says_what_to_type_instead(self, demo: tuple[Path, str], tmp_path: Path) -> None:
        """The old `html --log PATH` is a usage error (exit 2) that shows the form to use, and writes nothing."""
        page = tmp_path / "page.html"
        code, out, err = run_cli(["html", "--log", str(demo[0]), "-o", str(page)])
        assert (2, "") == (code, out)
        assert (
            f"lc-trace html: error: --log is no longer an option: give the log path as an argument, as every "
            f"reading command takes it: lc-trace html {demo[0]} (trace ids: --trace ID)\n"
        ) == err.splitlines(keepends=True)[-1]
        assert not page.exists()

    def test_html_with_a_trace_id_where_the_path_goes_says_to_use_trace(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The old `html ID`: no such file, and the message says a trace id goes in `--trace`."""
        monkeypatch.chdir(tmp_path)
        code, _, err = run_cli(["html", "87d8f04b"])
        assert 2 == code
        assert err.endswith("; a trace id goes in --trace: lc-trace html [PATH] --trace 87d8f04b\n")


class TestRunDemo:
    def test_with_your_own_handler(self, tmp_path: Path) -> None:
        """run_demo accepts any handler; with a TraceHandler every run becomes a span, nested and closed, and the failing tool's span is an error."""
        provider, exporter = in_memory_tracing()
        handler = TraceHandler(tracer_provider=provider, log_path=tmp_path / "own.jsonl")
        try:
            run_demo(handler)
            assert 0 == handler.open_runs
        finally:
            handler.close()
        finished = exporter.get_finished_spans()
        spans = {span.name: span for span in finished}
        agent, tool = spans["invoke_agent florist_agent"], spans["execute_tool book_delivery"]
        assert StatusCode.ERROR == tool.status.status_code
        assert agent.context.span_id == tool.parent.span_id  # type: ignore[union-attr]
        assert {"retrieval FlowerCatalog", "chat fake-chat-1", "execute_tool flower_price"} <= set(spans)
        assert 5 == len({span.context.trace_id for span in finished if span.context is not None})


# --- errors counted where they happen --------------------------------------------------------


@tool
def broken_vase(size: str) -> str:
    """Checks a vase; this one always fails."""
    raise RuntimeError(f"vase of size {size} is broken")


def failing_agent_log(path: Path) -> Path:
    """
    A real create_agent agent whose tool raises: LangGraph passes the tool's exception up
    through the `tools` node and the agent, so three runs end failed, with one failure. Then a
    chain that catches a failed step's error and raises its own: two failures.
    """
    from langchain.agents import create_agent

    handler = TraceHandler(log_path=path, service_name="vase-shop")
    model = FakeChatModel(
        responses=[AIMessage(content="", tool_calls=[{"id": "c1", "name": "broken_vase", "args": {"size": "XL"}}])]
    )
    agent = create_agent(model, [broken_vase], name="florist")

    def check(order: str, config: RunnableConfig) -> str:
        try:
            RunnableLambda(lambda _: 1 / 0, name="divide").invoke(order, config)  # a step of checkout
        except ZeroDivisionError:
            raise ValueError("order total unknown") from None
        return order

    try:
        with pytest.raises(RuntimeError, match="vase of size XL is broken"):
            agent.invoke({"messages": [("human", "A vase?")]}, {"callbacks": [handler]})
        with pytest.raises(ValueError, match="order total unknown"):
            RunnableLambda(check, name="checkout").invoke("roses", {"callbacks": [handler]})
    finally:
        handler.close()
    return path


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return failing_agent_log(tmp_path_factory.mktemp("failing") / "lc_trace.jsonl")


class TestErrorsCountedWhereTheyHappen:
    def test_traces_counts_a_passed_up_failure_once(self, failing: Path) -> None:
        """The agent's trace has three failed runs (tool, tools node, agent) and one failure: ERRORS says 1. A chain that raises its own error after a step failed has two."""
        log = read_log(failing)
        assert 5 == sum(1 for x in log if x.get("event.outcome") == "failure")
        code, out, _ = run_cli(["traces", str(failing)])
        assert 0 == code
        rows = {row.split()[3]: row.split() for row in out.splitlines()[1:]}
        assert "1" == rows["florist"][-1]
        assert "2" == rows["checkout"][-1]
        code, out, _ = run_cli(["traces", str(failing), "--errors"])
        assert 2 == len(out.splitlines()[1:])

    def test_show_still_shows_every_failed_run(self, failing: Path) -> None:
        """`show` marks all three runs failed: the tool with its error, the node and the agent as passing it up; the header says 1 error (3 failed runs)."""
        agent = next(x["trace.id"] for x in read_log(failing) if x["langchain.run.name"] == "florist")
        header, *tree = show(agent, failing)
        assert header.endswith("1 error(s) (3 failed runs)")
        failed = [line.strip() for line in tree if " failure" in line]
        assert 3 == len(failed)
        assert failed[0].startswith("florist [agent]  chain_error failure") and failed[0].endswith(
            "error RuntimeError passed up from tools"
        )
        assert failed[1].startswith("tools [chain]  chain_error failure") and failed[1].endswith(
            "error RuntimeError passed up from broken_vase"
        )
        assert failed[2].startswith("broken_vase [tool]  tool_error failure") and failed[2].endswith(
            "error RuntimeError: vase of size XL is broken"
        )

    def test_usage_json_counts_failures_where_they_happened(self, failing: Path) -> None:
        """`usage --json` counts 3 failures where they happened (the tool; the step and the chain's own error) and 5 failed runs."""
        code, out, _ = run_cli(["usage", str(failing), "--json"])
        assert 0 == code
        assert {"where_they_happened": 3, "failed_runs": 5} == json.loads(out)["failures"]

    def test_html_rows_count_once_and_spans_stay_failed(self, failing: Path, tmp_path: Path) -> None:
        """The page's list says 1 error for the agent; its waterfall data still has three failed spans, two passed up."""
        page = tmp_path / "page.html"
        assert 0 == run_cli(["html", str(failing), "-o", str(page)])[0]
        data = json.loads(page.read_text(encoding="utf-8").split('type="application/json">')[1].split("</script>")[0])
        rows = {row[3]: row for row in data["rows"]}
        assert (1, 2) == (rows["florist"][8], rows["checkout"][8])
        spans = json.loads(data["details"][rows["florist"][0]])
        assert [
            ("invoke_agent florist", "tools"),
            ("tools", "execute_tool broken_vase"),
            ("execute_tool broken_vase", None),
        ] == [(s[2], s[12]) for s in spans if s[7] == "error"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_reading_progress_on_a_terminal_only(demo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that takes long shows `reading N/M MB` on a terminal's stderr and clears it when done, leaving stdout as it is; not on a pipe."""
    import lc_trace._read._text as text

    monkeypatch.setattr(text, "_PROGRESS_AFTER_S", 0.0)  # the demo's log is read in far less than the second it waits
    expected = run_cli(["traces", str(demo[0])])
    out, err = io.StringIO(), _Terminal()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert 0 == main(["traces", str(demo[0])])
    size = demo[0].stat().st_size / 1e6
    assert err.getvalue() == f"\rreading {size:,.0f}/{size:,.0f} MB\r\033[K"
    assert expected[1] == out.getvalue() and "" == expected[2]


# -- the README's examples ------------------------------------------------------------------
# Three words of an example stand for the reader's own: the trace id prefix (``3f2a``) becomes one
# of the demo log's, the collector's address (``http://collector:4317``) an OTLP receiver in this
# process (also the one the standard OTLP variables name, for a bare ``export``), and ``tail -f``
# (which never returns) runs as ``tail``.

README = Path(__file__).resolve().parents[2] / "README.md"
"""Its ``lc-trace`` examples run as written, below: a renamed option or a changed grammar fails here first."""


def readme_commands() -> list[str]:
    """The ``lc-trace`` lines of the README's bash blocks, comments cut."""
    commands: list[str] = []
    for block in re.findall(r"^```bash\n(.*?)^```", README.read_text(), flags=re.S | re.M):
        for line in block.splitlines():
            if line.startswith("lc-trace "):
                commands.append(line.split("  #")[0].split(" # ")[0].strip())
    return commands


def test_the_readme_shows_the_reading_commands():
    """The examples cover every reading command (so this test checks something when the README changes)."""
    shown = {command.split()[1] for command in readme_commands()}
    assert {"traces", "show", "tail", "usage", "html", "export"} <= shown


@pytest.mark.parametrize("command", readme_commands())
def test_a_readme_example_runs_as_written(command, demo, tmp_path, monkeypatch):
    path, _ = demo
    monkeypatch.setenv("LC_TRACE_LOG_PATH", str(path))
    monkeypatch.chdir(tmp_path)
    trace_id = next(line for line in path.read_text().splitlines() if '"trace.id"' in line)
    prefix = re.search(r'"trace\.id":"([0-9a-f]{6})', trace_id)
    assert prefix is not None
    receiver = Receiver()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)  # the collector the standard variables name
        argv = command.replace("3f2a", prefix.group(1)).replace("http://collector:4317", receiver.url).split()[1:]
        argv = [word for word in argv if word != "-f"]
        code, out, err = run_cli(argv)
        assert 0 == code, (command, out, err)
        assert out, command
        if argv[0] == "export" and "--since" not in argv:  # the README's date range is before the demo ran
            assert receiver.runs, "the example sent no span"
        if argv[0] == "html":
            assert (tmp_path / "traces.html").stat().st_size > 0
    finally:
        receiver.close()
