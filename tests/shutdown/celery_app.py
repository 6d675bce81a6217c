"""
A Celery app on kombu's ``filesystem://`` transport (no broker server) with a ``file://`` result
backend, both under ``$CELERY_DIR``; its task runs the shutdown app's chain. The worker module
calls ``lc_trace.configure()`` and nothing else, as the README says.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import Celery

from tests.shutdown.chains import FAST, config

_DIR = Path(os.environ["CELERY_DIR"])
for _name in ("in", "processed", "results"):
    (_DIR / _name).mkdir(parents=True, exist_ok=True)

app = Celery("shutdown", broker="filesystem://", backend=f"file://{_DIR / 'results'}")
app.conf.broker_transport_options = {
    "data_folder_in": str(_DIR / "in"),
    "data_folder_out": str(_DIR / "in"),
    "processed_folder": str(_DIR / "processed"),
    "polling_interval": 0.1,
}
app.conf.worker_prefetch_multiplier = 1
app.conf.task_acks_late = False

callbacks: list[Any] = []
if os.environ.get("LC_TRACE_OFF") != "1":
    import lc_trace

    callbacks = [lc_trace.configure("shutdown-celery")]


@app.task(name="rose")
def rose(call: int, seconds: float = 0.0) -> int:
    time.sleep(seconds)
    FAST.invoke(f"a rose for call {call}", config(call, callbacks))
    return call
