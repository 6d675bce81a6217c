"""The mapping's shortcuts give exactly what the general path gives."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, ChatMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult

from lc_trace import _mapping as mapping
from lc_trace._attributes import GEN_AI_OUTPUT_MESSAGES
from lc_trace._content import Serializer
from lc_trace._mapping import llm_end
from lc_trace._messages import _message_parts, _parts_json, _text_messages_json, _text_outputs_json

PLAIN = [
    [SystemMessage("You are a florist."), HumanMessage("Which flower for mom?")],
    [HumanMessage("")],
    [HumanMessage('é ✿ "quoted" \\ back\nslash')],
    [AIMessage("A red rose."), AIMessageChunk(content="partial"), ChatMessage(role="critic", content="meh")],
    [HumanMessage("my key is sk-proj-abcdefghijklmnopqrstuvwxyz012345, bearer abcdefghijk")],
    [HumanMessage("x" * 40) for _ in range(5)],
]
NOT_PLAIN = [
    [HumanMessage(content=[{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "x"}}])],
    [AIMessage("", tool_calls=[{"id": "c1", "name": "price", "args": {"flower": "rose"}}])],
    [ToolMessage("3.50", tool_call_id="c1")],
]


def test_the_fast_paths_count_the_layout_as_the_walk_does():
    """The overheads the fast paths add for the layout's keys and containers are what the walk takes for them."""
    from lc_trace import _messages

    def cost(value: dict[str, object]) -> int:
        return Serializer().nested(value, 0)[1]

    assert _messages._MESSAGE_OVERHEAD == cost({"role": "", "parts": []})
    assert _messages._TEXT_PART_OVERHEAD == cost({"type": "text", "content": ""})
    assert _messages._REASON_OVERHEAD == cost({"finish_reason": ""}) - cost({})
    assert _messages._TEXT_MESSAGE_OVERHEAD >= cost({"role": "", "parts": [{"type": "text", "content": ""}]})


class TestTextMessagesJson:
    @pytest.mark.parametrize("max_length", [16, 64, 100, 8192])
    @pytest.mark.parametrize("messages", PLAIN)
    def test_same_text_as_the_walk(self, messages, max_length):
        """Plain text messages: the shortcut's JSON is the walk's, to the byte, or it declines."""
        serializer = Serializer(max_length)
        walked = serializer.dumps([_message_parts(m) for m in messages])
        fast = _text_messages_json(messages, serializer)
        assert fast is None or walked == fast
        if max_length == 8192:
            assert walked == fast

    def test_near_the_length_budget_it_agrees_or_declines(self):
        """Around the walk's length budget the shortcut agrees with the walk or leaves it to the walk."""
        taken = 0
        for n in range(0, 300):
            serializer = Serializer(200)
            messages = [SystemMessage("s" * 10), HumanMessage("h" * n)]
            fast = _text_messages_json(messages, serializer)
            assert fast is None or serializer.dumps([_message_parts(m) for m in messages]) == fast
            taken += fast is not None
        assert 0 < taken < 300

    def test_declines_beyond_the_item_cap(self):
        """More messages than a list may keep: the walk marks the cut, so the shortcut declines."""
        serializer = Serializer(8192, max_items=3)
        assert _text_messages_json([HumanMessage("a")] * 4, serializer) is None

    @pytest.mark.parametrize("messages", NOT_PLAIN)
    def test_declines_anything_but_text(self, messages):
        """Content blocks, tool calls and tool results go through the walk."""
        assert _text_messages_json(messages, Serializer()) is None


def _generation(text: str, reason: str | None = None, **message: object) -> ChatGeneration:
    info = {"finish_reason": reason} if reason else None
    return ChatGeneration(message=AIMessage(text, **message), generation_info=info)  # type: ignore[arg-type]


PLAIN_OUTPUTS = [
    [[_generation("A red rose.", "stop")]],
    [[_generation("")]],
    [[_generation('é ✿ "quoted" \\ back\nslash', "length")], [_generation("second", "stop")]],
    [[_generation("my key is sk-proj-abcdefghijklmnopqrstuvwxyz012345, bearer abcdefghijk", "stop")]],
    [[Generation(text="plain completion", generation_info={"finish_reason": "stop"}), Generation(text="two")]],
    [[_generation("x" * 40, "stop") for _ in range(5)]],
]
OTHER_OUTPUTS = [
    [[_generation("", "tool_calls", tool_calls=[{"id": "c1", "name": "price", "args": {"api_key": "k"}}])]],
    [[ChatGeneration(message=AIMessage(content=[{"type": "text", "text": "hi"}, {"type": "image_url"}]))]],
]


class TestTextOutputsJson:
    @staticmethod
    def _both(generations, serializer, monkeypatch) -> tuple[str, str]:
        response = LLMResult(generations=generations)
        fast = llm_end(response, serializer=serializer, capture=True)[1][GEN_AI_OUTPUT_MESSAGES]
        with monkeypatch.context() as patch:
            patch.setattr(mapping, "_text_outputs_json", lambda outputs, serializer: None)
            patch.setattr(mapping, "_parts_json", lambda outputs, serializer: None)
            walked = llm_end(response, serializer=serializer, capture=True)[1][GEN_AI_OUTPUT_MESSAGES]
        return fast, walked

    @pytest.mark.parametrize("max_length", [16, 64, 100, 8192])
    @pytest.mark.parametrize("generations", PLAIN_OUTPUTS + OTHER_OUTPUTS)
    def test_same_text_as_the_walk(self, generations, max_length, monkeypatch):
        """A response's output messages are the walk's JSON to the byte, whichever way they are written."""
        fast, walked = self._both(generations, Serializer(max_length), monkeypatch)
        assert walked == fast

    @pytest.mark.parametrize("generations", PLAIN_OUTPUTS)
    def test_text_outputs_skip_the_walk(self, generations):
        """Text completions within the budget are written without the walk."""
        response = LLMResult(generations=generations)
        outputs = json.loads(llm_end(response, serializer=Serializer(), capture=True)[1][GEN_AI_OUTPUT_MESSAGES])
        assert _text_outputs_json(outputs, Serializer()) is not None

    @pytest.mark.parametrize("generations", OTHER_OUTPUTS)
    def test_declines_anything_but_text(self, generations):
        """Tool calls and other content blocks go through the walk (tool arguments may hold secret keys)."""
        response = LLMResult(generations=generations)
        outputs = json.loads(llm_end(response, serializer=Serializer(), capture=True)[1][GEN_AI_OUTPUT_MESSAGES])
        assert _text_outputs_json(outputs, Serializer()) is None

    @pytest.mark.parametrize("reason", [None, "stop"])
    def test_near_the_length_budget_it_agrees_or_declines(self, reason, monkeypatch):
        """Around the walk's length budget the shortcut agrees with the walk or leaves it to the walk."""
        taken = 0
        for n in range(0, 300):
            serializer = Serializer(200)
            generations = [[_generation("h" * n, reason), _generation("t", reason)]]
            fast, walked = self._both(generations, serializer, monkeypatch)
            assert walked == fast
            outputs = [{"role": "assistant", "parts": [{"type": "text", "content": t}]} for t in ("h" * n, "t")]
            if reason:
                outputs = [{**o, "finish_reason": reason} for o in outputs]
            taken += _text_outputs_json(outputs, serializer) is not None
        assert 0 < taken < 300

    def test_declines_beyond_the_item_cap(self):
        """More outputs than a list may keep: the walk marks the cut, so the shortcut declines."""
        outputs = [{"role": "assistant", "parts": []}] * 4
        assert _text_outputs_json(outputs, Serializer(8192, max_items=3)) is None


DEEP: dict[str, object] = {"leaf": "x"}
for _ in range(20):
    DEEP = {"d": DEEP}
TOOL_TURNS = [
    [
        HumanMessage("What do roses cost?"),
        AIMessage(
            "",
            tool_calls=[
                {"id": "c1", "name": "flower_price", "args": {"flower": "rose", "api_key": "sk-x", "n": 3}},
                {"id": "c2", "name": "stock", "args": {"flower": "rose", "filters": [1, 2.5, None, True]}},
            ],
        ),
        ToolMessage("3.50", tool_call_id="c1"),
        ToolMessage(content=[{"type": "text", "text": "12 in stock"}], tool_call_id="c2"),
    ],
    [AIMessage("", tool_calls=[{"id": "c1", "name": "deep", "args": DEEP}])],
    [AIMessage("", tool_calls=[{"id": "c1", "name": "long", "args": {"text": "y" * 500}}])],
    [AIMessage("", tool_calls=[{"id": f"c{i}", "name": "many", "args": {"i": i}} for i in range(12)])],
    [AIMessage("", tool_calls=[{"id": "c1", "name": "secret", "args": {"token": "t", "note": "Bearer abcdefghijk"}}])],
    [ToolMessage("x" * 120, tool_call_id="c9"), HumanMessage(content=[{"type": "image_url", "image_url": {}}])],
]


class TestPartsJson:
    """Messages with tool calls and tool results: only their arguments and results are walked."""

    @pytest.mark.parametrize("max_items", [3, 100])
    @pytest.mark.parametrize("max_length", [16, 64, 200, 8192])
    @pytest.mark.parametrize("messages", TOOL_TURNS + PLAIN)
    def test_same_text_as_the_walk(self, messages, max_length, max_items):
        """The shortcut's JSON is the walk's, to the byte, or it declines (deep, long, many, secret)."""
        serializer = Serializer(max_length, max_items=max_items)
        parts = [_message_parts(m) for m in messages]
        fast = _parts_json(parts, serializer)
        assert fast is None or serializer.dumps(parts) == fast
        if max_length == 8192 and max_items == 100:
            assert fast is not None

    def test_near_the_length_budget_it_agrees_or_declines(self):
        """Around the walk's length budget the shortcut agrees with the walk or leaves it to the walk."""
        taken = 0
        for n in range(0, 300):
            serializer = Serializer(260)
            messages = [
                AIMessage("", tool_calls=[{"id": "c1", "name": "p", "args": {"q": "q" * n}}]),
                ToolMessage("r" * 20, tool_call_id="c1"),
            ]
            parts = [_message_parts(m) for m in messages]
            fast = _parts_json(parts, serializer)
            assert fast is None or serializer.dumps(parts) == fast
            taken += fast is not None
        assert 0 < taken < 300

    def test_the_model_sees_the_same_input_either_way(self, monkeypatch):
        """chat_model_start's gen_ai.input.messages for a tool-calling turn is the walk's JSON."""
        serializer = Serializer()
        start = mapping.chat_model_start(None, [TOOL_TURNS[0]], run_id="r", serializer=serializer, capture=True)
        with monkeypatch.context() as patch:
            patch.setattr(mapping, "_parts_json", lambda parts, serializer: None)
            walked = mapping.chat_model_start(None, [TOOL_TURNS[0]], run_id="r", serializer=serializer, capture=True)
        assert walked.content == start.content
        assert "[REDACTED]" in start.content["gen_ai.input.messages"]
