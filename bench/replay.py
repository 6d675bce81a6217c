"""
lc_trace's own cost per event, without LangChain's: the callbacks one call of a scenario
delivers are recorded once, then replayed straight into handlers, side by side in one process.

    .venv/bin/python -m bench.replay                     # every scenario but gather
    .venv/bin/python -m bench.replay chain,agent --calls 50 --samples 15

Each variant is timed in CPU time of the calling thread (``time.thread_time``: neither the
writer's nor the span exporter's threads, nor time the thread waits for the CPU), with the
garbage collector off during a sample, best of the samples; the figure is µs per event above a
replay into a no-op handler. Variants: the span floor (one empty SDK span per run), lc_trace on
the API span path and on the finished-span path, and the finished path without the log file,
without content, and without either. For comparing hot-path changes on a busy machine; the
full comparison with peers is ``python -m bench``.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from bench.common import counting_provider
from bench.contenders import InlineNoopHandler, SpanFloorHandler
from bench.scenarios import SCENARIOS

Call = tuple[str, tuple[Any, ...], dict[str, Any]]
_EVENTS = (
    "on_chain_start on_chain_end on_chain_error on_chat_model_start on_llm_start on_llm_new_token on_llm_end "
    "on_llm_error on_tool_start on_tool_end on_tool_error on_retriever_start on_retriever_end on_retriever_error "
    "on_custom_event on_agent_action on_agent_finish on_text on_retry"
).split()


class _Tape(BaseCallbackHandler):
    """Notes every callback with its arguments."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def __getattribute__(self, name: str) -> Any:
        if name in _EVENTS:
            calls = object.__getattribute__(self, "calls")
            return lambda *args, **kwargs: calls.append((name, args, kwargs))
        return object.__getattribute__(self, name)


def record(scenario: str) -> list[Call]:
    """The callbacks one sync call of *scenario* delivers, in order."""
    tape = _Tape()
    SCENARIOS[scenario].build().call([tape])
    return tape.calls


def replay(handler: Any, calls: list[Call]) -> None:
    """Deliver *calls* to *handler* as a new call would (fresh run ids, same nesting)."""
    ids: dict[Any, uuid.UUID] = {}
    for name, args, kwargs in calls:
        kwargs = dict(kwargs)
        for key in ("run_id", "parent_run_id"):
            value = kwargs.get(key)
            if value is not None:
                kwargs[key] = ids.setdefault(value, uuid.uuid4())
        getattr(handler, name)(*args, **kwargs)


def variants(folder: Path) -> dict[str, Any]:
    from lc_trace import TraceHandler
    from lc_trace._spans._api import ApiSpanSink

    def lc_trace(name: str, api: bool = False, log: bool = True, content: bool = True) -> Any:
        provider, _ = counting_provider()
        handler = TraceHandler(
            tracer_provider=provider,
            log_path=folder / f"{name}.jsonl" if log else None,
            capture_content=content,
            service_name="bench",
        )
        if api:
            handler._spans = handler._recorder.spans = ApiSpanSink(provider)
        return handler

    return {
        "noop": InlineNoopHandler(),
        "span floor": SpanFloorHandler(counting_provider()[0]),
        "API path": lc_trace("api", api=True),
        "finished path": lc_trace("finished"),
        "no log": lc_trace("nolog", log=False),
        "no content": lc_trace("nocontent", content=False),
        "neither": lc_trace("neither", log=False, content=False),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="?", default="chain,nested,stream,agent")
    parser.add_argument("--calls", type=int, default=50, help="replays per sample")
    parser.add_argument("--samples", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lc_trace_bench_replay_") as tmp:
        handlers = variants(Path(tmp))
        print("µs per event above a replay into a no-op handler (CPU time of the calling thread, best of samples)")
        print(f"| scenario | events | {' | '.join(h for h in handlers if h != 'noop')} |")
        print(f"|---|---:|{'---:|' * (len(handlers) - 1)}")
        for key in args.scenarios.split(","):
            calls = record(key)
            best = dict.fromkeys(handlers, float("inf"))
            for _ in range(args.samples):
                for name, handler in handlers.items():
                    gc.collect()
                    gc.disable()
                    began = time.thread_time()
                    for _ in range(args.calls):
                        replay(handler, calls)
                    spent = time.thread_time() - began
                    gc.enable()
                    best[name] = min(best[name], spent / args.calls / len(calls) * 1e6)
            base = best.pop("noop")
            print(f"| {key} | {len(calls)} | {' | '.join(f'{v - base:.2f}' for v in best.values())} |")
        for handler in handlers.values():
            close = getattr(handler, "close", None)
            if close is not None:
                close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
