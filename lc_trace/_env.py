"""
The environment variables lc_trace reads, each constant equal to its name, and their parsers.

Precedence everywhere: an explicit constructor argument, then the variable, then the default.
A malformed value warns once and falls back to the default: a typo in a deployment must not
crash the application it observes.
"""

from __future__ import annotations

import logging
import os

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "LC_TRACE_CAPTURE_CONTENT",
    "LC_TRACE_FINISHED_SPANS",
    "LC_TRACE_FLUSH_INTERVAL_MS",
    "LC_TRACE_LOG_BACKUPS",
    "LC_TRACE_LOG_MAX_BYTES",
    "LC_TRACE_LOG_PATH",
    "LC_TRACE_LOG_TOKENS",
    "LC_TRACE_MAX_CONTENT_LENGTH",
    "LC_TRACE_QUEUE_SIZE",
    "LC_TRACE_SIGTERM",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    "OTEL_SEMCONV_STABILITY_OPT_IN",
    "env_bool",
    "env_int",
    "opt_in_values",
]

_logger = logging.getLogger("lc_trace")

DEFAULT_SERVICE_NAME = "lc_trace"
"""``service.name`` when neither the handler, ``OTEL_SERVICE_NAME`` nor the provider's resource names one."""

LC_TRACE_LOG_PATH = "LC_TRACE_LOG_PATH"
"""
.. envvar:: LC_TRACE_LOG_PATH

The JSON-lines log file. Default: ``./lc_trace_logs/lc_trace.jsonl``.
"""


LC_TRACE_CAPTURE_CONTENT = "LC_TRACE_CAPTURE_CONTENT"
"""
.. envvar:: LC_TRACE_CAPTURE_CONTENT

``true``/``false``: capture prompts, outputs, tool arguments and documents. Default: ``true``.
"""

OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""
.. envvar:: OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT

The OpenTelemetry Python GenAI switch; ``NO_CONTENT`` (or ``false``) turns capture off,
``SPAN_ONLY``, ``EVENT_ONLY``, ``SPAN_AND_EVENT`` (or ``true``) leave it on.
"""

LC_TRACE_MAX_CONTENT_LENGTH = "LC_TRACE_MAX_CONTENT_LENGTH"
"""
.. envvar:: LC_TRACE_MAX_CONTENT_LENGTH

Longest captured value, in characters, before it is truncated and marked. Default: 8192.
"""

LC_TRACE_LOG_TOKENS = "LC_TRACE_LOG_TOKENS"
"""
.. envvar:: LC_TRACE_LOG_TOKENS

``true`` writes one log line per streamed token. Default: ``false``.
"""

LC_TRACE_LOG_MAX_BYTES = "LC_TRACE_LOG_MAX_BYTES"
"""
.. envvar:: LC_TRACE_LOG_MAX_BYTES

Size at which the log file is rotated. Default: 104857600 (100 MiB); 0 never rotates.
"""

LC_TRACE_LOG_BACKUPS = "LC_TRACE_LOG_BACKUPS"
"""
.. envvar:: LC_TRACE_LOG_BACKUPS

Rotated files kept (``lc_trace.jsonl.1`` … ``.N``). Default: 5.
"""

LC_TRACE_QUEUE_SIZE = "LC_TRACE_QUEUE_SIZE"
"""
.. envvar:: LC_TRACE_QUEUE_SIZE

Lines the writer queue holds before new lines are dropped and counted. Default: 65536.
"""

LC_TRACE_FLUSH_INTERVAL_MS = "LC_TRACE_FLUSH_INTERVAL_MS"
"""
.. envvar:: LC_TRACE_FLUSH_INTERVAL_MS

Longest time a line waits in the queue before it is written. Default: 500.
"""

LC_TRACE_FINISHED_SPANS = "LC_TRACE_FINISHED_SPANS"
"""
.. envvar:: LC_TRACE_FINISHED_SPANS

``false``: every run gets the SDK's own span from its start (the API path), for an APM agent or
vendor SDK that patches the tracer in a way lc_trace cannot see. Default: ``true`` (lc_trace
builds a run's span at its end where it can stand in for the SDK's span).
"""

LC_TRACE_SIGTERM = "LC_TRACE_SIGTERM"
"""
.. envvar:: LC_TRACE_SIGTERM

``off`` (or ``false``): lc_trace installs no SIGTERM handler, nor one in front of a server's SIGINT
handler; close the handler yourself at
shutdown (``lc_trace.lifespan``). Default: ``on`` (everything held is flushed at SIGTERM).
"""

OTEL_SEMCONV_STABILITY_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
"""
.. envvar:: OTEL_SEMCONV_STABILITY_OPT_IN

OpenTelemetry's switch between versions of the semantic conventions: a comma-separated list.
``gen_ai_latest_experimental`` in it makes lc_trace follow the GenAI conventions v0.1.0
(``open-telemetry/semantic-conventions-genai``) instead of v1.41.0 of the core conventions.
"""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def env_bool(name: str, default: bool) -> bool:
    """
    Read a boolean variable; warn and return *default* on anything unrecognised.
    """
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    _logger.warning("lc_trace: ignoring %s=%r (expected true or false); using %s", name, raw, default)
    return default


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    """
    Read an integer variable of at least *minimum*; warn and return *default* otherwise.
    """
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = minimum - 1
    if value < minimum:
        _logger.warning("lc_trace: ignoring %s=%r (expected an integer >= %d); using %d", name, raw, minimum, default)
        return default
    return value


def capture_content_from_env() -> bool:
    """
    Content capture as the environment sets it: LC_TRACE_CAPTURE_CONTENT, then the OTel switch.
    """
    if os.environ.get(LC_TRACE_CAPTURE_CONTENT, "").strip():
        return env_bool(LC_TRACE_CAPTURE_CONTENT, True)
    otel = os.environ.get(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, "").strip().upper()
    if not otel:
        return True
    if otel in {"NO_CONTENT", "FALSE", "0", "NONE"}:
        return False
    if otel in {"SPAN_ONLY", "EVENT_ONLY", "SPAN_AND_EVENT", "TRUE", "1"}:
        return True
    _logger.warning(
        "lc_trace: ignoring %s=%r (expected NO_CONTENT, SPAN_ONLY, EVENT_ONLY or SPAN_AND_EVENT)",
        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT,
        otel,
    )
    return True


def opt_in_values() -> frozenset[str]:
    """
    The entries of ``OTEL_SEMCONV_STABILITY_OPT_IN`` (comma-separated, case and spaces ignored).
    """
    raw = os.environ.get(OTEL_SEMCONV_STABILITY_OPT_IN, "")
    return frozenset(part.strip().lower() for part in raw.split(",") if part.strip())
