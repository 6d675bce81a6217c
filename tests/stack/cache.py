"""Where stack binaries live and which versions they are (one source: the repository's ``.env``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def versions() -> dict[str, str]:
    """The ``KEY=value`` pairs of ``.env`` (compose's own file), comments skipped."""
    pairs: dict[str, str] = {}
    for line in (ROOT / ".env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def cache_root() -> Path:
    """The cache for built binaries, outside the repository so a clean clone reuses it."""
    root = os.environ.get("LC_TRACE_STACK_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "lc_trace" / "stack"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(name: str) -> Iterator[Path]:
    """
    The cache folder for *name*, held under an exclusive lock so that two pytest workers or a
    CI step and a test never build the same thing at once.
    """
    folder = cache_root() / name
    folder.mkdir(parents=True, exist_ok=True)
    with open(cache_root() / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
