"""
The benchmark's own virtualenv, ``.venv-bench``: the peers' instrumentors and pyinstrument
live there so they can never disturb the project's pinned ``.venv``.

It is (re)installed when missing or when ``bench/requirements.txt``, ``constraints.txt`` or
``pyproject.toml`` changed since the last install (a stamp file holds their hash).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["ROOT", "ensure_bench_venv"]

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-bench"
_INPUTS = ("bench/requirements.txt", "constraints.txt", "pyproject.toml")


def _digest() -> str:
    sha = hashlib.sha256()
    for name in _INPUTS:
        sha.update((ROOT / name).read_bytes())
    return sha.hexdigest()


def ensure_bench_venv(log: Callable[[str], None]) -> Path:
    """
    The bench venv's python, created and installed first if needed.
    """
    python = VENV / "bin" / "python"
    stamp = VENV / ".bench-stamp"
    digest = _digest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    if not python.exists():
        log(f"creating {VENV.name} ...")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    log(f"installing lc_trace and the peers into {VENV.name} (bench/requirements.txt) ...")
    pip = [str(python), "-m", "pip", "install", "-q"]
    for args in (["--upgrade", "pip"], ["-c", "constraints.txt", "-e", ".", "-r", "bench/requirements.txt"]):
        done = subprocess.run([*pip, *args], cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:  # show pip's own words only when it failed
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(f"installing {VENV.name} failed (pip exit {done.returncode})")
    stamp.write_text(digest)
    return python
