"""The mapping's shortcuts give exactly what the general path gives."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, ChatMessage, HumanMessage, SystemMessage, ToolMessage

from lc_trace._content import Serializer
from lc_trace._mapping import _message_parts, _text_messages_json

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
