"""
Pure functions from one LangChain callback's arguments to one normalised record.

No I/O, no OpenTelemetry, no state: each function takes what the callback received and
returns attribute dicts named from ``_attributes``. Every value is already
a valid OpenTelemetry attribute value in the form the SDK would store it (str, bool, int, float,
or a tuple of str), so the finished-span path can hand it on unchanged. Content (prompts,
outputs, documents) is built only when capture is on, so turning it off also skips the work;
the GenAI message JSON it holds is laid out by ``_messages``.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from lc_trace import _attributes as A
from lc_trace._content import REDACTED, Serializer, is_secret_key
from lc_trace._messages import (
    _generation_output,
    _message_parts,
    _parts_json,
    _prompt_messages,
    _system_json,
    _text_messages_json,
    _text_outputs_json,
    _tool_definitions_json,
)
from lc_trace._records import (
    AGENT,
    CANCELLED,
    CHAIN,
    CHAT_MODEL,
    FAILED,
    INTERRUPTED,
    LLM,
    RETRIEVER,
    STREAM_CLOSED,
    TOOL,
    Start,
)

__all__ = [
    "agent_attributes",
    "chain_start",
    "chat_model_start",
    "classify_error",
    "error_attributes",
    "event_data",
    "llm_end",
    "llm_start",
    "retriever_end",
    "retriever_start",
    "run_name",
    "tool_end",
    "tool_start",
]

FINISH_ERROR = "error"  # v0.1.0: the finish reason of a choice that ended without one
_CONVERSATION_KEYS = ("session_id", "thread_id", "conversation_id")
_AGENT_NAMES = frozenset({"AgentExecutor"})
_NOT_ERRORS = frozenset({"GraphBubbleUp", "GraphInterrupt", "NodeInterrupt", "ParentCommand"})
_METADATA_SKIP_PREFIXES = ("ls_", "lc_")
# Message ids LangChain makes up itself (``lc_run--<run id>`` for a streamed message, ``run-`` before
# langchain-core 1.0, ``lc_`` for others): never a provider's response id.
_LANGCHAIN_ID_PREFIXES = ("lc_", "run-")


# --- names and common attributes -------------------------------------------------------


def run_name(name: str | None, serialized: Mapping[str, Any] | None, default: str) -> str:
    """
    The run's name: the ``name`` keyword first (``serialized`` is often None), then
    ``serialized["name"]``, then the last part of ``serialized["id"]``.
    """
    if name:
        return str(name)
    if serialized:
        found = serialized.get("name")
        if found:
            return str(found)
        ids = serialized.get("id")
        if isinstance(ids, Sequence) and ids and not isinstance(ids, str):
            return str(ids[-1])
    return default


def _common(
    run_type: str,
    name: str,
    run_id: Any,
    parent_run_id: Any,
    tags: Sequence[str] | None,
    metadata: Mapping[str, Any] | None,
    serializer: Serializer,
) -> dict[str, Any]:
    attrs: dict[str, Any] = {A.LC_RUN_ID: str(run_id), A.LC_RUN_TYPE: run_type, A.LC_RUN_NAME: name}
    if parent_run_id is not None:
        attrs[A.LC_RUN_PARENT_ID] = str(parent_run_id)
    if tags:
        attrs[A.LC_TAGS] = tuple(map(str, tags))
    if metadata:
        _metadata(attrs, metadata, serializer)
    return attrs


def _metadata(attrs: dict[str, Any], metadata: Mapping[str, Any], serializer: Serializer) -> None:
    """
    Scalar metadata as ``langchain.metadata.<key>`` strings (one type per key, always: a
    user's ``user_id`` may be 42 in one call and "abc" in the next, and Elasticsearch rejects
    the second). Secret keys are redacted; ``ls_*``/``lc_*`` are LangChain's own and mapped
    elsewhere. Dots in keys become ``_`` so ``a`` and ``a.b`` cannot collide, and an empty key
    is ``_`` (a field name may not end in a dot).
    """
    for key, value in metadata.items():
        if not isinstance(key, str) or key.startswith(_METADATA_SKIP_PREFIXES):
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            text = str(value)
        else:
            continue
        name = A.LC_METADATA_PREFIX + (key.replace(".", "_") or "_")
        attrs[name] = REDACTED if is_secret_key(key) else serializer.text(text)
        if key in _CONVERSATION_KEYS and A.GEN_AI_CONVERSATION_ID not in attrs:
            attrs[A.GEN_AI_CONVERSATION_ID] = attrs[name]


# --- chains, agents --------------------------------------------------------------------


def chain_start(
    serialized: Mapping[str, Any] | None,
    inputs: Any,
    *,
    run_id: Any,
    parent_run_id: Any = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    name: str | None = None,
    run_type: str | None = None,
    defers_inputs: bool = False,
    serializer: Serializer,
    capture: bool,
    **_: Any,
) -> Start:
    """
    A chain, runnable, prompt, parser or graph node; ``AgentExecutor`` is an agent. A streaming
    start (``defers_inputs``) carries a placeholder input: the real one comes with the end.
    """
    capture = capture and not defers_inputs
    label = run_name(name, serialized, CHAIN)
    kind = run_type or CHAIN
    if label in _AGENT_NAMES:
        kind = AGENT
    attrs = _common(kind, label, run_id, parent_run_id, tags, metadata, serializer)
    span_name = label
    if kind == AGENT:
        attrs[A.GEN_AI_OPERATION_NAME] = A.OP_INVOKE_AGENT
        attrs[A.GEN_AI_AGENT_NAME] = label
        span_name = f"{A.OP_INVOKE_AGENT} {label}"
    content = {A.LC_INPUT: serializer.dumps(inputs)} if capture else {}
    return Start(kind, label, span_name, False, attrs, content)


def agent_attributes(name: str) -> dict[str, Any]:
    """
    Attributes that turn a chain into an agent once it reports an agent action.
    """
    return {A.LC_RUN_TYPE: AGENT, A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT, A.GEN_AI_AGENT_NAME: name}


# --- models ----------------------------------------------------------------------------

_FLOAT_PARAMS = tuple(
    (key, f"ls_{key}", attr)
    for key, attr in (
        ("temperature", A.GEN_AI_REQUEST_TEMPERATURE),
        ("top_p", A.GEN_AI_REQUEST_TOP_P),
        ("top_k", A.GEN_AI_REQUEST_TOP_K),
        ("frequency_penalty", A.GEN_AI_REQUEST_FREQUENCY_PENALTY),
        ("presence_penalty", A.GEN_AI_REQUEST_PRESENCE_PENALTY),
    )
)
_LATEST_FLOAT_PARAMS = tuple(param for param in _FLOAT_PARAMS if param[0] != "top_k")  # v0.1.0: top_k is an int
_MAX_TOKEN_PARAMS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "max_tokens_to_sample")


def _model_attributes(
    operation: str,
    invocation_params: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    latest: bool,
) -> dict[str, Any]:
    params = invocation_params or {}
    meta = metadata or {}
    attrs: dict[str, Any] = {A.GEN_AI_OPERATION_NAME: operation}
    provider = meta.get("ls_provider") or params.get("_type")
    if provider:
        attrs[A.GEN_AI_PROVIDER_NAME] = str(provider)
    model = meta.get("ls_model_name") or params.get("model") or params.get("model_name") or params.get("model_id")
    if model:
        attrs[A.GEN_AI_REQUEST_MODEL] = str(model)
    for key, ls_key, attr in _LATEST_FLOAT_PARAMS if latest else _FLOAT_PARAMS:
        value = params[key] if key in params else meta.get(ls_key)
        if value is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            attrs[attr] = float(value)
    if latest:  # v0.1.0: sampling top-K as an int; a value that is not a whole number is no top-K
        value = params["top_k"] if "top_k" in params else meta.get("ls_top_k")
        if isinstance(value, int) and not isinstance(value, bool):
            attrs[A.GEN_AI_REQUEST_TOP_K] = value
        elif isinstance(value, float) and value.is_integer():
            attrs[A.GEN_AI_REQUEST_TOP_K] = int(value)
    for key in _MAX_TOKEN_PARAMS:
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            attrs[A.GEN_AI_REQUEST_MAX_TOKENS] = value
            break
    else:
        value = meta.get("ls_max_tokens")
        if isinstance(value, int) and not isinstance(value, bool):
            attrs[A.GEN_AI_REQUEST_MAX_TOKENS] = value
    stop = params.get("stop") or params.get("stop_sequences") or meta.get("ls_stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop and isinstance(stop, Sequence):
        attrs[A.GEN_AI_REQUEST_STOP_SEQUENCES] = tuple(str(s) for s in stop)
    seed = params.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        attrs[A.GEN_AI_REQUEST_SEED] = seed
    n = params.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n != 1:
        attrs[A.GEN_AI_REQUEST_CHOICE_COUNT] = n
    if params.get("stream") is True or params.get("streaming") is True:
        attrs[A.GEN_AI_REQUEST_STREAM] = True
    return attrs


def _model_start(
    run_type: str,
    operation: str,
    serialized: Mapping[str, Any] | None,
    *,
    run_id: Any,
    parent_run_id: Any = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    name: str | None = None,
    invocation_params: Mapping[str, Any] | None = None,
    serializer: Serializer,
    latest: bool = False,
    **_: Any,
) -> Start:
    label = run_name(name, serialized, run_type)
    attrs = _model_attributes(operation, invocation_params, metadata, latest)
    attrs.update(_common(run_type, label, run_id, parent_run_id, tags, metadata, serializer))
    model = attrs.get(A.GEN_AI_REQUEST_MODEL)
    span_name = f"{operation} {model}" if model else operation
    return Start(run_type, label, span_name, True, attrs)


def chat_model_start(
    serialized: Mapping[str, Any] | None,
    messages: Sequence[Sequence[BaseMessage]],
    *,
    serializer: Serializer,
    capture: bool,
    latest: bool = False,
    **kwargs: Any,
) -> Start:
    """
    A chat model call: ``chat {model}``, CLIENT, with the GenAI request attributes.
    """
    start = _model_start(CHAT_MODEL, A.OP_CHAT, serialized, serializer=serializer, latest=latest, **kwargs)
    if capture and messages:
        flat = [m for prompt in messages for m in prompt]
        text = _text_messages_json(flat, serializer)
        if text is None:
            parts = [_message_parts(m) for m in flat]
            text = _parts_json(parts, serializer)
            if text is None:
                text = serializer.dumps(parts)
        start.content[A.GEN_AI_INPUT_MESSAGES] = text
        # v1.41.0: the system messages' parts on their own as well (the chat history keeps them:
        # most providers take them there, and the conventions record history as it was sent).
        # v0.1.0: instructions that are part of the chat history are recorded there only.
        system = [] if latest else [m for m in flat if isinstance(m, SystemMessage)]
        if system:
            start.content[A.GEN_AI_SYSTEM_INSTRUCTIONS] = _system_json(system, serializer)
    if capture:
        _offer_tools(start, kwargs.get("invocation_params"), serializer)
    return start


def _offer_tools(start: Start, params: Mapping[str, Any] | None, serializer: Serializer) -> None:
    """
    ``gen_ai.tool.definitions`` on a model call that was offered tools.
    """
    definitions = _tool_definitions_json(params, serializer)
    if definitions is not None:
        start.content[A.GEN_AI_TOOL_DEFINITIONS] = definitions


def llm_start(
    serialized: Mapping[str, Any] | None,
    prompts: Sequence[str],
    *,
    serializer: Serializer,
    capture: bool,
    latest: bool = False,
    **kwargs: Any,
) -> Start:
    """
    A text-completion LLM call: ``text_completion {model}``, CLIENT.
    """
    start = _model_start(LLM, A.OP_TEXT_COMPLETION, serialized, serializer=serializer, latest=latest, **kwargs)
    if capture and prompts:
        start.content[A.GEN_AI_INPUT_MESSAGES] = serializer.dumps(_prompt_messages(prompts))
    if capture:
        _offer_tools(start, kwargs.get("invocation_params"), serializer)
    return start


def llm_end(
    response: LLMResult, *, serializer: Serializer, capture: bool, latest: bool = False
) -> tuple[dict[str, Any], dict[str, str]]:
    """
    Response model, id, finish reasons and token usage from an ``LLMResult``; usage comes
    from each message's ``usage_metadata`` (streaming puts it on the final chunk), then from
    ``llm_output`` for text LLMs. Cached input tokens are a part of the input, not added to it.
    v0.1.0 (*latest*) keeps the finish reasons on ``gen_ai.response.finish_reasons`` only, one
    per choice (``error`` for a choice that ended without one while others had one), and names
    the cache write and the audio tokens as it does.
    """
    attrs: dict[str, Any] = {}
    finish: list[str] = []
    outputs: list[dict[str, Any]] = []
    usage = {"in": 0, "out": 0}
    details: dict[str, int] = {}
    found_usage = False
    model: Any = None
    response_id: Any = None
    for generations in getattr(response, "generations", None) or ():
        for gen in generations:
            info = gen.generation_info or {}
            reason = info.get("finish_reason") or info.get("stop_reason")
            message = gen.message if isinstance(gen, ChatGeneration) else None  # a miss on pydantic is slow
            if message is not None:
                meta = message.response_metadata or {}
                reason = reason or meta.get("finish_reason") or meta.get("stop_reason")
                model = model or meta.get("model_name") or meta.get("model")
                # A stream's final message keeps the first provider id any chunk carried (langchain-core
                # merges chunk ids so), where some integrations put it and not in response_metadata.
                response_id = response_id or meta.get("id") or _provider_id(message.id)
                counts = getattr(message, "usage_metadata", None)
                if counts:
                    found_usage = True
                    usage["in"] += counts.get("input_tokens") or 0
                    usage["out"] += counts.get("output_tokens") or 0
                    _usage_details(details, counts, latest)
                if capture:
                    outputs.append(_message_parts(message, str(reason) if reason and not latest else None))
            elif capture:
                outputs.append(_generation_output(gen.text, str(reason) if reason and not latest else None))
            if reason:
                finish.append(str(reason))
            elif latest:
                finish.append("")
    llm_output = getattr(response, "llm_output", None) or {}
    if not found_usage:
        counts = llm_output.get("token_usage") or llm_output.get("usage")
        if isinstance(counts, Mapping):
            found_usage = True
            usage["in"] = counts.get("prompt_tokens") or counts.get("input_tokens") or 0
            usage["out"] = counts.get("completion_tokens") or counts.get("output_tokens") or 0
    model = model or llm_output.get("model_name") or llm_output.get("model")
    response_id = response_id or llm_output.get("id")
    if model:
        attrs[A.GEN_AI_RESPONSE_MODEL] = str(model)
    if response_id:
        attrs[A.GEN_AI_RESPONSE_ID] = str(response_id)
    if latest and any(finish):
        attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(reason or FINISH_ERROR for reason in finish)
    elif finish and not latest:
        attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(finish)
    if found_usage:
        attrs[A.GEN_AI_USAGE_INPUT_TOKENS] = int(usage["in"])
        attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] = int(usage["out"])
        attrs.update(details)
    if not capture:
        return attrs, {}
    text = _text_outputs_json(outputs, serializer)
    if text is None:
        text = _parts_json(outputs, serializer)
    return attrs, {A.GEN_AI_OUTPUT_MESSAGES: serializer.dumps(outputs) if text is None else text}


def _provider_id(message_id: str | None) -> str | None:
    """
    *message_id* when a provider assigned it, None when LangChain made it up.
    """
    return message_id if message_id and not message_id.startswith(_LANGCHAIN_ID_PREFIXES) else None


# (key, attribute) of a usage's input and output token details, by version.
_INPUT_DETAILS = (
    ("cache_read", A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
    ("cache_creation", A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS),
)
_OUTPUT_DETAILS = (("reasoning", A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),)
_LATEST_INPUT_DETAILS = (
    _INPUT_DETAILS[0],
    ("cache_creation", A.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS),
    ("audio", A.GEN_AI_USAGE_AUDIO_INPUT_TOKENS),
)
_LATEST_OUTPUT_DETAILS = (*_OUTPUT_DETAILS, ("audio", A.GEN_AI_USAGE_AUDIO_OUTPUT_TOKENS))


def _usage_details(details: dict[str, int], counts: Mapping[str, Any], latest: bool) -> None:
    """
    The cache, reasoning (and v0.1.0: audio) parts of a message's usage, summed over messages.
    """
    for source, named in (
        (counts.get("input_token_details"), _LATEST_INPUT_DETAILS if latest else _INPUT_DETAILS),
        (counts.get("output_token_details"), _LATEST_OUTPUT_DETAILS if latest else _OUTPUT_DETAILS),
    ):
        if source:
            for key, attr in named:
                value = source.get(key)
                if isinstance(value, int):
                    details[attr] = details.get(attr, 0) + value


# --- tools and retrievers --------------------------------------------------------------


def tool_start(
    serialized: Mapping[str, Any] | None,
    input_str: str,
    *,
    run_id: Any,
    parent_run_id: Any = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    name: str | None = None,
    inputs: Any = None,
    tool_call_id: str | None = None,
    serializer: Serializer,
    capture: bool,
    **_: Any,
) -> Start:
    """
    A tool execution: ``execute_tool {tool}``, INTERNAL, with the tool call id.
    """
    label = run_name(name, serialized, TOOL)
    attrs: dict[str, Any] = {
        A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
        A.GEN_AI_TOOL_NAME: label,
        A.GEN_AI_TOOL_TYPE: "function",
    }
    if tool_call_id:
        attrs[A.GEN_AI_TOOL_CALL_ID] = str(tool_call_id)
    description = (serialized or {}).get("description")
    if isinstance(description, str) and description:
        attrs[A.GEN_AI_TOOL_DESCRIPTION] = serializer.text(description)
    attrs.update(_common(TOOL, label, run_id, parent_run_id, tags, metadata, serializer))
    content = (
        {A.GEN_AI_TOOL_CALL_ARGUMENTS: serializer.dumps(inputs if inputs is not None else input_str)} if capture else {}
    )
    return Start(TOOL, label, f"{A.OP_EXECUTE_TOOL} {label}", False, attrs, content)


def tool_end(output: Any, *, serializer: Serializer, capture: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """
    A tool's result; a ``ToolMessage`` contributes its content and its tool call id.
    """
    attrs: dict[str, Any] = {}
    if isinstance(output, ToolMessage):
        if output.tool_call_id:
            attrs[A.GEN_AI_TOOL_CALL_ID] = str(output.tool_call_id)
        output = output.content
    content = {A.GEN_AI_TOOL_CALL_RESULT: serializer.dumps(output)} if capture else {}
    return attrs, content


def retriever_start(
    serialized: Mapping[str, Any] | None,
    query: str,
    *,
    run_id: Any,
    parent_run_id: Any = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    name: str | None = None,
    serializer: Serializer,
    capture: bool,
    latest: bool = False,
    **_: Any,
) -> Start:
    """
    A retriever query: ``retrieval {name}``, CLIENT; v0.1.0 (*latest*): ``retrieval``, INTERNAL.
    """
    label = run_name(name, serialized, RETRIEVER)
    attrs: dict[str, Any] = {A.GEN_AI_OPERATION_NAME: A.OP_RETRIEVAL}
    source = (metadata or {}).get("ls_retriever_name")
    if source:
        attrs[A.GEN_AI_DATA_SOURCE_ID] = str(source)
    attrs.update(_common(RETRIEVER, label, run_id, parent_run_id, tags, metadata, serializer))
    content = {A.GEN_AI_RETRIEVAL_QUERY_TEXT: serializer.text(str(query))} if capture else {}
    if latest:
        return Start(RETRIEVER, label, A.OP_RETRIEVAL, False, attrs, content)
    return Start(RETRIEVER, label, f"{A.OP_RETRIEVAL} {label}", True, attrs, content)


def retriever_end(documents: Any, *, serializer: Serializer, capture: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """
    The retrieved documents, as JSON text, when content is captured.
    """
    content = {A.GEN_AI_RETRIEVAL_DOCUMENTS: serializer.dumps(documents)} if capture else {}
    return {}, content


# --- errors ----------------------------------------------------------------------------


def classify_error(error: BaseException) -> str:
    """
    Why a run stopped: ``failed``, or a stop that is not a failure: ``cancelled`` (task
    cancelled), ``stream_closed`` (a consumer left a stream early) or ``interrupted``
    (LangGraph control flow such as ``GraphInterrupt``/``ParentCommand``).
    """
    if isinstance(error, asyncio.CancelledError):
        return CANCELLED
    if isinstance(error, GeneratorExit):
        return STREAM_CLOSED
    if any(k.__name__ in _NOT_ERRORS for k in type(error).__mro__):
        return INTERRUPTED
    return FAILED


def error_type(error: BaseException) -> str:
    """
    ``error.type``: the class name, qualified by its module unless it is a builtin.
    """
    kind = type(error)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def error_attributes(error: BaseException, serializer: Serializer) -> dict[str, Any]:
    """
    ``error.type``, ``error.message`` and ``error.stack_trace``, redacted and capped.
    """
    try:
        message = str(error)
    except Exception:
        message = f"<{type(error).__name__} (str failed)>"
    try:
        stack = "".join(traceback.format_exception(error))
    except Exception:
        stack = ""
    return {
        A.ERROR_TYPE: error_type(error),
        A.ERROR_MESSAGE: serializer.text(message),
        A.ERROR_STACK_TRACE: serializer.text(stack),
    }


def event_data(data: Any, serializer: Serializer, capture: bool) -> dict[str, str]:
    """
    A custom event's payload, when content is captured.
    """
    return {A.LC_EVENT_DATA: serializer.dumps(data)} if capture else {}
