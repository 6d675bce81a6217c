"""
The log-line schema (deploy/elasticsearch/lc-trace-logs.schema.json) and the index template
generated from it: one source for both, every real line valid, and a check that can fail.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
from langchain_core.agents import AgentAction, AgentFinish
from langchain_core.language_models import FakeListLLM
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda

from lc_trace import TraceHandler, evaluated, record_evaluation
from lc_trace import _attributes as A
from lc_trace._cli._demo import run_demo
from lc_trace._conventions import LATEST, V1_41
from lc_trace.testing import FakeChatModel, read_log
from tests.conftest import (
    LOG_SCHEMA_PATH,
    REPO,
    call,
    flower_chain,
    key_problems,
    log_schema,
    log_schema_violations,
)
from tests.spans.test_spans import FlowerRetriever, broken_vase, flower_price

TEMPLATE_PATH = REPO / "deploy" / "elasticsearch" / "index-template.json"
CORE_TYPES = {"keyword", "text", "long", "double", "boolean", "date", "object"}


def load_generator() -> ModuleType:
    """scripts/gen_index_template.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_index_template", REPO / "scripts" / "gen_index_template.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = load_generator()


def committed_template() -> dict[str, Any]:
    template: dict[str, Any] = json.loads(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return template


def mapping_nodes(properties: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every node of a mapping, sub-fields included, by dotted name."""
    out = []
    for name, node in properties.items():
        key = f"{prefix}{name}"
        out.append((key, node))
        out.extend(mapping_nodes(node.get("properties", {}), f"{key}."))
        out.extend(mapping_nodes(node.get("fields", {}), f"{key}."))
    return out


class TestSchema:
    def test_is_a_valid_draft_2020_12_schema(self) -> None:
        """The schema itself is valid JSON Schema 2020-12 and closed to keys it does not name."""
        schema = log_schema()
        jsonschema.Draft202012Validator.check_schema(schema)
        assert "https://json-schema.org/draft/2020-12/schema" == schema["$schema"]
        assert False is schema["additionalProperties"]

    def test_names_every_attribute_of_the_vocabulary_and_no_other(self) -> None:
        """Every field name in lc_trace._attributes is a schema property (metadata: a pattern), and every property is one of them."""
        values = {A.SCHEMA_URL, A.ECS_VERSION, A.LC_METADATA_PREFIX}
        names = {
            value
            for name, value in vars(A).items()
            if name.isupper() and isinstance(value, str) and not name.startswith("OP_") and value not in values
        }
        assert names == set(log_schema()["properties"])
        [pattern] = log_schema()["patternProperties"]
        assert pattern.startswith("^" + A.LC_METADATA_PREFIX.replace(".", "\\."))

    def test_every_property_names_its_mapping(self) -> None:
        """Each property carries an x-elasticsearch mapping of a core type, and captured content is text."""
        properties = log_schema()["properties"]
        for key, prop in properties.items():
            assert prop["x-elasticsearch"]["type"] in CORE_TYPES, key
        assert {"text"} == {properties[key]["x-elasticsearch"]["type"] for key in A.CONTENT_KEYS}
        assert A.ECS_VERSION == properties[A.ECS_VERSION_KEY]["const"]

    def test_no_key_is_a_value_and_an_object(self) -> None:
        """No schema key (nor a shipper field) is the dotted prefix of another: Elasticsearch could not map both."""
        schema = log_schema()
        keys = [*schema["properties"], *schema["x-elasticsearch-shipper-fields"]["properties"], "langchain.metadata.x"]
        assert [] == key_problems(keys)
        assert ["langchain.token: a value here, and the object holding langchain.token.index elsewhere"] == (
            key_problems(["langchain.token", "langchain.token.index"])
        )


class TestTemplate:
    def test_committed_template_is_the_generated_one(self) -> None:
        """deploy/elasticsearch/index-template.json is exactly what the script generates from the schema."""
        assert gen.render(gen.build(log_schema())) == TEMPLATE_PATH.read_text(encoding="utf-8")

    def test_check_passes_on_the_committed_file(self) -> None:
        """`gen_index_template.py --check` exits 0 on the repository as committed."""
        done = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "gen_index_template.py"), "--check"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (0, "") == (done.returncode, done.stderr)

    def test_check_fails_with_a_diff_on_a_stale_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
    ) -> None:
        """A template that no longer matches the schema makes --check exit 1 and print what differs."""
        stale = committed_template()
        stale["template"]["mappings"]["properties"]["trace"]["properties"]["id"] = {"type": "text"}
        path = tmp_path / "index-template.json"
        path.write_text(gen.render(stale), encoding="utf-8")
        monkeypatch.setattr(gen, "TEMPLATE", path)
        assert 1 == gen.main(["--check"])
        err = capsys.readouterr().err
        assert "is stale" in err and "Run `python scripts/gen_index_template.py`" in err
        assert '-              "type": "text"' in err and '+              "type": "keyword"' in err

    def test_mappings_cover_every_schema_property(self) -> None:
        """Walking both: each schema property is mapped as its annotation says, and every mapped field comes from the schema."""
        schema = log_schema()
        mappings = committed_template()["template"]["mappings"]
        leaves = gen.mapping_leaves(mappings["properties"])
        for key, prop in schema["properties"].items():
            assert prop["x-elasticsearch"] == leaves.get(key), key
        shipper = schema["x-elasticsearch-shipper-fields"]["properties"]
        for key, mapping in shipper.items():
            assert mapping == leaves.get(key), key
        assert {"type": "object", "dynamic": True} == leaves["langchain.metadata"]
        assert set(leaves) == {*schema["properties"], *shipper, "langchain.metadata"}

    def test_metadata_is_a_keyword_dynamic_template(self) -> None:
        """langchain.metadata.<key> of any scalar type maps to keyword through the one dynamic template."""
        [pattern] = log_schema()["patternProperties"].values()
        [template] = committed_template()["template"]["mappings"]["dynamic_templates"]
        assert {
            "langchain_metadata": {
                "path_match": "langchain.metadata.*",
                "match_mapping_type": "*",
                "mapping": pattern["x-elasticsearch"],
            }
        } == template
        assert "keyword" == pattern["x-elasticsearch"]["type"]

    def test_template_loads_on_elasticsearch_7_10_and_9(self) -> None:
        """Root dynamic:false, only core types (no flattened, no match_only_text), and the fields Filebeat adds."""
        template = committed_template()
        assert (["lc-trace-logs-*"], "8.11.0") == (template["index_patterns"], template["_meta"]["ecs_version"])
        assert "deploy/elasticsearch/lc-trace-logs.schema.json" == template["_meta"]["schema"]
        mappings = template["template"]["mappings"]
        assert False is mappings["dynamic"]
        for key, node in mapping_nodes(mappings["properties"]):
            assert node.get("type", "object") in CORE_TYPES, key
        leaves = gen.mapping_leaves(mappings["properties"])
        assert ("keyword", "keyword", "date") == (
            leaves["log.file.path"]["type"],
            leaves["host.name"]["type"],
            leaves["@timestamp"]["type"],
        )

    def test_generator_refuses_a_key_that_is_a_value_and_an_object(self) -> None:
        """A schema with both a.b and a.b.c cannot become a mapping: the generator says which key."""
        schema = json.loads(LOG_SCHEMA_PATH.read_text(encoding="utf-8"))
        schema["properties"]["langchain.token"] = {"type": "string", "x-elasticsearch": {"type": "text"}}
        with pytest.raises(ValueError, match="langchain.token"):
            gen.build(schema)


# --- a full real run validates ----------------------------------------------------------------

NEVER_WRITTEN = {A.LC_TRACE_INTERNAL_ERRORS}  # in the vocabulary, not written today


def shop_day(handler: Any) -> None:
    """Every kind of run and event, with content capture and token lines on."""
    metadata = {"session_id": "s-1", "user": 7, "vip": True, "score": 0.5, "shop.branch": "north", "api_key": "k"}
    config: Any = {"callbacks": [handler], "metadata": metadata, "tags": ["shop", "test"]}
    call(flower_chain(), {"who": "mom"}, config, "invoke")
    call(flower_chain(), {"who": "dad"}, config, "ainvoke")
    list(flower_chain(FakeChatModel(responses=["red rose"])).stream({"who": "aunt"}, config))
    detailed = AIMessage(
        content="Tulips.",
        usage_metadata={
            "input_tokens": 10,
            "output_tokens": 5,
            "total_tokens": 15,
            "input_token_details": {"cache_read": 4, "cache_creation": 1, "audio": 2},
            "output_token_details": {"reasoning": 2, "audio": 1},
        },
    )
    offered = [{"type": "function", "function": {"name": "flower_price", "description": "Price.", "parameters": {}}}]
    tuned = FakeChatModel(responses=[detailed]).bind(
        stop=["\n"], top_p=0.9, top_k=40, frequency_penalty=0.1, presence_penalty=0.2, seed=7, n=2, tools=offered
    )
    call(tuned, "Spring flowers?", config, "invoke")
    from langchain.agents import create_agent

    model = FakeChatModel(
        responses=[
            AIMessage(content="", tool_calls=[{"id": "call_1", "name": "flower_price", "args": {"flower": "rose"}}]),
            "A rose costs 3.50 euros.",
        ]
    )
    call(create_agent(model, [flower_price], name="florist"), {"messages": [("human", "Rose?")]}, config, "ainvoke")
    with pytest.raises(RuntimeError):
        call(broken_vase, {"size": "XL"}, config, "invoke")
    call(FlowerRetriever(), "roses", config, "invoke")
    with pytest.raises(LookupError):
        call(FlowerRetriever(), "thorns", config, "ainvoke")
    with pytest.raises(KeyError):
        call(RunnableLambda(lambda x: {}[x], name="lookup"), "missing", config, "invoke")
    call(FakeListLLM(responses=["Tulips."]), "Spring flowers?", config, "invoke")

    class FlakyLLM(FakeListLLM):
        def _call(self, prompt: str, *args: Any, **kwargs: Any) -> str:
            raise TimeoutError("model timed out")

    with pytest.raises(TimeoutError):
        call(FlakyLLM(responses=["x"]), "Winter flowers?", config, "invoke")

    class RetryState:
        attempt_number = 2

    def agent_step(question: str, run_manager: Any) -> str:
        run_manager.on_retry(RetryState())
        run_manager.on_text("Thinking about roses")
        run_manager.on_agent_action(AgentAction(tool="flower_price", tool_input={"flower": "rose"}, log="price"))
        run_manager.on_agent_finish(AgentFinish(return_values={"output": "3.50"}, log="done"))
        return "3.50"

    call(RunnableLambda(agent_step, name="florist_agent"), "price?", config, "invoke")
    judge = RunnableLambda(lambda judged: {"score": 0.9, "value": "Y", "reasoning": "A rose suits a mother."})
    call(evaluated(flower_chain(), judge, name="helpfulness"), {"who": "gran"}, config, "invoke")
    rated = uuid.uuid4()
    call(FakeChatModel(responses=["Lilies."]), "White flowers?", {**config, "run_id": rated}, "invoke")
    record_evaluation("user_feedback", run_id=rated, label="thumbs_up")
    record_evaluation("toxicity", run_id=rated, error="timeout")
    run_demo(handler)
    handler.on_chain_start(None, {"x": 1}, run_id=uuid.uuid4(), name="never_ends")  # closed as 'shutdown'


def test_a_full_real_run_writes_only_valid_lines(tmp_path: Path, tracing: Any) -> None:
    """Chains, streams with token lines, a tool-calling agent, failing tools, retrievers and LLMs, events, the demo, rotation and a drop report, in both GenAI conventions versions: every line validates."""
    for conventions, name in ((V1_41, "day.jsonl"), (LATEST, "day-v0.1.0.jsonl")):
        handler = TraceHandler(
            tracer_provider=tracing[0],
            log_path=tmp_path / name,
            service_name="flower-shop",
            capture_content=True,
            log_tokens=True,
            log_max_bytes=50_000,
            log_backups=100,
            genai_conventions=conventions,
        )
        try:
            shop_day(handler)
        finally:
            handler.close()
    # Drops for the drop report: the writer is held at the log folder's lock (as by another process
    # rotating the file) while 50 runs queue 100 lines into room for 4.
    drops = tmp_path / "drops"
    drops.mkdir()
    dropping = TraceHandler(tracer_provider=tracing[0], log_path=drops / "drops.jsonl", queue_size=4)
    folder = os.open(drops, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        for i in range(50):
            RunnableLambda(lambda x: x, name="step").invoke(i, {"callbacks": [dropping]})
        fcntl.flock(folder, fcntl.LOCK_UN)
    finally:
        os.close(folder)
    dropping.close()
    assert dropping.stats.dropped_queue_full >= 90

    files = sorted([*tmp_path.glob("*.jsonl*"), *drops.glob("*.jsonl*")])
    assert any(path.name.startswith("day.jsonl.") for path in files), "the run was meant to rotate"
    assert [] == [problem for path in files for problem in log_schema_violations(path)]
    lines = [line for path in files for line in read_log(path)]
    schema = log_schema()
    assert set(schema["properties"]["event.action"]["enum"]) == {line["event.action"] for line in lines}
    seen = {key for line in lines for key in line}
    assert set(schema["properties"]) - seen <= NEVER_WRITTEN
    for name, latest in (
        ("gen_ai.usage.cache_creation.input_tokens", False),
        ("gen_ai.usage.cache_write.input_tokens", True),
    ):
        assert {latest} == {
            path.name.startswith("day-v0.1.0") for path in files for line in read_log(path) if name in line
        }
    assert {"langchain.metadata.user", "langchain.metadata.shop_branch", "langchain.metadata.api_key"} <= seen


def test_lines_from_a_subprocess_validate(tmp_path: Path) -> None:
    """An app in its own process (asyncio.run, never closed) leaves lines that validate, here and in the autouse check."""
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio
            from lc_trace import AsyncTraceHandler
            from lc_trace.testing import FakeChatModel
            from langchain_core.prompts import ChatPromptTemplate

            async def main():
                handler = AsyncTraceHandler(log_path="app.log", log_tokens=True)
                chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | FakeChatModel(streaming=True)
                await asyncio.gather(*(chain.ainvoke({"q": str(i)}, {"callbacks": [handler]}) for i in range(5)))

            asyncio.run(main())
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 0 == done.returncode, done.stderr
    assert len(read_log(tmp_path / "app.log")) > 30
    assert [] == log_schema_violations(tmp_path / "app.log")


@pytest.mark.log_schema_extra_keys("user.id", "labels.env")
def test_fields_of_a_users_processor_are_declared_with_a_marker(make_handler: Any, log_path: Path) -> None:
    """A user's structlog processor may add its own fields; the test declares them, and they are refused otherwise."""

    def add_user(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        event["user.id"] = "u-1"
        event["labels.env"] = "test"
        return event

    handler = make_handler(log_processors=[add_user])
    flower_chain().invoke({"who": "mom"}, {"callbacks": [handler]})
    assert handler.flush()
    assert {"u-1"} == {line["user.id"] for line in read_log(log_path)}
    assert [] == log_schema_violations(log_path, extra_keys=["user.id", "labels.env"])
    problems = log_schema_violations(log_path)
    assert 8 == len(problems)
    assert problems[0].endswith(
        ":1: user.id, labels.env: not a field of the log-line schema (add it to deploy/elasticsearch/lc-trace-logs.schema.json, or declare a test's own processor fields with @pytest.mark.log_schema_extra_keys)"
    )


# --- the check can fail -----------------------------------------------------------------------

RUN_ID = str(uuid.UUID(int=1))
VALID_END = {
    "@timestamp": "2026-01-01T00:00:00.000001000Z",
    "log.level": "info",
    "message": "chain_end step",
    "ecs.version": "8.11.0",
    "service.name": "flower-shop",
    "service.instance.id": "0e6d3f5c-8a1b-4c2d-9e7f-1a2b3c4d5e6f",
    "process.pid": 4242,
    "event.dataset": "lc_trace",
    "event.action": "chain_end",
    "trace.id": "0123456789abcdef0123456789abcdef",
    "span.id": "0123456789abcdef",
    "langchain.run.id": RUN_ID,
    "langchain.run.type": "chain",
    "langchain.run.name": "step",
    "langchain.metadata.user": "7",
    "event.outcome": "success",
    "event.duration": 1200,
}
VALID_ERROR = {
    **VALID_END,
    "log.level": "error",
    "event.action": "tool_error",
    "event.outcome": "failure",
    "error.type": "RuntimeError",
    "error.message": "broken",
    "error.stack_trace": "Traceback …",
}


def without(line: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in line.items() if k != key}


WRONG_LINES = {
    "duration as a string": ({**VALID_END, "event.duration": "1200"}, "event.duration", "is not of type 'integer'"),
    "negative duration": ({**VALID_END, "event.duration": -1}, "event.duration", "less than the minimum"),
    "31-char trace id": ({**VALID_END, "trace.id": "0" * 31}, "trace.id", "does not match"),
    "uppercase span id": ({**VALID_END, "span.id": "0123456789ABCDEF"}, "span.id", "does not match"),
    "unknown key": ({**VALID_END, "langchain.tokens": 3}, "langchain.tokens", "not a field of the log-line schema"),
    "the old token key": (
        {**VALID_END, "langchain.token": '"red"'},
        "langchain.token",
        "not a field of the log-line schema",
    ),
    "unknown level": ({**VALID_END, "log.level": "debug"}, "log.level", "is not one of"),
    "unknown outcome": ({**VALID_END, "event.outcome": "ok"}, "event.outcome", "is not one of"),
    "unknown action": ({**VALID_END, "event.action": "chain_finish"}, "event.action", "is not one of"),
    "impossible date": (
        {**VALID_END, "@timestamp": "2026-13-01T00:00:00.000000000Z"},
        "@timestamp",
        "is not a 'date-time'",
    ),
    "millisecond timestamp": ({**VALID_END, "@timestamp": "2026-01-01T00:00:00.001Z"}, "@timestamp", "does not match"),
    "no timestamp": (without(VALID_END, "@timestamp"), "@timestamp", "is a required property"),
    "no process": (without(VALID_END, "process.pid"), "process.pid", "is a required property"),
    "pid as a string": ({**VALID_END, "process.pid": "4242"}, "process.pid", "is not of type 'integer'"),
    "empty instance id": ({**VALID_END, "service.instance.id": ""}, "service.instance.id", "should be non-empty"),
    "end without duration": (without(VALID_END, "event.duration"), "event.duration", "is a required property"),
    "run line without ids": (without(VALID_END, "trace.id"), "trace.id", "is a required property"),
    "error without its type": (without(VALID_ERROR, "error.type"), "error.type", "is a required property"),
    "error line at info": ({**VALID_ERROR, "log.level": "info"}, "log.level", "'error' was expected"),
    "metadata object": ({**VALID_END, "langchain.metadata.user": {"id": 7}}, "langchain.metadata.user", "is not valid"),
    "tags as a string": ({**VALID_END, "langchain.tags": "shop"}, "langchain.tags", "is not of type 'array'"),
    "temperature as a string": (
        {**VALID_END, "gen_ai.request.temperature": "0.2"},
        "gen_ai.request.temperature",
        "is not of type 'number'",
    ),
    "stream flag as a string": (
        {**VALID_END, "gen_ai.request.stream": "true"},
        "gen_ai.request.stream",
        "is not of type 'boolean'",
    ),
}


@pytest.mark.log_schema_exempt("lines broken on purpose, to show the check rejects them", files=["bad.jsonl"])
class TestTheCheckCanFail:
    def test_valid_lines_pass(self, tmp_path: Path) -> None:
        """The baseline lines the cases below break are valid as they stand."""
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps(VALID_END) + "\n" + json.dumps(VALID_ERROR) + "\n", encoding="utf-8")
        assert [] == log_schema_violations(path)

    @pytest.mark.parametrize("case", sorted(WRONG_LINES))
    def test_a_wrong_line_is_rejected_naming_its_key(self, case: str, tmp_path: Path) -> None:
        """Each broken line gives one problem, with the file, the line number, the key and the reason."""
        line, key, reason = WRONG_LINES[case]
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps(VALID_END) + "\n" + json.dumps(line) + "\n", encoding="utf-8")
        [problem] = log_schema_violations(path, name="bad.jsonl")
        assert problem.startswith(f"bad.jsonl:2: {key}: "), problem
        assert reason in problem

    def test_broken_files_are_rejected(self, tmp_path: Path) -> None:
        """A torn last line, a line that is not JSON, a line that is not an object, and keys that conflict across lines."""
        path = tmp_path / "bad.jsonl"
        user, user_id = {**VALID_END, "user": "x"}, {**VALID_END, "user.id": "y"}
        rows = [json.dumps(VALID_END), "not json", "[1]", json.dumps(user), json.dumps(user_id), '{"@timestamp": "20']
        path.write_text("\n".join(rows), encoding="utf-8")
        problems = [
            "bad.jsonl:2: <line>: not JSON (Expecting value: line 1 column 1 (char 0))",
            "bad.jsonl:3: <line>: not a JSON object",
            "bad.jsonl:6: <line>: no final newline (a torn line)",
            "bad.jsonl: user: a value here, and the object holding user.id elsewhere",
        ]
        assert problems == log_schema_violations(path, extra_keys=["user", "user.id"], name="bad.jsonl")
        del problems[2]
        assert problems == log_schema_violations(path, extra_keys=["user", "user.id"], torn_tail=True, name="bad.jsonl")

    def test_a_key_that_would_collide_with_filebeats_fields_is_rejected(self, tmp_path: Path) -> None:
        """A line whose key is the prefix of a field Filebeat adds (host.name) could not be indexed either."""
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps({**VALID_END, "host": "florist-1"}) + "\n", encoding="utf-8")
        assert ["bad.jsonl: host: a value here, and the object holding host.name elsewhere"] == log_schema_violations(
            path, extra_keys=["host"], name="bad.jsonl"
        )


INNER_TESTS = """
import json
import os
import pytest

LINE = {line!r}


def write(path, *lines):
    path.write_text("".join(json.dumps(line) + "\\n" for line in lines), encoding="utf-8")


def test_wrong_type(tmp_path):
    write(tmp_path / "app.jsonl", LINE, {{**LINE, "event.duration": "12"}})


def test_rotated_and_otherwise_named_files(tmp_path):
    write(tmp_path / "app.jsonl.3", {{**LINE, "trace.id": "x"}})
    (tmp_path / "logs").mkdir()
    write(tmp_path / "logs" / "app.log", {{**LINE, "span.id": "y"}})


def test_undeclared_processor_key(tmp_path):
    write(tmp_path / "app.jsonl", {{**LINE, "user.id": "u"}})


@pytest.mark.log_schema_extra_keys("user.id")
def test_declared_processor_key(tmp_path):
    write(tmp_path / "app.jsonl", {{**LINE, "user.id": "u"}})


@pytest.mark.log_schema_exempt("raw lines", files=["raw.jsonl"])
def test_exempt_file(tmp_path):
    write(tmp_path / "raw.jsonl", {{"n": 1}})


@pytest.mark.log_schema_exempt("raw lines", files=["raw.jsonl"])
def test_exemption_is_narrow(tmp_path):
    write(tmp_path / "raw.jsonl", {{"n": 1}})
    write(tmp_path / "app.jsonl", {{"n": 2}})


@pytest.mark.log_schema_exempt("a crash's torn tail", torn_tail=True)
def test_torn_tail_only(tmp_path):
    (tmp_path / "app.jsonl").write_text(json.dumps(LINE) + "\\n" + '{{"@timest', encoding="utf-8")


def test_no_tmp_path():
    pass
"""


@pytest.mark.log_schema_exempt("the inner pytest run's files are broken on purpose", files=["inner/*"])
def test_a_violation_fails_the_test_that_wrote_it(tmp_path: Path) -> None:
    """Run by pytest, the autouse check turns a bad line into a teardown error naming file, line, key and reason; markers narrow it."""
    tests = tmp_path / "test_inner.py"
    tests.write_text(INNER_TESTS.format(line=VALID_END), encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-rE", "-p", "tests.conftest", "-p", "no:cacheprovider",
            "-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO), "--basetemp", str(tmp_path / "inner"), str(tests),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    out = done.stdout
    assert 1 == done.returncode, out + done.stderr
    errors = {line.split("::")[1].split(" ")[0] for line in out.splitlines() if line.startswith("ERROR ")}
    assert {
        "test_wrong_type",
        "test_rotated_and_otherwise_named_files",
        "test_undeclared_processor_key",
        "test_exemption_is_narrow",
    } == errors, out
    assert "8 passed, 4 errors" in out
    assert "app.jsonl:2: event.duration: '12' is not of type 'integer'" in out
    assert "app.jsonl.3:1: trace.id: 'x' does not match" in out
    assert "logs/app.log:1: span.id: 'y' does not match" in out
    assert "app.jsonl:1: user.id: not a field of the log-line schema" in out
    assert "app.jsonl:1: @timestamp: '@timestamp' is a required property" in out
    assert "raw.jsonl" not in out
