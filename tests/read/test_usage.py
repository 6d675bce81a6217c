"""
``lc-trace usage`` (``lc_trace._read._usage``): the model calls' tokens, calls, errors and latency,
checked against the ``gen_ai.usage.*`` attributes of the spans of the same runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from opentelemetry.sdk.trace import ReadableSpan

from lc_trace import TraceHandler
from lc_trace._cli._demo import run_demo
from lc_trace.testing import FakeChatModel, in_memory_tracing
from tests.cli.test_cli import run_cli

USAGE_KEYS = {
    "input": "gen_ai.usage.input_tokens",
    "output": "gen_ai.usage.output_tokens",
    "cache_read": "gen_ai.usage.cache_read.input_tokens",
    "cache_creation": "gen_ai.usage.cache_creation.input_tokens",
    "reasoning": "gen_ai.usage.reasoning.output_tokens",
}


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ReadableSpan]]:
    """
    The flower shop, a reasoning model that reads from a prompt cache in another conversation,
    and a model call that fails; rotated once in the middle, so usage must read both files.
    """
    path = tmp_path_factory.mktemp("usage") / "lc_trace.jsonl"
    provider, exporter = in_memory_tracing()
    handler = TraceHandler(tracer_provider=provider, log_path=path, service_name="flower-shop")
    try:
        run_demo(handler)
        handler.flush()
        path.rename(f"{path}.1")  # rotated, as logrotate would: the next handler starts a new file
    finally:
        handler.close()
    thinker = FakeChatModel(
        model_name="deep-1",
        served_model="deep-1-2026",
        responses=[
            AIMessage(
                "Peonies, for a wedding in June.",
                usage_metadata={
                    "input_tokens": 1200,
                    "output_tokens": 300,
                    "total_tokens": 1500,
                    "input_token_details": {"cache_read": 1000},
                    "output_token_details": {"reasoning": 250},
                },
            )
        ],
    )
    broken = FakeChatModel(model_name="deep-1", fail_with=RuntimeError("model overloaded"))
    other = TraceHandler(tracer_provider=provider, log_path=path, service_name="florist-backoffice")
    config: Any = {"callbacks": [other], "metadata": {"thread_id": "wedding-42"}}
    try:
        thinker.invoke("Which flower for a June wedding?", config)
        with pytest.raises(RuntimeError):
            broken.invoke("And for a funeral?", config)
    finally:
        other.close()
    return path, list(exporter.get_finished_spans())


def span_sums(spans: list[ReadableSpan], **where: str) -> dict[str, int]:
    chosen = [
        s
        for s in spans
        if s.attributes
        and s.attributes.get("gen_ai.operation.name") in ("chat", "text_completion")
        and all(s.attributes.get(k) == v for k, v in where.items())
    ]
    return {
        name: sum(int(s.attributes.get(key, 0) or 0) for s in chosen if s.attributes)
        for name, key in USAGE_KEYS.items()
    }


class TestUsageCommand:
    def test_json_totals_equal_the_spans_usage(self, workload: tuple[Path, list[ReadableSpan]]) -> None:
        """--json totals (tokens of every kind, calls, errors) equal the sums over the model spans, across the rotated file too."""
        path, spans = workload
        code, out, err = run_cli(["usage", str(path), "--json"])
        assert (0, "") == (code, err)
        report = json.loads(out)
        models = [s for s in spans if s.attributes and s.attributes.get("gen_ai.operation.name") == "chat"]
        assert span_sums(spans) == report["total"]["tokens"]
        assert len(models) == report["total"]["calls"]
        assert 1 == report["total"]["errors"]
        assert 1000 == report["total"]["tokens"]["cache_read"] and 250 == report["total"]["tokens"]["reasoning"]

    def test_groups_by_model_conversation_service_and_day(self, workload: tuple[Path, list[ReadableSpan]]) -> None:
        """Each grouping adds up to the total, and each group equals its own spans' sums."""
        path, spans = workload
        report = json.loads(run_cli(["usage", str(path), "--json"])[1])
        for grouping in ("by_model", "by_conversation", "by_service", "by_time"):
            assert report["total"]["calls"] == sum(g["calls"] for g in report[grouping])
            for kind in USAGE_KEYS:
                assert report["total"]["tokens"][kind] == sum(g["tokens"][kind] for g in report[grouping])
        services = {g["key"]: g for g in report["by_service"]}
        assert {"flower-shop", "florist-backoffice"} == set(services)
        conversations = {g["key"]: g for g in report["by_conversation"]}
        assert span_sums(spans, **{"gen_ai.conversation.id": "wedding-42"}) == conversations["wedding-42"]["tokens"]
        assert (2, 1) == (conversations["wedding-42"]["calls"], conversations["wedding-42"]["errors"])
        models = {g["key"]: g for g in report["by_model"]}
        assert {"fake-chat-1-2026-11-01", "deep-1-2026", "deep-1"} == set(
            models
        )  # served model, else the one asked for
        assert span_sums(spans, **{"gen_ai.response.model": "deep-1-2026"}) == models["deep-1-2026"]["tokens"]

    def test_latency_percentiles_are_nearest_rank_of_durations(self, workload: tuple[Path, list[ReadableSpan]]) -> None:
        """p50/p90/p99 are durations of actual calls (nearest rank), in milliseconds, ordered."""
        path, spans = workload
        report = json.loads(run_cli(["usage", str(path), "--json"])[1])
        durations = sorted(
            (s.end_time - s.start_time) / 1e6
            for s in spans
            if s.attributes and s.attributes.get("gen_ai.operation.name") == "chat" and s.end_time and s.start_time
        )
        latency = report["total"]["latency_ms"]
        assert durations[(len(durations) + 1) // 2 - 1] == pytest.approx(latency["p50"])
        assert durations[-1] == pytest.approx(latency["p99"])
        assert latency["p50"] <= latency["p90"] <= latency["p99"]

    def test_table_and_filters(self, workload: tuple[Path, list[ReadableSpan]]) -> None:
        """The table lists each grouping and the total; --service and --errors narrow what is counted."""
        path, spans = workload
        code, out, _ = run_cli(["usage", str(path), "--hourly"])
        assert 0 == code
        titles = [line.split("  ")[0].strip() for line in out.splitlines() if "CALLS" in line]
        assert ["MODEL", "CONVERSATION", "SERVICE", "HOUR (UTC)", "TOTAL"] == titles
        lines = out.splitlines()
        assert lines[[line.startswith("TOTAL") for line in lines].index(True) + 1].startswith("all model calls")
        report = json.loads(run_cli(["usage", str(path), "--json", "--service", "florist-backoffice"])[1])
        assert (2, 1) == (report["total"]["calls"], report["total"]["errors"])
        report = json.loads(run_cli(["usage", str(path), "--json", "--errors"])[1])
        assert 1 == report["total"]["errors"]
        code, out, _ = run_cli(["usage", str(path), "--since", "2h", "--until", "1h"])
        assert (0, f"no model calls in {path}\n") == (code, out)
