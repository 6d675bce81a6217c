"""Serialising, redacting and truncating what chains carry (lc_trace._content)."""

from __future__ import annotations

import json
import random

import pytest
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompt_values import ChatPromptValue

from lc_trace._content import _SECRET_VALUE, REDACTED, Serializer, is_secret_key, redact_text


class TestSecretKeys:
    @pytest.mark.parametrize(
        "key",
        [
            "api_key",
            "apiKey",
            "OPENAI_API_KEY",
            "x-api-key",
            "token",
            "access_token",
            "X-Auth-Token",
            "password",
            "db_passwd",
            "client_secret",
            "Authorization",
            "cookie",
            "private_key",
            "aws_secret_access_key",
        ],
    )
    def test_credential_keys_are_secret(self, key):
        """Keys naming credentials, in any case style, are recognised."""
        assert True is is_secret_key(key)

    @pytest.mark.parametrize(
        "key",
        [
            "max_tokens",
            "input_tokens",
            "total_tokens",
            "tokenizer",
            "session_id",
            "shop",
            "author",
            "keyword",
            "monkey",
        ],
    )
    def test_ordinary_keys_are_not(self, key):
        """Token counts, session ids and ordinary words are kept."""
        assert False is is_secret_key(key)


class TestRedactText:
    @pytest.mark.parametrize(
        "secret",
        [
            "sk-proj-Zq8vT3BlbkFJ4aX9c0d1e2f3g4h5",
            "sk-ant-api03-abcdefghijklmnopqrstuv",
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "AIzaSyA1234567890abcdefghijklmnopqrstuv",
            "xoxb-123456789012-abcdefghij",
            "hf_abcdefghijklmnopqrstuvwxyzABCDEF",
            "pk-live-abcdefghijklmnopqrstuv",
            "BEARER abcdefgh12345678",
            "bEaReR abcdefgh12345678",
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "gho_abcdefghijklmnopqrstuvwxyz0123456789",
        ],
    )
    def test_credential_shapes_are_replaced(self, secret):
        """Common key and token shapes inside text are replaced, the text around them kept."""
        assert f"use {REDACTED} here" == redact_text(f"use {secret} here")

    def test_ordinary_text_is_untouched(self):
        """Prose with dashes and short ids is left as it is."""
        text = "ask-me-anything about sk- and the task-force, id chatcmpl-123"
        assert text == redact_text(text)

    def test_finds_exactly_what_the_credential_pattern_finds(self):
        """
        redact_text finds matches from the literals the pattern's branches start with, not by
        running the pattern over every position: on 20,000 random texts (secrets whole, cut short,
        back to back, beside look-alike prose and characters that lower to two) it replaces
        exactly what the pattern's own ``sub`` replaces.
        """
        rnd = random.Random(20261130)
        shapes = [
            "sk-proj-" + "a" * 20,
            "rk-live-abcdefghijklmnopq",
            "Bearer abcdefgh1234",
            "BASIC dXNlcjpwYXNz==",
            "bearer\t" + "x" * 9,
            "eyJabcdefg.hijklmn.opqrstu",
            "AKIA" + "A" * 16,
            "ghs_" + "a" * 30,
            "github_pat_" + "b" * 30,
            "AIza" + "c" * 35,
            "xoxb-" + "1" * 10,
            "hf_" + "z" * 30,
        ]
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-./=+\t\nİßkghsprBb"
        for _ in range(20_000):
            pieces = []
            for _ in range(rnd.randint(0, 6)):
                pieces.append("".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12))))
                if rnd.random() < 0.5:
                    shape = rnd.choice(shapes)
                    pieces.append(shape if rnd.random() < 0.7 else shape[: rnd.randint(1, len(shape))])
            text = "".join(pieces)
            if rnd.random() < 0.1:
                text *= 100  # past the length below which a cheap check comes first
            assert redact_text(text) == _SECRET_VALUE.sub(REDACTED, text), text


class TestSerializer:
    @pytest.mark.parametrize(
        "value",
        [
            HumanMessage("roses?"),
            AIMessage("3.50 a stem"),
            AIMessage(""),
            SystemMessage("be brief", name="shop"),
            AIMessage("", tool_calls=[{"id": "c1", "name": "price", "args": {"api_key": "k"}}]),
            ToolMessage("3.50", tool_call_id="c1"),
            HumanMessage([{"type": "text", "text": "roses?"}]),
            ChatMessage(content="hi", role="florist-in-chief"),
            HumanMessage("x" * 100),
            ChatPromptValue(messages=[SystemMessage("be brief"), HumanMessage("roses?")]),
            ChatPromptValue(messages=[HumanMessage(f"m{i}") for i in range(150)]),
            ChatPromptValue(messages=[HumanMessage("sk-proj-" + "a" * 20), AIMessage("y" * 50)]),
            ChatPromptValue(
                messages=[HumanMessage("roses?"), AIMessage("", tool_calls=[{"id": "c", "name": "p", "args": {}}])]
            ),
        ],
    )
    def test_plain_messages_come_out_as_the_walk_makes_them(self, value):
        """Plain text messages and chat prompts skip the walk: the same JSON, cut and redacted alike."""
        small = Serializer(max_length=96)
        for serializer in (Serializer(), small):
            walked = serializer.text(json.dumps(serializer.jsonable(value), separators=(",", ":"), ensure_ascii=False))
            assert serializer.dumps(value) == walked

    def test_messages_are_role_and_content(self):
        """Messages serialise as role/content (plus tool calls), not as their pydantic repr."""
        value = ChatPromptValue(
            messages=[
                SystemMessage("be brief"),
                HumanMessage("roses?"),
                AIMessage("", tool_calls=[{"id": "c1", "name": "price", "args": {"flower": "rose"}}]),
                ToolMessage("3.50", tool_call_id="c1"),
            ]
        )
        assert [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "roses?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "c1", "name": "price", "args": {"flower": "rose"}}],
            },
            {"role": "tool", "content": "3.50", "tool_call_id": "c1"},
        ] == json.loads(Serializer().dumps(value))

    def test_secret_keys_are_redacted_at_any_depth(self):
        """A credential-named key is redacted wherever it sits."""
        data = {"config": {"headers": {"Authorization": "Basic abc"}, "retries": 3}, "api_key": "x"}
        assert {"config": {"headers": {"Authorization": REDACTED}, "retries": 3}, "api_key": REDACTED} == json.loads(
            Serializer().dumps(data)
        )

    def test_long_strings_and_collections_are_cut_and_marked(self):
        """Strings past max_length and collections past max_items are cut, saying how much."""
        serializer = Serializer(max_length=20, max_items=3)
        assert "abcdefghijklmnopqrst…[truncated 10 of 30 chars]" == serializer.jsonable(
            "abcdefghijklmnopqrstuvwxyz1234"
        )
        assert [0, 1, 2, "… 7 more items"] == serializer.jsonable(list(range(10)))
        assert {"a": 0, "b": 1, "c": 2, "…": "1 more items"} == serializer.jsonable({"a": 0, "b": 1, "c": 2, "d": 3})

    def test_whole_text_is_capped(self):
        """The JSON text as a whole is capped too, with the marker at the end."""
        text = Serializer(max_length=50).dumps([str(i) for i in range(100)])
        assert text.startswith('["0","1"') and text.endswith("chars]")
        assert len(text) < 100

    def test_tiny_limits_are_refused(self):
        """A max_content_length too small to hold anything is refused with a clear message."""
        with pytest.raises(ValueError, match="max_content_length must be at least 16"):
            Serializer(max_length=3)

    def test_non_string_keys_and_odd_numbers(self):
        """Non-string keys become strings; NaN and infinity become strings (strict JSON)."""
        assert {"1": "inf", "(1, 2)": "nan"} == json.loads(Serializer().dumps({1: float("inf"), (1, 2): float("nan")}))


class TestHugeValues:
    """A value of any size is cut to max_content_length before it costs more than one of that size."""

    SECRET = "sk-proj-" + "A1b2C3d4" * 6

    def test_a_50_mb_string_is_cut_and_says_its_size(self):
        """A 50 MB document becomes max_length characters and a marker with its real length."""
        text = Serializer(max_length=8192).text("rose " * 10_000_000)
        assert text.startswith("rose rose") and text.endswith("…[truncated 49991808 of 50000000 chars]")
        assert len(text) < 8192 + 50

    @pytest.mark.parametrize("offset", [-30, -10, -3, 0, 5])
    def test_a_secret_straddling_the_cut_is_redacted(self, offset):
        """However the cut splits a key, no part of it that could identify it is kept."""
        value = "x" * (100 + offset) + self.SECRET + "y" * 10_000_000
        for out in (Serializer(max_length=100).text(value), Serializer(max_length=100).dumps({"doc": value})):
            assert "A1b2C3d4" not in out
            assert "sk-proj-A" not in out

    def test_short_secrets_beside_a_huge_string_are_still_redacted(self):
        """Only long strings are redacted as they are cut; short ones (and keys) are scanned in the JSON text."""
        out = Serializer(max_length=200).dumps({"key": self.SECRET, self.SECRET: 1, "doc": "z" * 5_000_000})
        assert self.SECRET not in out and out.count(REDACTED) >= 2

    def test_a_secret_in_an_objects_repr_is_redacted(self):
        """Text an object makes for itself (its repr) is scanned like any other."""

        class Client:
            def __repr__(self) -> str:
                return f"Client(key={TestHugeValues.SECRET!r})"

        assert self.SECRET not in Serializer().dumps([Client()])

    def test_bytes_of_any_size_are_a_marker(self):
        """bytes are never decoded or copied: a marker with their size."""
        assert '"<50000000 bytes>"' == Serializer().dumps(b"\0" * 50_000_000)

    def test_a_million_items_stop_at_the_content_limit(self):
        """A very long list is walked only until its JSON would pass max_length, then says how many items are left."""
        data = Serializer(max_length=1000, max_items=10**9).jsonable(["rose"] * 1_000_000)
        assert 100 < len(data) < 300
        assert data[-1].startswith("… ") and data[-1].endswith("more items")

    def test_deep_and_wide_nesting_is_bounded(self):
        """A value 2^20 leaves wide through shared references walks only as far as the limit."""
        value: object = "leaf"
        for _ in range(20):
            value = [value, {"k": value}]
        text = Serializer(max_length=4096).dumps(value)
        assert len(text) < 4096 + 60 and "more items" in text and "<max depth: list>" in text


def test_a_50_mb_input_through_a_traced_chain(make_handler, log_path):
    """A 50 MB input to a real chain: the call works, the line holds max_content_length of it, no secret."""
    from langchain_core.runnables import RunnableLambda

    handler = make_handler(max_content_length=4096)
    document = "Roses need sun. " * 3_000_000 + TestHugeValues.SECRET
    assert 48_000_056 == RunnableLambda(len, name="count").invoke(document, {"callbacks": [handler]})
    handler.close()
    lines = [json.loads(raw) for raw in log_path.read_text().splitlines()]
    start = next(l for l in lines if l["event.action"] == "chain_start")
    assert start["langchain.input"].startswith('"Roses need sun.') and len(start["langchain.input"]) < 4200
    assert all(len(raw) < 20_000 for raw in log_path.read_text().splitlines())


# --- what the model was offered: tool definitions and system instructions -----------------------


def _offer_a_model(make_handler, exporter, log_path, **options):
    from langchain_core.tools import tool
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from lc_trace import _attributes as A
    from lc_trace.testing import FakeChatModel, read_log

    @tool
    def flower_price(flower: str) -> str:
        """The price of a flower, api_key=sk-proj-lctraceDummyKeyNotARealKey0123456789."""
        return "3.50"

    handler = make_handler(**options)
    model = FakeChatModel().bind(tools=[convert_to_openai_tool(flower_price)])
    model.invoke([SystemMessage("You are a florist. " * 20), HumanMessage("Rose?")], {"callbacks": [handler]})
    assert handler.flush()
    (span,) = exporter.get_finished_spans()
    (start,) = [line for line in read_log(log_path) if line["event.action"] == "llm_start"]
    keys = (A.GEN_AI_TOOL_DEFINITIONS, A.GEN_AI_SYSTEM_INSTRUCTIONS)
    return {k: span.attributes.get(k) for k in keys}, {k: start.get(k) for k in keys}


def test_tool_definitions_and_system_instructions(make_handler, exporter, log_path):
    """The tools bound to the model and its system message are on the span and the start line, in the conventions' shapes."""
    on_span, on_line = _offer_a_model(make_handler, exporter, log_path)
    assert on_span == on_line
    (definition,) = json.loads(on_span["gen_ai.tool.definitions"])
    assert "function" == definition["type"]
    assert "flower_price" == definition["name"]
    assert {"flower": {"type": "string"}} == definition["parameters"]["properties"]
    assert "sk-proj-" not in definition["description"]  # redacted like all content
    assert [{"type": "text", "content": "You are a florist. " * 20}] == json.loads(
        on_span["gen_ai.system_instructions"]
    )


def test_tool_definitions_and_system_instructions_truncated(make_handler, exporter, log_path):
    """Both are cut to max_content_length, like every captured value."""
    on_span, _ = _offer_a_model(make_handler, exporter, log_path, max_content_length=64)
    for value in on_span.values():
        assert "truncated" in value
        assert len(value) < 140


def test_tool_definitions_and_system_instructions_off_with_content_off(make_handler, exporter, log_path):
    """With content capture off, neither is recorded."""
    on_span, on_line = _offer_a_model(make_handler, exporter, log_path, capture_content=False)
    assert {None} == set(on_span.values()) == set(on_line.values())


@pytest.mark.parametrize(
    "texts",
    [["You are a florist."], ["Be brief.", "", "api_key=sk-proj-lctraceDummyKeyNotARealKey0123456789"], ["x" * 8100]],
)
def test_system_instructions_shortcut_is_the_walk(texts):
    """Plain system text written without the walk is the walk's text to the byte, near and past the length budget too."""
    from lc_trace._messages import _content_parts, _system_json

    serializer = Serializer()
    messages = [SystemMessage(t) for t in texts]
    assert serializer.dumps([p for t in texts for p in _content_parts(t)]) == _system_json(messages, serializer)


class TestKinds:
    """The walker treats each object by its type, as the isinstance tests it learned that from would."""

    def test_subclasses_and_enums_take_their_base_types_way(self):
        """str/int/float subclasses become their base values, enums their value; secrets are redacted."""
        import enum

        from pydantic import SecretStr

        class Colour(enum.Enum):
            RED = {"hex": "#f00"}

        class Size(enum.IntEnum):
            BIG = 3

        class Name(str):
            pass

        value = [Name("rose"), Size.BIG, Colour.RED, SecretStr("p"), b"ab"]
        assert ["rose", 3, {"hex": "#f00"}, REDACTED, "<2 bytes>"] == Serializer().jsonable(value)

    def test_a_type_registered_as_a_mapping_later_is_walked_as_one(self):
        """A class first seen as an unknown object is walked as a mapping once it is registered as one."""
        from collections.abc import Mapping

        class Bag:
            def __init__(self) -> None:
                self.data = {"rose": 1, "api_key": "k"}

            def items(self):
                return self.data.items()

            def __len__(self) -> int:
                return len(self.data)

            def __getitem__(self, key):
                return self.data[key]

            def __iter__(self):
                return iter(self.data)

            def __repr__(self) -> str:
                return "Bag()"

        serializer = Serializer()
        assert "Bag()" == serializer.jsonable(Bag())
        Mapping.register(Bag)
        assert {"rose": 1, "api_key": REDACTED} == serializer.jsonable(Bag())

    def test_an_object_claiming_a_class_is_walked_as_that_class(self):
        """A proxy whose __class__ names a mapping is walked as isinstance sees it, object by object."""

        class Proxy:
            def __init__(self, target) -> None:
                self.target = target

            @property
            def __class__(self):
                return type(self.target)

            def items(self):
                return self.target.items()

            def __len__(self) -> int:
                return len(self.target)

            def __repr__(self) -> str:
                return f"Proxy({self.target!r})"

        serializer = Serializer()
        assert {"password": REDACTED} == serializer.jsonable(Proxy({"password": "p"}))
        assert "Proxy(None)" == serializer.jsonable(Proxy(None))

    def test_cycles_through_any_container_are_marked_where_they_close(self):
        """A cycle is marked at the object that closes it, a tuple included; shared values are not cycles."""
        loop: list[object] = []
        pair = (loop,)
        loop.append(pair)
        shared = {"k": "v"}
        assert [[["<cycle: tuple>"]]] == Serializer().jsonable([pair])
        assert [{"k": "v"}, {"k": "v"}] == Serializer().jsonable([shared, shared])

    @pytest.mark.parametrize("max_items", [1, 2, 100])
    def test_a_message_of_short_strings_is_what_the_walk_of_its_fields_gives(self, max_items, monkeypatch):
        """Messages skip the walk of their fields only where it would return them unchanged, near any budget."""
        messages = [
            SystemMessage("s" * 10),
            HumanMessage("h" * 30, name="ann"),
            ToolMessage("3.50", tool_call_id="c1"),
            AIMessage("", tool_calls=[{"id": "c1", "name": "price", "args": {"token": "t"}}]),
            HumanMessage(content=[{"type": "text", "text": "hi"}]),
        ]
        shortcut = Serializer._as_they_are
        answers = []
        monkeypatch.setattr(Serializer, "_as_they_are", lambda *args: answers.append(shortcut(*args)) or answers[-1])
        for max_length in range(16, 140):
            serializer = Serializer(max_length, max_items)
            for message in messages:
                value = {"x" * (max_length // 3): message}
                fast = serializer.jsonable(value)
                with monkeypatch.context() as patch:
                    patch.setattr(Serializer, "_as_they_are", lambda self, fields, walk: False)
                    assert serializer.jsonable(value) == fast, (max_length, message)
        assert (True in answers) is (max_items > 1) and False in answers
