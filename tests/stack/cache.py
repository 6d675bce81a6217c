"""Where stack binaries live and which versions they are (one source: the repository's ``.env``)."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import random
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


_PORTS_FROM = 20_000
_PICKED: set[int] = set()
_RANDOM = random.SystemRandom()  # a test that seeds ``random`` must not make two processes pick alike


def free_port() -> int:
    """
    A loopback TCP port nobody uses right now, taken from below the kernel's ephemeral range when there is room:
    the kernel gives ports from that range to every outgoing connection and every bind to port 0 on the machine,
    so one picked there can be taken between this pick and the program's own bind (a CI run lost a collector's
    start three times in a row so). Never the same port twice in one process.
    """
    low = _ephemeral_low()
    if low - _PORTS_FROM > 2_000:
        for _ in range(200):
            port = _RANDOM.randrange(_PORTS_FROM, low)
            if port not in _PICKED and _bindable(port):
                _PICKED.add(port)
                return port
    while True:  # no room below the ephemeral range (or all taken): the kernel's pick
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _PICKED:
            _PICKED.add(port)
            return port


@functools.cache
def _ephemeral_low() -> int:
    """Where the kernel's own port range starts (read once: it is machine configuration)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
