"""
The records both sides share: the run types, the reasons a run ends, and what a start maps to.

The write side stamps them on every line (``langchain.run.type``, ``langchain.run.end_reason``);
the read side groups, counts and exports by them. Written once, here, so the two cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AGENT",
    "CANCELLED",
    "CHAIN",
    "CHAT_MODEL",
    "END_REASONS",
    "EVALUATION_RESULT",
    "EVICTED",
    "FAILED",
    "INTERRUPTED",
    "LLM",
    "MODEL_RUN_TYPES",
    "NEVER_ENDED",
    "PARENT_ENDED",
    "RETRIEVER",
    "RUN_TYPES",
    "SHUTDOWN",
    "STREAM_CLOSED",
    "TOOL",
    "Start",
]

CHAIN = "chain"
CHAT_MODEL = "chat_model"
LLM = "llm"
TOOL = "tool"
RETRIEVER = "retriever"
AGENT = "agent"
RUN_TYPES = (CHAIN, CHAT_MODEL, LLM, TOOL, RETRIEVER, AGENT)
MODEL_RUN_TYPES = frozenset((CHAT_MODEL, LLM))
"""The runs that call a model: the ones with token usage, ``gen_ai.operation.name`` chat or text."""

FAILED = "failed"
CANCELLED = "cancelled"
STREAM_CLOSED = "stream_closed"
INTERRUPTED = "interrupted"
PARENT_ENDED = "parent_ended"
"""A run still open when its parent ended (LangChain never sent its end): closed with the parent."""
EVICTED = "evicted"
"""Closed because more runs were open than ``max_open_runs`` (the oldest goes first)."""
SHUTDOWN = "shutdown"
"""Still open when the handler was closed."""
END_REASONS = (FAILED, CANCELLED, STREAM_CLOSED, INTERRUPTED, PARENT_ENDED, EVICTED, SHUTDOWN)
NEVER_ENDED = "never_ended"
"""No end line in the log (the process was killed): stamped by ``lc-trace export`` only, never in a line."""

EVALUATION_RESULT = "gen_ai.evaluation.result"
"""
The GenAI conventions' event for a score given to a run: the ``event.action`` of its line (which
carries the evaluated span's ids but is no line of that run), the OpenTelemetry event's name, and
the reserved name of the custom event that records one from inside a chain.
"""


@dataclass(slots=True)
class Start:
    """
    What a start event maps to: the span's name and kind, attributes known at creation (the
    ones samplers and searches need), and captured content.
    """

    run_type: str
    name: str
    span_name: str
    client: bool
    attributes: dict[str, Any]
    content: dict[str, str] = field(default_factory=dict)
