"""
Test helpers for lc_trace users (and lc_trace's own tests and demo).

* :class:`FakeChatModel` — a real LangChain chat model with no network: it streams word by
  word, reports token usage (also on the final streamed chunk, as real providers do), can
  answer with tool calls, binds tools, and can be slowed down or made to fail.
* :func:`in_memory_tracing` — a TracerProvider whose finished spans you can read.
* :func:`read_log` — the JSON lines of a log file, as dicts.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import Field

__all__ = ["FakeChatModel", "in_memory_tracing", "read_log"]


class FakeChatModel(BaseChatModel):
    """
    A chat model that answers from a script, offline.

    Each call takes the next item of ``responses`` (cycling): a string, or an ``AIMessage``
    (for tool calls). Usage is reported as ``input_tokens`` = words in the prompt and
    ``output_tokens`` = words in the answer, unless the message carries its own.
    """

    responses: list[str | AIMessage] = Field(default_factory=lambda: list[str | AIMessage](["Roses are red."]))
    model_name: str = "fake-chat-1"
    served_model: str = "fake-chat-1-2026-11-01"
    provider: str = "fake"
    temperature: float = 0.2
    max_tokens: int = 256
    streaming: bool = False
    """Stream even under ``invoke``/``agenerate``, as ``ChatOpenAI(streaming=True)`` does."""
    delay_s: float = 0.0
    fail_with: BaseException | None = None
    calls: int = 0

    model_config = {"arbitrary_types_allowed": True}

    @property
    def _llm_type(self) -> str:
        return "fake-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature, "max_tokens": self.max_tokens}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = self.provider
        return params

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """
        Accept tools (the script already says when to call them).
        """
        return self

    # -- one answer -----------------------------------------------------------------------

    def _next(self, messages: list[BaseMessage]) -> AIMessage:
        if self.fail_with is not None:
            raise self.fail_with
        item = self.responses[self.calls % len(self.responses)]
        self.calls += 1
        message = AIMessage(content=item) if isinstance(item, str) else item.model_copy()
        prompt_words = sum(len(str(m.content).split()) for m in messages)
        if message.usage_metadata is None:
            out = len(str(message.content).split()) + len(message.tool_calls)
            message.usage_metadata = {
                "input_tokens": prompt_words,
                "output_tokens": out,
                "total_tokens": prompt_words + out,
            }
        reason = "tool_calls" if message.tool_calls else "stop"
        message.response_metadata = {
            "model_name": self.served_model,
            "finish_reason": reason,
            "id": f"fake-{self.calls}",
            **message.response_metadata,
        }
        return message

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.delay_s:
            time.sleep(self.delay_s)
        return ChatResult(generations=[ChatGeneration(message=self._next(messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return ChatResult(generations=[ChatGeneration(message=self._next(messages))])

    # -- streaming: words, then a final chunk with usage and the finish reason -----------

    def _chunks(self, messages: list[BaseMessage]) -> list[ChatGenerationChunk]:
        message = self._next(messages)
        text = str(message.content) if isinstance(message.content, str) else ""
        words = text.split(" ") if text else []
        chunks = [
            ChatGenerationChunk(message=AIMessageChunk(content=w if i == 0 else " " + w)) for i, w in enumerate(words)
        ]
        tool_chunks = [
            tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
            for i, c in enumerate(message.tool_calls)
        ]
        last = AIMessageChunk(
            content="",
            tool_call_chunks=tool_chunks,
            usage_metadata=message.usage_metadata,
            response_metadata=message.response_metadata,
            chunk_position="last",
        )
        chunks.append(ChatGenerationChunk(message=last))
        return chunks

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages):
            if self.delay_s:
                time.sleep(self.delay_s)
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages):
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


def in_memory_tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    """
    A TracerProvider that keeps finished spans in memory (``exporter.get_finished_spans()``).
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """
    Every line of an lc_trace log file, parsed; raises if a line is not valid JSON.
    """
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]
