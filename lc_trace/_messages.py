"""
GenAI message JSON, laid out as ``_content.py`` accounts for it.

The semantic conventions' message shape (``{"role", "parts": [...], "finish_reason"}``) for
``gen_ai.input.messages``, ``gen_ai.output.messages``, ``gen_ai.system_instructions`` and
``gen_ai.tool.definitions``. The usual prompt or completion is plain short text, which the
serializer's walk would copy unchanged: the fast paths here write it without the walk, and so
must count its length budget exactly as the walk counts (``CONTAINER_COST`` a list or mapping,
every key and string). The overheads below are derived from that count, so they cannot drift
from it. Anything a fast path is unsure of returns None, and the caller walks it all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from lc_trace._content import CONTAINER_COST, Serializer, message_role

__all__ = [
    "_content_parts",
    "_generation_output",
    "_message_parts",
    "_parts_json",
    "_prompt_messages",
    "_system_json",
    "_text_messages_json",
    "_text_outputs_json",
    "_tool_definitions_json",
]

# What the walk's length budget takes for the layout's own keys and containers, besides the
# role, text and finish reason strings themselves:
_MESSAGE_OVERHEAD = CONTAINER_COST + len("role") + len("parts") + CONTAINER_COST  # the message and its parts list: 25
_REASON_OVERHEAD = len("finish_reason")  # 13
_TEXT_PART_OVERHEAD = CONTAINER_COST + len("type") + len("text") + len("content")  # one text part: 23
# Room to spare in the input fast paths, so a message near the budget is walked.
_SPARE = 16
_TEXT_MESSAGE_OVERHEAD = _MESSAGE_OVERHEAD + _TEXT_PART_OVERHEAD + _SPARE  # 64
_INPUT_LIST_OVERHEAD = CONTAINER_COST + CONTAINER_COST  # the list around the messages, with room to spare: 16

# The part fields whose values come from the user or the model (tool arguments, tool results):
# walked; every other field of _message_parts' layout is a string or None.
_WALKED_PART_FIELDS = frozenset(("arguments", "response"))
_PART_DEPTH = 4  # a part's fields as the walk meets them: list, message, parts list, part


# --- the layout ------------------------------------------------------------------------


def _content_parts(content: Any) -> list[dict[str, Any]]:
    """
    A message's content as parts: text as text parts, other blocks by their type only (tool
    calls come as the message's ``tool_calls``).
    """
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    parts: list[dict[str, Any]] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                parts.append({"type": "text", "content": block})
            elif isinstance(block, Mapping):
                kind = block.get("type")
                if kind == "text":
                    parts.append({"type": "text", "content": block.get("text", "")})
                elif kind not in ("tool_use", "tool_call", "function_call"):  # those come as tool_calls
                    parts.append({"type": str(kind or "unknown")})
    return parts


def _message_parts(message: BaseMessage, finish_reason: str | None = None) -> dict[str, Any]:
    """
    A message in the GenAI semantic-conventions shape: ``{"role", "parts": [...]}``.
    """
    if isinstance(message, ToolMessage):
        parts: list[dict[str, Any]] = [
            {"type": "tool_call_response", "id": message.tool_call_id, "response": message.content}
        ]
    else:
        parts = _content_parts(message.content)
        # Only AI messages have tool calls; getattr on another pydantic message misses slowly (~2.4 us).
        for call in (message.tool_calls if isinstance(message, AIMessage) else None) or ():
            parts.append(
                {"type": "tool_call", "id": call.get("id"), "name": call.get("name"), "arguments": call.get("args")}
            )
    out: dict[str, Any] = {"role": message_role(message), "parts": parts}
    if finish_reason:
        out["finish_reason"] = finish_reason
    return out


def _prompt_messages(prompts: Sequence[str]) -> list[dict[str, Any]]:
    """
    A text LLM's prompts as user messages of one text part each (an empty prompt keeps its part).
    """
    return [{"role": "user", "parts": [{"type": "text", "content": p}]} for p in prompts]


def _generation_output(text: str, finish_reason: str | None) -> dict[str, Any]:
    """
    A text LLM's generation as an assistant message of one text part.
    """
    out: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": text}]}
    if finish_reason:
        out["finish_reason"] = finish_reason
    return out


def _tool_definitions_json(params: Mapping[str, Any] | None, serializer: Serializer) -> str | None:
    """
    ``gen_ai.tool.definitions``: the tools the model was offered (``invocation_params["tools"]``,
    OpenAI's or Anthropic's shape), as ``{"type", "name", "description", "parameters"}``; None
    when it was offered none.
    """
    tools = params.get("tools") if params else None
    if not tools or not isinstance(tools, Sequence):
        return None
    definitions = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        function = tool.get("function")
        spec = function if isinstance(function, Mapping) else tool
        definition = {"type": str(tool.get("type") or "function"), "name": spec.get("name")}
        if spec.get("description"):
            definition["description"] = spec.get("description")
        schema = spec.get("parameters", spec.get("input_schema"))
        if schema is not None:
            definition["parameters"] = schema
        definitions.append(definition)
    return serializer.dumps(definitions) if definitions else None


# --- JSON text without the walk, where the walk would change nothing ---------------------


def _text_messages_json(messages: Sequence[BaseMessage], serializer: Serializer) -> str | None:
    """
    ``serializer.dumps`` of the messages' parts when every message is plain text (the usual
    prompt), without the walk: parts of short strings under fixed keys, fewer than the item cap
    and inside the length budget, which the walk returns unchanged. None for anything else
    (tool calls, tool results, content blocks, long text), which takes the walk.
    """
    if len(messages) > serializer.max_items:
        return None
    out = []
    size = _INPUT_LIST_OVERHEAD
    for message in messages:
        content = message.content
        if type(content) is not str or isinstance(message, ToolMessage):
            return None
        if isinstance(message, AIMessage) and message.tool_calls:
            return None
        role = message_role(message)
        size += _TEXT_MESSAGE_OVERHEAD + len(role) + len(content)
        out.append({"role": role, "parts": [{"type": "text", "content": content}] if content else []})
    if size > serializer.max_length:
        return None
    return serializer.text(orjson.dumps(out).decode())


def _system_json(messages: Sequence[BaseMessage], serializer: Serializer) -> str:
    """
    ``gen_ai.system_instructions``: the system messages' parts. Plain short text (the usual
    system prompt) is written without the serializer's walk, as ``_text_messages_json`` does.
    """
    contents = [m.content for m in messages]
    if all(type(c) is str for c in contents) and len(contents) <= serializer.max_items:
        size = _INPUT_LIST_OVERHEAD + sum(_TEXT_MESSAGE_OVERHEAD + len(c) for c in contents)
        if size <= serializer.max_length:
            parts = [{"type": "text", "content": c} for c in contents if c]
            return serializer.text(orjson.dumps(parts).decode())
    return serializer.dumps([part for c in contents for part in _content_parts(c)])


def _text_outputs_json(outputs: list[dict[str, Any]], serializer: Serializer) -> str | None:
    """
    ``serializer.dumps(outputs)`` without the walk when every output is text parts (the usual
    completion): the walk returns such parts unchanged while no list or mapping passes the item
    cap and its strings, keys and containers stay inside the length budget, counted here as it
    counts them. None for anything else (tool calls, other content blocks, long text).
    """
    cap = serializer.max_items
    if len(outputs) > cap or cap < 3:  # a message has up to three keys
        return None
    size = CONTAINER_COST  # the list around them
    for output in outputs:
        role = output["role"]
        parts = output["parts"]
        reason = output.get("finish_reason")
        if type(role) is not str or len(parts) > cap or len(output) != 2 + (reason is not None):
            return None
        size += _MESSAGE_OVERHEAD + len(role)
        if reason is not None:
            if type(reason) is not str:
                return None
            size += _REASON_OVERHEAD + len(reason)
        for part in parts:
            content = part.get("content")
            if part["type"] != "text" or type(content) is not str or len(part) != 2:
                return None
            size += _TEXT_PART_OVERHEAD + len(content)
    if size > serializer.max_length:
        return None
    return serializer.text(orjson.dumps(outputs).decode())


def _parts_json(messages: list[dict[str, Any]], serializer: Serializer) -> str | None:
    """
    ``serializer.dumps(messages)`` for messages in ``_message_parts``' layout, walking only the
    tool arguments and tool results: the layout's own strings go as they are while the whole
    stays inside the walk's length budget (counted as the walk counts: ``CONTAINER_COST`` a
    container, every key and string) and no container passes the item cap, which is when the walk
    leaves them unchanged. None otherwise, and the caller walks it all.
    """
    cap = serializer.max_items
    if len(messages) > cap:
        return None
    used = CONTAINER_COST
    out = []
    for message in messages:
        if len(message) > cap:
            return None
        used += CONTAINER_COST
        laid: dict[str, Any] = {}
        for key, value in message.items():
            used += len(key)
            if key == "parts":
                if len(value) > cap:
                    return None
                used += CONTAINER_COST
                parts = []
                for part in value:
                    if len(part) > cap:
                        return None
                    used += CONTAINER_COST
                    fields: dict[str, Any] = {}
                    for name, field in part.items():
                        used += len(name)
                        if name in _WALKED_PART_FIELDS:
                            field, spent = serializer.nested(field, _PART_DEPTH)
                            used += spent
                        elif type(field) is str:
                            used += len(field)
                        elif field is not None:
                            return None
                        fields[name] = field
                    parts.append(fields)
                value = parts
            elif type(value) is str:
                used += len(value)
            else:
                return None
            laid[key] = value
        out.append(laid)
    if used > serializer.max_length:
        return None
    try:
        return serializer.text(orjson.dumps(out).decode())
    except TypeError:  # the walk yields JSON types only; a last guard
        return None
