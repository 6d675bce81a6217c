"""The installed package's version, read from its metadata so pyproject.toml stays the one place it is set."""

from __future__ import annotations

import importlib.metadata

__all__ = ["SCOPE_NAME", "VERSION"]

SCOPE_NAME = "lc_trace"
"""The instrumentation scope of lc_trace's tracer and meter (with ``VERSION``), and the lines' ``event.dataset``."""

try:
    VERSION: str = importlib.metadata.version("lc_trace")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    VERSION = "0+unknown"
