"""
What model calls cost (``lc_trace._read._cost``), as ``lc-trace usage`` and ``lc-trace html``
show it: each figure is checked against a hand computation from genai-prices' table.

The per-million-token prices below are literals read from genai-prices 0.2.5's table (its
``genai_prices/data.py``), written out so the arithmetic is ours and a change of table shows up
here as a failure to look at, not as a silently different figure. Calls go through real
LangChain chat models (the recorded OpenAI cassette replayed through ``ChatOpenAI``, and
``FakeChatModel`` / ``GenericFakeChatModel`` for usage a recording does not have) and lc_trace's
handler into a real log file, which the real command reads.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from lc_trace import TraceHandler
from lc_trace.testing import FakeChatModel, read_log
from tests.capture import test_providers as providers
from tests.cli.test_cli import run_cli
from tests.read import test_html

no_network = providers.no_network  # autouse: the cassette's client reaches no network
browser = test_html.browser  # headless Chromium, for the page

MILLION = Decimal(1_000_000)

# genai-prices 0.2.5, provider "openai", model "gpt-4o-mini" (it matches "gpt-4o-mini-2024-07-18"), USD per million tokens.
GPT_4O_MINI = {"input": Decimal("0.15"), "cache_read": Decimal("0.075"), "output": Decimal("0.6")}
# ... provider "anthropic", model "claude-sonnet-4-0" (it matches "claude-sonnet-4-20250514"): no reasoning price,
# so Anthropic's thinking tokens are output tokens at the output price.
CLAUDE_SONNET_4 = {
    "input": Decimal("3"),
    "cache_write": Decimal("3.75"),
    "cache_read": Decimal("0.3"),
    "output": Decimal("15"),
}
# ... provider "perplexity", model "sonar-deep-research": reasoning has a price of its own.
SONAR_DEEP_RESEARCH = {"input": Decimal("2"), "output": Decimal("8"), "reasoning": Decimal("3")}


def usage_json(path: Path, *extra: str) -> dict[str, Any]:
    code, out, err = run_cli(["usage", str(path), "--json", *extra])
    assert (0, "") == (code, err)
    report: dict[str, Any] = json.loads(out)
    return report


def by_key(report: dict[str, Any], grouping: str) -> dict[str, dict[str, Any]]:
    return {group["key"]: group for group in report[f"by_{grouping}"]}


def in_cents(amount: Decimal | float) -> Decimal:
    return Decimal(str(amount)).quantize(Decimal("0.01"))


def chat(model: Any, log_path: Path, prompt: str = "Which flower for a June wedding?", **metadata: str) -> None:
    """
    One call of *model* with a fresh handler writing to *log_path*.
    """
    handler = TraceHandler(log_path=log_path, service_name="florist")
    try:
        model.invoke(prompt, {"callbacks": [handler], "metadata": metadata})
    finally:
        handler.close()


def thinking_model(provider: str, served_model: str, **usage: Any) -> FakeChatModel:
    """
    A chat model whose one answer reports *usage* as LangChain's ``usage_metadata``.
    """
    tokens = {"input_tokens": usage["input"], "output_tokens": usage["output"]}
    details = {
        "input_token_details": {key: usage[key] for key in ("cache_read", "cache_creation") if key in usage},
        "output_token_details": {"reasoning": usage["reasoning"]} if "reasoning" in usage else {},
    }
    metadata: Any = {**tokens, "total_tokens": usage["input"] + usage["output"], **details}
    return FakeChatModel(
        provider=provider,
        model_name=served_model,
        served_model=served_model,
        responses=[AIMessage("Peonies.", usage_metadata=metadata)],
    )


# --- (a) the demo -------------------------------------------------------------------------


def test_the_demo_model_is_not_in_the_table_and_usage_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's FakeChatModel calls itself provider "fake", model "fake-chat-1-2026-11-01": genai-prices has neither,
    so the cost is 0 of 0 priced calls, and every model call is counted as not priced, with that name."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    path = tmp_path / "shop.jsonl"
    assert 0 == run_cli(["demo", "--log-path", str(path)])[0]
    model_ends = [line for line in read_log(path) if line["event.action"] == "llm_end"]
    assert {("fake", "fake-chat-1-2026-11-01")} == {
        (line["gen_ai.provider.name"], line["gen_ai.response.model"]) for line in model_ends
    }

    report = usage_json(path)
    assert {"amount": 0.0, "currency": "USD", "priced_calls": 0, "unpriced_calls": len(model_ends)} == report["total"][
        "cost"
    ]
    assert {"unknown_model": {"fake/fake-chat-1-2026-11-01": len(model_ends)}} == report["unpriced"]

    code, out, _ = run_cli(["usage", str(path)])
    assert 0 == code
    lines = out.splitlines()
    total = lines[[line.startswith("TOTAL") for line in lines].index(True) + 1]
    assert total.endswith("-*")  # no priced call, and some not priced
    assert f"* not priced: {len(model_ends)} calls" in lines
    assert f"  {len(model_ends):>6}  model or provider not in genai-prices' table: fake/fake-chat-1-2026-11-01" in lines


# --- (b) the recorded OpenAI calls --------------------------------------------------------


@pytest.fixture
def cassette_log(tmp_path: Path) -> Path:
    """
    The two recorded gpt-4o-mini calls (the second reads 1,280 of its 1,370 prompt tokens from
    OpenAI's cache) replayed through ChatOpenAI into a log.
    """
    path = tmp_path / "openai.jsonl"
    handler = TraceHandler(log_path=path, service_name="poet")
    model = providers.openai_chat(model="gpt-4o-mini")
    prefix = "lorem ipsum " * 160
    try:
        with providers.replay("openai/chat_cached_tokens"):
            model.invoke(prefix + "Write me a haiku.", {"callbacks": [handler]})
            model.invoke(prefix + "Write me a sonnet.", {"callbacks": [handler]})
    finally:
        handler.close()
    return path


def test_the_recorded_openai_calls_cost_what_the_table_says(cassette_log: Path) -> None:
    """Call 1: 1,370 input and 22 output tokens; call 2: 1,370 input of which 1,280 cache reads (at the cache price,
    the other 90 at the input price) and 155 output. usage's cost is that sum, exactly, and to the cent."""
    p = GPT_4O_MINI
    first = (1370 * p["input"] + 22 * p["output"]) / MILLION
    second = ((1370 - 1280) * p["input"] + 1280 * p["cache_read"] + 155 * p["output"]) / MILLION
    assert Decimal("0.0004212") == first + second  # 218.7 + 202.5 millionths of a dollar

    report = usage_json(cassette_log)
    cost = report["total"]["cost"]
    assert (float(first + second), 2, 0) == (cost["amount"], cost["priced_calls"], cost["unpriced_calls"])
    assert in_cents(first + second) == in_cents(cost["amount"])
    assert {} == report["unpriced"]
    assert float(first + second) == by_key(report, "model")["gpt-4o-mini-2024-07-18"]["cost"]["amount"]
    assert {
        "package": "genai-prices",
        "version": "0.2.5",
        "currency": "USD",
        "prices_at": "each call's start time",
    } == (report["price_source"])

    code, out, _ = run_cli(["usage", str(cassette_log)])
    lines = out.splitlines()
    assert lines[0].endswith("COST USD ")
    model_row = next(line for line in lines if line.startswith("gpt-4o-mini-2024-07-18"))
    assert model_row.endswith("  0.000421 ")  # to the millionth of a dollar; no mark: every call priced
    assert (
        "cost: 0.000421 USD for 2 priced calls, at genai-prices 0.2.5's prices in effect at each call's start "
        "(repriced at every read)"
    ) == lines[-1]


# --- (c) cache writes and reasoning, through a LangChain chat model ------------------------


@pytest.fixture
def thinking_log(tmp_path: Path) -> Path:
    """
    A Claude call that reads and writes Anthropic's prompt cache and thinks, and a Perplexity
    deep-research call whose reasoning has a price of its own, in two conversations.
    """
    path = tmp_path / "thinking.jsonl"
    claude = thinking_model(
        "anthropic",
        "claude-sonnet-4-20250514",
        input=5000,
        output=800,
        cache_read=3000,
        cache_creation=1500,
        reasoning=500,
    )
    sonar = thinking_model("perplexity", "sonar-deep-research", input=2000, output=10000, reasoning=6000)
    chat(claude, path, thread_id="wedding-42")
    chat(sonar, path, thread_id="research-7")
    return path


CLAUDE_COST = (
    (5000 - 3000 - 1500) * CLAUDE_SONNET_4["input"]
    + 3000 * CLAUDE_SONNET_4["cache_read"]
    + 1500 * CLAUDE_SONNET_4["cache_write"]
    + 800 * CLAUDE_SONNET_4["output"]  # the 500 reasoning tokens among them, at the output price
) / MILLION
SONAR_COST = (
    2000 * SONAR_DEEP_RESEARCH["input"]
    + (10000 - 6000) * SONAR_DEEP_RESEARCH["output"]
    + 6000 * SONAR_DEEP_RESEARCH["reasoning"]
) / MILLION


def test_cache_writes_and_reasoning_are_priced_at_their_own_rates(thinking_log: Path) -> None:
    """Claude: 500 plain input, 3,000 cache-read, 1,500 cache-write and 800 output tokens (500 of them thinking, which
    Anthropic bills as output); Perplexity: 2,000 input, 4,000 plain output and 6,000 reasoning tokens at its lower
    reasoning rate. Each group and the total equal those sums, to the cent and exactly."""
    assert (Decimal("0.020025"), Decimal("0.054")) == (CLAUDE_COST, SONAR_COST)
    report = usage_json(thinking_log)
    assert float(CLAUDE_COST + SONAR_COST) == report["total"]["cost"]["amount"]
    assert in_cents(Decimal("0.074025")) == in_cents(report["total"]["cost"]["amount"])
    models = by_key(report, "model")
    assert float(CLAUDE_COST) == models["claude-sonnet-4-20250514"]["cost"]["amount"]
    assert float(SONAR_COST) == models["sonar-deep-research"]["cost"]["amount"]
    conversations = by_key(report, "conversation")
    assert (float(CLAUDE_COST), float(SONAR_COST)) == (
        conversations["wedding-42"]["cost"]["amount"],
        conversations["research-7"]["cost"]["amount"],
    )
    assert float(CLAUDE_COST + SONAR_COST) == by_key(report, "service")["florist"]["cost"]["amount"]
    assert [float(CLAUDE_COST + SONAR_COST)] == [group["cost"]["amount"] for group in report["by_time"]]


@pytest.mark.log_schema_extra_keys("gen_ai.usage.cache_write.input_tokens")  # the newer name, not yet in the schema
def test_the_newer_name_for_cache_writes_is_read_too(thinking_log: Path, tmp_path: Path) -> None:
    """A log whose lines name cache-creation tokens gen_ai.usage.cache_write.input_tokens (the GenAI conventions'
    newer name) costs the same as one that says gen_ai.usage.cache_creation.input_tokens."""
    old, new = "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_write.input_tokens"
    text = thinking_log.read_text(encoding="utf-8")
    assert 1 == text.count(f'"{old}":1500')
    renamed = tmp_path / "renamed.jsonl"
    renamed.write_text(text.replace(f'"{old}"', f'"{new}"'), encoding="utf-8")
    report = usage_json(renamed)
    assert 1500 == report["total"]["tokens"]["cache_creation"]
    assert float(CLAUDE_COST + SONAR_COST) == report["total"]["cost"]["amount"]


# --- calls that cannot be priced -------------------------------------------------------------


def test_calls_that_cannot_be_priced_are_counted_by_reason(tmp_path: Path) -> None:
    """An unknown model, a call that reported no usage, a failed call, usage with no model name, counts the table
    refuses, and a call whose end was never written: each is counted under its reason with its provider/model, and
    only the priced call is in the amount."""
    path = tmp_path / "mixed.jsonl"
    chat(thinking_model("anthropic", "claude-sonnet-4-20250514", input=1000, output=100), path)  # priced
    chat(thinking_model("openai", "gpt-imaginary-9", input=1000, output=100), path)
    chat(thinking_model("openai", "gpt-imaginary-9", input=10, output=1), path)  # asked of the table once
    chat(GenericFakeChatModel(messages=iter([AIMessage("Tulips.")])), path)  # reports no usage
    chat(GenericFakeChatModel(messages=iter([AIMessage("Irises.", usage_metadata=_tokens(50, 5))])), path)
    chat(thinking_model("anthropic", "claude-sonnet-4-20250514", input=10, output=5, cache_read=50), path)
    with pytest.raises(RuntimeError):
        failing = FakeChatModel(provider="openai", model_name="gpt-4o-mini", fail_with=RuntimeError("overloaded"))
        chat(failing, path)
    killed = FakeChatModel(provider="openai", model_name="gpt-4o-mini", responses=["Lilies."])
    chat(killed, tmp_path / "killed.jsonl")
    lines = (tmp_path / "killed.jsonl").read_text(encoding="utf-8").splitlines()
    start = next(line for line in lines if '"event.action":"llm_start"' in line)
    with open(path, "a", encoding="utf-8") as log:  # its process killed before the call ended: the start line only
        log.write(start + "\n")

    report = usage_json(path)
    assert {
        "unknown_model": {"openai/gpt-imaginary-9": 2},
        "no_usage": {"genericfakechatmodel/?": 1},
        "no_model": {"genericfakechatmodel/?": 1},
        "invalid_usage": {"anthropic/claude-sonnet-4-20250514": 1},
        "failed_no_usage": {"openai/gpt-4o-mini": 1},
        "never_ended": {"openai/gpt-4o-mini": 1},
    } == report["unpriced"]
    expected = (1000 * CLAUDE_SONNET_4["input"] + 100 * CLAUDE_SONNET_4["output"]) / MILLION
    assert (float(expected), 1, 7) == tuple(
        report["total"]["cost"][key] for key in ("amount", "priced_calls", "unpriced_calls")
    )
    models = by_key(report, "model")
    assert {"amount": 0.0, "currency": "USD", "priced_calls": 0, "unpriced_calls": 2} == models["gpt-imaginary-9"][
        "cost"
    ]

    out = run_cli(["usage", str(path)])[1].splitlines()
    assert "* not priced: 7 calls" in out
    for reason in (
        "       2  model or provider not in genai-prices' table: openai/gpt-imaginary-9",
        "       1  no token usage recorded: genericfakechatmodel/?",
        "       1  failed, no token usage recorded: openai/gpt-4o-mini",
        "       1  never ended (no end line read): openai/gpt-4o-mini",
        "       1  no model name recorded: genericfakechatmodel/?",
        "       1  token counts genai-prices refuses: anthropic/claude-sonnet-4-20250514",
    ):
        assert reason in out
    claude = next(line for line in out if line.startswith("claude-sonnet-4-20250514"))
    assert claude.endswith(f"  {expected:.6f}*")  # priced in part: marked


def _tokens(tokens_in: int, tokens_out: int) -> Any:
    return {"input_tokens": tokens_in, "output_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}


def test_json_shape(thinking_log: Path) -> None:
    """--json: every group and the total carry cost {amount, currency, priced_calls, unpriced_calls}; the report says
    where prices come from and what was not priced; the groups of each grouping add up to the total."""
    report = usage_json(thinking_log)
    assert {"package", "version", "currency", "prices_at"} == set(report["price_source"])
    assert isinstance(report["unpriced"], dict)
    for grouping in ("by_model", "by_conversation", "by_service", "by_time"):
        for group in report[grouping]:
            assert {"amount", "currency", "priced_calls", "unpriced_calls"} == set(group["cost"])
            assert isinstance(group["cost"]["amount"], float)
        assert report["total"]["cost"]["amount"] == pytest.approx(
            sum(group["cost"]["amount"] for group in report[grouping]), abs=1e-12
        )
        assert report["total"]["cost"]["priced_calls"] == sum(g["cost"]["priced_calls"] for g in report[grouping])


# --- the page --------------------------------------------------------------------------------


def page_data(page: Path) -> dict[str, Any]:
    text = page.read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text.split('type="application/json">')[1].split("</script>")[0])
    return data


def test_the_page_holds_each_traces_cost(thinking_log: Path, tmp_path: Path) -> None:
    """lc-trace html: each trace's cost (amount, calls not priced) and where the prices come from are in the page."""
    page = tmp_path / "page.html"
    assert 0 == run_cli(["html", str(thinking_log), "-o", str(page)])[0]
    data = page_data(page)
    by_root = {row[3]: row[0] for row in data["rows"]}
    assert {"FakeChatModel"} == set(by_root) and 2 == len(data["rows"])
    assert sorted([[float(CLAUDE_COST), 0], [float(SONAR_COST), 0]]) == sorted(data["costs"].values())
    assert ("genai-prices", "USD") == (data["price"]["package"], data["price"]["currency"])


def test_the_page_shows_each_traces_cost_and_the_total(thinking_log: Path, tmp_path: Path, browser: Any) -> None:
    """In Chromium: the cost column shows each trace's cost, the header adds up the traces shown (and follows the
    filter), a trace with calls not priced is marked, and the console stays clean."""
    path = tmp_path / "page-log.jsonl"
    path.write_bytes(thinking_log.read_bytes())
    chat(GenericFakeChatModel(messages=iter([AIMessage("Tulips.")])), path)  # a call with no usage
    page = tmp_path / "page.html"
    assert 0 == run_cli(["html", str(path), "-o", str(page)])[0]
    browser.console.clear()
    browser.open(page)
    assert "cost USD" == browser.evaluate("document.getElementById('cost-head').textContent")
    cells = browser.evaluate("[...document.querySelectorAll('.trow .cost')].map(c => c.textContent)")
    assert sorted([f"{CLAUDE_COST:.6f}", f"{SONAR_COST:.6f}", "-*"]) == sorted(cells)
    total = browser.evaluate("document.getElementById('cost-total').textContent")
    assert total.startswith(f"cost of the traces shown: {CLAUDE_COST + SONAR_COST:.6f} USD (* 1 model calls not priced")
    assert total.endswith("· prices: genai-prices 0.2.5")
    browser.evaluate("document.getElementById('filter').value = 'genericfake'; lcTrace.applyView()")
    assert browser.evaluate("document.getElementById('cost-total').textContent").startswith(
        "cost of the traces shown: 0.000000 USD (* 1 model calls"
    )
    assert [] == browser.console
