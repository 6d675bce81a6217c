"""
The package's architecture, checked by the real import-linter (`lint-imports`, contracts in pyproject.toml's
``[tool.importlinter]``), and shown to be a check that can fail: in a copy of the package, one import that breaks
a contract makes `lint-imports` fail naming that contract and that import. Plus the run-time half of one contract:
importing lc_trace and its handler loads neither the CLI nor the read side.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = {
    contract["id"]: contract["name"]
    for contract in tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"][
        "contracts"
    ]
}


def lint_imports(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the lc_trace package under *root*, with *root*'s pyproject.toml (the working directory's), no cache."""
    tool = Path(sys.executable).with_name("lint-imports")
    command = [str(tool)] if tool.exists() else [shutil.which("lint-imports") or "lint-imports"]
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "400", "NO_COLOR": "1"}
    return subprocess.run(
        [*command, "--no-cache", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_contracts_are_kept() -> None:
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in CONTRACTS.values():
        assert f"{name} KEPT" in done.stdout
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in done.stdout


# One deliberate violation per contract: (contract id, file that gets the import, the import, importer -> imported
# as lint-imports reports it). The files are ones every layout of the package has (a package's __init__.py, or a
# module no split touches).
VIOLATIONS = [
    ("write-not-read", "_spans/_api.py", "import lc_trace._read", "lc_trace._spans._api -> lc_trace._read"),
    ("sinks-not-langchain", "_logs/_sink.py", "import langchain_core", "lc_trace._logs._sink -> langchain_core"),
    ("read-not-write", "_read/__init__.py", "import lc_trace._recorder", "lc_trace._read -> lc_trace._recorder"),
    ("no-cycles", "_stats.py", "import lc_trace._otlp", "._stats -> ._otlp (1 import)"),
    ("handler-loads-no-reader", "_handlers.py", "import lc_trace._cli", "lc_trace._handlers -> lc_trace._cli"),
]


def test_every_contract_has_a_violation_below() -> None:
    assert sorted(CONTRACTS) == sorted(contract for contract, *_ in VIOLATIONS)


@pytest.mark.parametrize(("contract", "module", "line", "reported"), VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_a_violating_import_breaks_its_contract(
    tmp_path: Path, contract: str, module: str, line: str, reported: str
) -> None:
    shutil.copytree(REPO / "lc_trace", tmp_path / "lc_trace", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    assert lint_imports(tmp_path, "--contract", contract).returncode == 0, "the copy keeps it before the edit"

    target = tmp_path / "lc_trace" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # a deliberate violation\n", encoding="utf-8")
    done = lint_imports(tmp_path)

    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{CONTRACTS[contract]} BROKEN" in done.stdout
    assert reported in done.stdout


def test_importing_the_handler_loads_neither_the_cli_nor_the_reader() -> None:
    """The run-time side of `handler-loads-no-reader`: what a traced app imports, in a fresh interpreter."""
    script = (
        "import sys, lc_trace, lc_trace._handlers, lc_trace._configure\n"
        "from lc_trace import AsyncTraceHandler, TraceHandler, configure, lifespan\n"
        "lc_trace.__version__\n"
        "print(sorted(m for m in sys.modules if m.startswith(('lc_trace._read', 'lc_trace._cli'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
