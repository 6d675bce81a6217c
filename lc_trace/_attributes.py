"""
The one vocabulary of lc_trace: every name a span attribute or a log field can carry.

Spans and log lines use the same names, so a Kibana query and a Jaeger
tag search mean the same thing. GenAI names follow the OpenTelemetry semantic conventions
v1.41.0, and the few that are v0.1.0's only (a handler following the standalone GenAI
conventions, ``_conventions``) say so; LangChain-specific facts live under ``langchain.*``;
log-only fields are ECS names.

No name is both a value and the dotted prefix of another (Elasticsearch maps ``a.b`` as a value
or as an object, never both). deploy/elasticsearch/lc-trace-logs.schema.json lists every name
with its type and its mapping; a new name goes there too, or the tests fail.
"""

from __future__ import annotations

SCHEMA_URL = "https://opentelemetry.io/schemas/1.41.0"
ECS_VERSION = "8.11.0"

# --- LangChain run identity (every span, every line) -------------------------------------
LC_RUN_ID = "langchain.run.id"
LC_RUN_PARENT_ID = "langchain.run.parent_id"
LC_RUN_TYPE = "langchain.run.type"
LC_RUN_NAME = "langchain.run.name"
LC_TAGS = "langchain.tags"
LC_METADATA_PREFIX = "langchain.metadata."
LC_END_REASON = "langchain.run.end_reason"
LC_INPUT = "langchain.input"
LC_OUTPUT = "langchain.output"
LC_STREAM_CHUNKS = "langchain.stream.chunk_count"
LC_EVENT_NAME = "langchain.event.name"
LC_EVENT_DATA = "langchain.event.data"
LC_RETRY_ATTEMPT = "langchain.retry.attempt"
LC_TEXT = "langchain.text"
LC_AGENT_TOOL = "langchain.agent.tool"
LC_AGENT_TOOL_INPUT = "langchain.agent.tool_input"
LC_AGENT_LOG = "langchain.agent.log"
LC_AGENT_OUTPUT = "langchain.agent.output"
LC_TOKEN = "langchain.token.text"
LC_TOKEN_INDEX = "langchain.token.index"

# --- GenAI semantic conventions v1.41.0 --------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K = "gen_ai.request.top_k"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_SEED = "gen_ai.request.seed"
GEN_AI_REQUEST_CHOICE_COUNT = "gen_ai.request.choice.count"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"  # its v0.1.0 name
GEN_AI_USAGE_AUDIO_INPUT_TOKENS = "gen_ai.usage.audio.input_tokens"  # v0.1.0
GEN_AI_USAGE_AUDIO_OUTPUT_TOKENS = "gen_ai.usage.audio.output_tokens"  # v0.1.0
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_TOOL_DESCRIPTION = "gen_ai.tool.description"
GEN_AI_TOOL_DEFINITIONS = "gen_ai.tool.definitions"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_DATA_SOURCE_ID = "gen_ai.data_source.id"
GEN_AI_RETRIEVAL_QUERY_TEXT = "gen_ai.retrieval.query.text"
GEN_AI_RETRIEVAL_DOCUMENTS = "gen_ai.retrieval.documents"

# --- general OTel / ECS ------------------------------------------------------------------
ERROR_TYPE = "error.type"
ERROR_MESSAGE = "error.message"
ERROR_STACK_TRACE = "error.stack_trace"
TIMESTAMP = "@timestamp"
LOG_LEVEL = "log.level"
MESSAGE = "message"
ECS_VERSION_KEY = "ecs.version"
SERVICE_NAME = "service.name"
SERVICE_INSTANCE_ID = "service.instance.id"  # the process, as the resource names it (OTel and ECS alike)
PROCESS_PID = "process.pid"
EVENT_ACTION = "event.action"
EVENT_OUTCOME = "event.outcome"
EVENT_DURATION = "event.duration"
EVENT_DATASET = "event.dataset"
TRACE_ID = "trace.id"
SPAN_ID = "span.id"
# Log-only: what a span needs that its attributes do not say, so `lc-trace export` can rebuild it
# (Elastic APM's names for the same facts).
PARENT_ID = "parent.id"
SPAN_NAME = "span.name"
SPAN_KIND = "span.kind"
LC_TRACE_DROPPED_QUEUE_FULL = "lc_trace.dropped.queue_full"
LC_TRACE_DROPPED_WRITE_ERROR = "lc_trace.dropped.write_error"
LC_TRACE_DROPPED_TOTAL = "lc_trace.dropped.total"
LC_TRACE_INTERNAL_ERRORS = "lc_trace.internal_errors"

# --- values --------------------------------------------------------------------------------
OP_CHAT = "chat"
OP_TEXT_COMPLETION = "text_completion"
OP_EXECUTE_TOOL = "execute_tool"
OP_RETRIEVAL = "retrieval"
OP_INVOKE_AGENT = "invoke_agent"

# Keys whose value is captured content (prompts, outputs, documents): present only when
# content capture is on, always a JSON text string, truncated to the configured size.
CONTENT_KEYS = frozenset(
    {
        LC_INPUT,
        LC_OUTPUT,
        LC_EVENT_DATA,
        LC_TEXT,
        LC_TOKEN,
        LC_AGENT_TOOL_INPUT,
        LC_AGENT_LOG,
        LC_AGENT_OUTPUT,
        GEN_AI_INPUT_MESSAGES,
        GEN_AI_OUTPUT_MESSAGES,
        GEN_AI_SYSTEM_INSTRUCTIONS,
        GEN_AI_TOOL_DEFINITIONS,
        GEN_AI_TOOL_CALL_ARGUMENTS,
        GEN_AI_TOOL_CALL_RESULT,
        GEN_AI_RETRIEVAL_QUERY_TEXT,
        GEN_AI_RETRIEVAL_DOCUMENTS,
    }
)

# --- evaluations (the GenAI conventions' gen_ai.evaluation.result event) ---------------------
# A score, label or explanation given to a run, on its own line (event.action
# gen_ai.evaluation.result, lc_trace._records.EVALUATION_RESULT) with the evaluated span's ids.
GEN_AI_EVALUATION_NAME = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"

__all__ = sorted(name for name in dict(globals()) if name.isupper())
