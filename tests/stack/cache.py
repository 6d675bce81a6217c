"""Where stack binaries live and which versions they are (one source: the repository's ``.env``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
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


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


_announce: Callable[[str], None] = _to_stderr
HEARTBEAT_S = 60.0


def set_announcer(show: Callable[[str], None]) -> None:
    """Where progress lines go (stderr by default; the pytest plugin writes them past output capture)."""
    global _announce
    _announce = show


def announce(text: str) -> None:
    """One progress line for the person at the terminal (``[lc_trace stack] ...``)."""
    _announce(f"[lc_trace stack] {text}")


@contextlib.contextmanager
def locked(name: str) -> Iterator[Path]:
    """
    The cache folder for *name*, held under an exclusive lock so that two pytest workers or a
    CI step and a test never build the same thing at once (waiting on it is announced).
    """
    folder = cache_root() / name
    folder.mkdir(parents=True, exist_ok=True)
    with open(cache_root() / f".{name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            announce(f"waiting for another process that is installing {name} (lock {lock.name}) ...")
            began = time.monotonic()
            fcntl.flock(lock, fcntl.LOCK_EX)
            announce(f"... {name} free after {time.monotonic() - began:.0f} s")
        try:
            yield folder
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def building(what: str, about: str, where: Path) -> Iterator[None]:
    """
    Announce a first-time build of *what* (taking *about*, e.g. "5 min on 2 cores") into *where*, a line
    every minute while it runs, and how long it took: the first test run is silent for minutes otherwise.
    """
    announce(f"building {what} into {where}: first run only, about {about} ...")
    began = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(HEARTBEAT_S):
            announce(f"... still building {what} ({time.monotonic() - began:.0f} s so far)")

    thread = threading.Thread(target=heartbeat, name=f"building {what}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
    announce(f"built {what} in {time.monotonic() - began:.0f} s")


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
