"""
The chains every shutdown test app runs: ``FAST`` has four runs (a sequence, a prompt step,
``FakeChatModel``, an answer step); ``SLOW`` one more, a step that first sleeps for the seconds
its input asks. Every run carries ``metadata={"call": N, "pid": PID}``, by which the tests count.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableLambda

from lc_trace.testing import FakeChatModel

RUNS = {"fast": 4, "slow": 5}


def _chain(slow: bool) -> Any:
    async def nap(job: dict[str, Any]) -> str:
        await asyncio.sleep(job["seconds"])
        return str(job["text"])

    def nap_sync(job: dict[str, Any]) -> str:
        time.sleep(job["seconds"])
        return str(job["text"])

    prompt: Any = RunnableLambda(lambda text: [HumanMessage(text)], name="prompt")
    if slow:
        prompt = RunnableLambda(nap_sync, afunc=nap, name="nap") | prompt
    return prompt | FakeChatModel() | RunnableLambda(lambda message: message.content, name="answer")


FAST, SLOW = _chain(False), _chain(True)


def config(call: int, callbacks: list[Any]) -> dict[str, Any]:
    return {"callbacks": callbacks, "metadata": {"call": call, "pid": os.getpid()}}
