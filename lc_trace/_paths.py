"""
Where the log lives and how its rotated files are named: the one rule the writer that rotates
and the reader that reads the rotated files back must agree on.

Imports only ``_env`` from the rest of lc_trace, so either side can take it without the other's weight.
"""

from __future__ import annotations

import os
from pathlib import Path

from lc_trace import _env

__all__ = ["DEFAULT_LOG_PATH", "default_log_path", "log_path_from", "rotated_copies", "rotated_path"]

DEFAULT_LOG_PATH = os.path.join("lc_trace_logs", "lc_trace.jsonl")
"""Where the handler writes, and the reading commands read, when nothing says otherwise."""


def log_path_from(setting: str | None) -> str:
    """
    The log path a setting (``$LC_TRACE_LOG_PATH``) names: the default when unset or blank.
    """
    return (setting or "").strip() or DEFAULT_LOG_PATH


def default_log_path() -> str:
    """
    ``$LC_TRACE_LOG_PATH``, else ``./lc_trace_logs/lc_trace.jsonl``: where the handler writes and
    the reading commands read when given no path.
    """
    return log_path_from(os.environ.get(_env.LC_TRACE_LOG_PATH))


def rotated_path(path: str | os.PathLike[str], index: int) -> str:
    """
    The rotated copy *index* of *path*: ``path.1`` is the newest, ``path.N`` the oldest.
    """
    return f"{os.fspath(path)}.{index}"


def rotated_copies(path: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """
    The rotated copies of *path* in its folder now, with their indexes, in no particular order.
    """
    main_file = Path(path)
    stem = main_file.name + "."
    try:
        names = [entry.name for entry in os.scandir(main_file.parent)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    suffixes = ((name, name[len(stem) :]) for name in names if name.startswith(stem))
    return [(int(n), main_file.parent / name) for name, n in suffixes if n.isascii() and n.isdigit()]
