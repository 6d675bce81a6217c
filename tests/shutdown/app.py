"""
The app the shutdown tests serve, as a user writes it: ``lc_trace.configure()`` and its handler in
``config["callbacks"]``, nothing else (no close, no lifespan, no signal handling of its own).

``asgi`` is a FastAPI app (uvicorn, hypercorn, gunicorn's uvicorn worker), ``wsgi`` a plain WSGI
one (gunicorn's sync worker). ``GET /call/N`` runs ``FAST`` for call N and answers N;
``GET /slow/N/S`` runs ``SLOW``, which sleeps S seconds first. With ``LC_TRACE_OFF=1`` the same
app runs without lc_trace, to learn the server's own exit status; with ``LIFESPAN=1`` it closes
the handler in its lifespan with ``lc_trace.lifespan(handler)``.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from tests.shutdown.chains import FAST, SLOW, config

callbacks: list[Any] = []
lifespan = None
if os.environ.get("LC_TRACE_OFF") != "1":
    import lc_trace

    callbacks = [lc_trace.configure("shutdown-app")]
    if os.environ.get("LIFESPAN") == "1":  # the documented second line of defence
        lifespan = lc_trace.lifespan(callbacks[0])

asgi = FastAPI(lifespan=lifespan)


@asgi.get("/call/{call}")
async def call(call: int) -> int:
    await FAST.ainvoke(f"a rose for call {call}", config(call, callbacks))
    return call


@asgi.get("/slow/{call}/{seconds}")
async def slow(call: int, seconds: float) -> int:
    await SLOW.ainvoke({"text": f"a slow rose for call {call}", "seconds": seconds}, config(call, callbacks))
    return call


def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    _, kind, number, *seconds = environ["PATH_INFO"].split("/")
    if kind == "slow":
        SLOW.invoke(
            {"text": f"a slow rose for call {number}", "seconds": float(seconds[0])}, config(int(number), callbacks)
        )
    else:
        FAST.invoke(f"a rose for call {number}", config(int(number), callbacks))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [number.encode()]
