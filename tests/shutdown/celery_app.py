"""
The Celery worker's module, as a user writes it: the app, ``lc_trace.configure()``, and a task
that runs the shutdown app's chain with the handler in ``config["callbacks"]``; nothing else.
``CELERY_DIR`` holds the broker's and the results' folders.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from tests.shutdown.celery_broker import make
from tests.shutdown.chains import FAST, config

app = make(Path(os.environ["CELERY_DIR"]))

callbacks: list[Any] = []
if os.environ.get("LC_TRACE_OFF") != "1":
    import lc_trace

    callbacks = [lc_trace.configure("shutdown-celery")]


@app.task(name="rose")
def rose(call: int, seconds: float = 0.0) -> int:
    time.sleep(seconds)
    FAST.invoke(f"a rose for call {call}", config(call, callbacks))
    return call
