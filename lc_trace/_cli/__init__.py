"""The ``lc-trace`` command: reads through the read side, writes the demo through the public API."""

from lc_trace._cli._main import main

__all__ = ["main"]
