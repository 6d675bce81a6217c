"""
lc_trace's log lines in a real Elasticsearch, under deploy/'s index template.

A traced app (streamed chat model with per-token lines, tool calls, a failing tool, a custom event,
agent actions, a failing chain) writes its log file; every line goes through ``_bulk`` into
``lc-trace-logs-test``, which the template ``lc-trace-logs`` governs. A line the mapping refused (a
type conflict, a key that is both a value and an object) fails here, item by item; then the lines are
searched by ``trace.id`` as Kibana would. The node is tests/stack/elasticsearch.py's (one per session).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

import pytest
from langchain_core.agents import AgentAction, AgentFinish
from langchain_core.callbacks import CallbackManagerForChainRun, dispatch_custom_event
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda

from lc_trace import TraceHandler
from lc_trace.testing import FakeChatModel, in_memory_tracing, read_log
from tests.conftest import flower_chain
from tests.spans.test_spans import broken_vase, flower_price
from tests.stack.cache import DEPLOY
from tests.stack.elasticsearch import ElasticsearchNode, install_log_template

pytestmark = pytest.mark.stack

TEMPLATE_PATH = DEPLOY / "elasticsearch" / "index-template.json"
TEMPLATE_NAME = "lc-trace-logs"
INDEX = "lc-trace-logs-test"
TOOLS = {t.name: t for t in (flower_price, broken_vase)}
FLORIST_ACTIONS = {
    "chain_start",
    "chain_end",
    "llm_start",
    "llm_new_token",
    "llm_end",
    "tool_start",
    "tool_end",
    "tool_error",
    "custom_event",
    "agent_action",
    "agent_finish",
}


def florist(question: str, run_manager: CallbackManagerForChainRun, config: RunnableConfig) -> str:
    """One order, one trace: a streamed chain, a streamed tool-calling model, two tools (one fails)."""
    answer: str = flower_chain(FakeChatModel(responses=["A dozen red roses."], streaming=True)).invoke(
        {"who": question}, config
    )
    planner = FakeChatModel(
        responses=[
            AIMessage(
                "",
                tool_calls=[
                    {"name": "flower_price", "args": {"flower": "rose"}, "id": "call_1", "type": "tool_call"},
                    {"name": "broken_vase", "args": {"size": "XL"}, "id": "call_2", "type": "tool_call"},
                ],
            )
        ],
        streaming=True,
    )
    reply = planner.invoke([HumanMessage(question)], config)
    for call in reply.tool_calls:
        run_manager.on_agent_action(AgentAction(call["name"], call["args"], f"calling {call['name']}"))
        try:
            TOOLS[call["name"]].invoke(call, config)
        except RuntimeError:
            pass  # the vase is broken; the order goes on
    dispatch_custom_event("order_progress", {"tools": len(reply.tool_calls)}, config=config)
    run_manager.on_agent_finish(AgentFinish({"output": answer}, answer))
    return answer


def _lookup(key: str) -> Any:
    return {}[key]


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The log file of three traces: the florist's order, a plain chain, a chain that fails."""
    log_path = tmp_path_factory.mktemp("es-logs") / "lc_trace.jsonl"
    handler = TraceHandler(
        tracer_provider=in_memory_tracing()[0],
        log_path=log_path,
        service_name="flower-shop",
        capture_content=True,
        log_tokens=True,
    )
    config: RunnableConfig = {"callbacks": [handler], "metadata": {"shop": "花店", "session_id": "es-test"}}
    try:
        RunnableLambda(florist, name="florist").invoke("mom", config)
        flower_chain().invoke({"who": "dad"}, config)
        with pytest.raises(KeyError):
            RunnableLambda(_lookup, name="lookup").invoke("missing", config)
        assert handler.flush(), "flush timed out"
    finally:
        handler.close()
    return read_log(log_path)


@pytest.fixture(scope="module")
def es(elasticsearch: ElasticsearchNode) -> ElasticsearchNode:
    """
    The session's node with the template installed by deploy/setup/setup.sh (the compose one-shot
    service's script, Kibana left out) and the test index gone.
    """
    template = json.loads(TEMPLATE_PATH.read_text(encoding="utf-8"))
    assert INDEX.startswith(tuple(p.rstrip("*") for p in template["index_patterns"])), template["index_patterns"]
    assert '"acknowledged":true' in install_log_template(elasticsearch.url)
    status, body = elasticsearch.request("GET", f"/_index_template/{TEMPLATE_NAME}")
    assert (
        200 == status
        and template["template"]["mappings"] == body["index_templates"][0]["index_template"]["template"]["mappings"]
    )
    status, body = elasticsearch.request("DELETE", f"/{INDEX}")
    assert status in (200, 404), body
    return elasticsearch


@pytest.fixture(scope="module")
def indexed(es: ElasticsearchNode, lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Every line through ``_bulk`` (``_id`` = its line number), then a refresh; the bulk response."""
    actions: list[dict[str, Any]] = []
    for number, line in enumerate(lines):
        actions += [{"index": {"_index": INDEX, "_id": str(number)}}, line]
    status, response = es.request("POST", "/_bulk", actions)
    assert 200 == status, response
    status, refreshed = es.request("POST", f"/{INDEX}/_refresh")
    assert 200 == status, refreshed
    return response


def search(es: ElasticsearchNode, body: dict[str, Any]) -> dict[str, Any]:
    status, response = es.request("POST", f"/{INDEX}/_search", body)
    assert 200 == status, response
    return response


def florist_trace(lines: list[dict[str, Any]]) -> str:
    (root,) = [l for l in lines if l["event.action"] == "chain_start" and l["langchain.run.name"] == "florist"]
    return str(root["trace.id"])


def test_every_line_is_accepted_by_the_template(indexed, lines, es):
    """No item of the bulk failed: the template has a field of the right type for every value lc_trace writes."""
    failed = [
        f"line {item['index']['_id']}: {item['index']['error']['type']}: {item['index']['error']['reason']}"
        for item in indexed["items"]
        if "error" in item["index"]
    ]
    assert [] == failed
    assert False is indexed["errors"]
    assert len(lines) == len(indexed["items"])
    assert {201} == {item["index"]["status"] for item in indexed["items"]}
    status, count = es.request("GET", f"/{INDEX}/_count")
    assert (200, len(lines)) == (status, count["count"])


def test_the_index_is_the_templates(indexed, es):
    """The index took the template's settings and mappings (not Elasticsearch's dynamic guesses)."""
    template = json.loads(TEMPLATE_PATH.read_text(encoding="utf-8"))["template"]
    _, settings = es.request("GET", f"/{INDEX}/_settings")
    index_settings = settings[INDEX]["settings"]["index"]
    for key, value in template.get("settings", {}).get("index", {}).items():
        assert str(value) == index_settings[key], key
    _, mapping = es.request("GET", f"/{INDEX}/_mapping")
    mappings = mapping[INDEX]["mappings"]
    assert str(template["mappings"].get("dynamic", True)).lower() == str(mappings.get("dynamic", True)).lower()
    expected = leaf_fields(template["mappings"]["properties"])
    actual = leaf_fields(mappings["properties"])
    assert {k: v for k, v in actual.items() if k in expected} == expected


def test_every_key_is_a_mapped_field(indexed, lines, es):
    """
    Each key of each line is a field of the index, so none is silently dropped (the template maps
    top-level keys explicitly; a key it does not know is kept in _source but cannot be searched).
    """
    _, mapping = es.request("GET", f"/{INDEX}/_mapping")
    mapped = leaf_fields(mapping[INDEX]["mappings"]["properties"])
    unmapped = sorted({key for line in lines for key in line} - set(mapped))
    assert [] == unmapped
    assert "keyword" == mapped["langchain.metadata.shop"]["type"]  # dynamic metadata, from the dynamic template


def test_search_by_trace_id_finds_exactly_that_trace(indexed, lines, es):
    """A term query on trace.id returns that trace's lines, whole and unchanged, and no other line."""
    trace_id = florist_trace(lines)
    assert 3 == len({l["trace.id"] for l in lines})
    response = search(es, {"query": {"term": {"trace.id": trace_id}}, "size": 1000})
    hits = response["hits"]["hits"]
    expected = {str(n): line for n, line in enumerate(lines) if line["trace.id"] == trace_id}
    assert len(expected) == response["hits"]["total"]["value"]
    assert expected == {hit["_id"]: hit["_source"] for hit in hits}
    actions = Counter(hit["_source"]["event.action"] for hit in hits)
    assert FLORIST_ACTIONS == set(actions)
    assert actions["llm_new_token"] >= 4  # "A dozen red roses." word by word, plus the final chunk
    (error,) = [hit["_source"] for hit in hits if hit["_source"]["event.action"] == "tool_error"]
    assert ("RuntimeError", "vase of size XL is broken") == (error["error.type"], error["error.message"])
    # The same question by event.action, aggregated, as a dashboard would ask it.
    response = search(
        es,
        {
            "size": 0,
            "query": {"term": {"trace.id": trace_id}},
            "aggs": {"actions": {"terms": {"field": "event.action", "size": 50}}},
        },
    )
    buckets = {b["key"]: b["doc_count"] for b in response["aggregations"]["actions"]["buckets"]}
    assert dict(actions) == buckets
    # Error fields are searchable: the failed tool and the failed chain, each in its own trace.
    response = search(es, {"query": {"exists": {"field": "error.type"}}, "size": 100})
    failures = {(h["_source"]["event.action"], h["_source"]["error.type"]) for h in response["hits"]["hits"]}
    assert {("tool_error", "RuntimeError"), ("chain_error", "KeyError")} == failures
    response = search(es, {"query": {"match": {"error.message": "broken"}}})
    assert ["tool_error"] == [h["_source"]["event.action"] for h in response["hits"]["hits"]]


def test_event_duration_is_a_long_you_can_range_query(indexed, lines, es):
    """event.duration (ns) is a long: range queries and numeric aggregations see the values lc_trace wrote."""
    _, field = es.request("GET", f"/{INDEX}/_mapping/field/event.duration")
    assert "long" == field[INDEX]["mappings"]["event.duration"]["mapping"]["duration"]["type"]
    durations = sorted(l["event.duration"] for l in lines if "event.duration" in l)
    assert len(durations) >= 10 and all(isinstance(d, int) and d > 0 for d in durations)
    middle = durations[len(durations) // 2]
    response = search(
        es,
        {
            "size": 0,
            "track_total_hits": True,
            "query": {"range": {"event.duration": {"gte": middle}}},
            "aggs": {"longest": {"max": {"field": "event.duration"}}, "total": {"sum": {"field": "event.duration"}}},
        },
    )
    assert sum(1 for d in durations if d >= middle) == response["hits"]["total"]["value"]
    assert durations[-1] == response["aggregations"]["longest"]["value"]
    response = search(es, {"size": 0, "query": {"range": {"event.duration": {"gt": durations[-1]}}}})
    assert 0 == response["hits"]["total"]["value"]


def test_timestamps_sort(indexed, lines, es):
    """@timestamp is a date: sorting a trace by it gives the lines in time order (to the millisecond)."""
    trace_id = florist_trace(lines)
    mine = [l for l in lines if l["trace.id"] == trace_id]
    for order in ("asc", "desc"):
        response = search(
            es, {"query": {"term": {"trace.id": trace_id}}, "size": 1000, "sort": [{"@timestamp": order}]}
        )
        hits = response["hits"]["hits"]
        millis = [hit["sort"][0] for hit in hits]
        assert [epoch_millis(hit["_source"]["@timestamp"]) for hit in hits] == millis
        assert sorted(millis, reverse=order == "desc") == millis
        assert sorted((l["@timestamp"][:23] for l in mine), reverse=order == "desc") == [
            hit["_source"]["@timestamp"][:23] for hit in hits
        ]
    first = min(lines, key=lambda l: l["@timestamp"])
    response = search(
        es, {"size": 1, "query": {"range": {"@timestamp": {"lte": first["@timestamp"]}}}, "sort": ["@timestamp"]}
    )
    assert first["@timestamp"][:23] == response["hits"]["hits"][0]["_source"]["@timestamp"][:23]


@pytest.mark.parametrize(
    ("field", "value"),
    [("event.duration", "slow"), ("@timestamp", "yesterday"), ("gen_ai.usage.input_tokens", {"n": 3})],
)
def test_a_wrong_type_is_rejected(indexed, lines, es, field, value):
    """The mapping is strict where it matters: a line with a value of the wrong type is refused, not stored."""
    line = {**lines[0], field: value}
    status, response = es.request("POST", "/_bulk", [{"index": {"_index": INDEX, "_id": f"bad-{field}"}}, line])
    assert 200 == status, response
    assert True is response["errors"]
    (item,) = response["items"]
    assert 400 == item["index"]["status"]
    assert "mapper_parsing_exception" == item["index"]["error"]["type"], item
    status, _ = es.request("GET", f"/{INDEX}/_doc/bad-{field}")
    assert 404 == status


def leaf_fields(properties: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """A mapping's ``properties``, flattened to ``{"a.b.c": {"type": ...}}`` (objects left out)."""
    fields: dict[str, dict[str, Any]] = {}
    for name, spec in properties.items():
        if "properties" in spec:
            fields.update(leaf_fields(spec["properties"], f"{prefix}{name}."))
        elif spec.get("type", "object") not in ("object", "nested"):
            fields[f"{prefix}{name}"] = spec
    return fields


def epoch_millis(timestamp: str) -> int:
    """What Elasticsearch's ``date`` keeps of an ISO timestamp: whole milliseconds since the epoch."""
    delta = dt.datetime.fromisoformat(timestamp) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
