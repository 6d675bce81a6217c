"""
One Celery app definition for the worker and for the test that sends it tasks: kombu's
``filesystem://`` transport (no broker server) and a ``file://`` result backend, under *folder*.
"""

from __future__ import annotations

from pathlib import Path

from celery import Celery


def make(folder: Path) -> Celery:
    for name in ("in", "processed", "results", "control"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    app = Celery("shutdown", broker="filesystem://", backend=f"file://{folder / 'results'}")
    app.conf.broker_transport_options = {
        "data_folder_in": str(folder / "in"),
        "data_folder_out": str(folder / "in"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),  # kombu's default is ./control, in whatever folder it runs
        "polling_interval": 0.1,
    }
    app.conf.worker_prefetch_multiplier = 1
    app.conf.task_track_started = True  # the test sees a task STARTED, to stop the worker while it runs
    app.conf.broker_connection_retry_on_startup = True
    return app
