"""
Count what a user would count in a log path after a fault: lines lost, duplicated, torn.

Reads the live file and every rotated one (``path``, ``path.1`` … ``path.N``) as bytes, so a
torn line, a glued line or a NUL hole is seen as such, not hidden by a lenient reader.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LINES_PER_CALL = 6  # a sequence of two lambdas: three runs, a start and an end line each


@dataclass
class Ledger:
    """What the files at one log path hold."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    torn: list[bytes] = field(default_factory=list)
    nul_bytes: int = 0
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def traced(self) -> list[dict[str, Any]]:
        """Lines of traced calls (not lc_trace's own drop reports)."""
        return [r for r in self.rows if r.get("event.action") != "lc_trace_dropped"]

    @property
    def drop_reports(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("event.action") == "lc_trace_dropped"]

    @property
    def duplicated(self) -> int:
        """Lines whose (run id, action) appears more than once."""
        keys = Counter((r["langchain.run.id"], r["event.action"]) for r in self.traced)
        return sum(n - 1 for n in keys.values() if n > 1)

    def calls(self, worker: str) -> Counter[int]:
        """Lines per call number of one worker."""
        return Counter(
            int(r["langchain.metadata.call"]) for r in self.traced if r.get("langchain.metadata.worker") == worker
        )

    def lost(self, worker: str, calls: int) -> int:
        """Lines of *worker*'s first *calls* calls that are not in the files."""
        held = self.calls(worker)
        return sum(LINES_PER_CALL - min(held.get(call, 0), LINES_PER_CALL) for call in range(calls))


def read_ledger(log_path: Path) -> Ledger:
    """Parse every file of *log_path*, keeping torn lines and NUL bytes as findings."""
    ledger = Ledger()
    pattern = re.compile(re.escape(log_path.name) + r"(\.\d+)?")
    files = sorted(
        (p for p in log_path.parent.iterdir() if pattern.fullmatch(p.name)),
        key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
    )
    for path in files:
        data = path.read_bytes()
        ledger.sizes[path.name] = len(data)
        ledger.nul_bytes += data.count(b"\0")
        *whole, tail = data.split(b"\n")
        if tail:
            ledger.torn.append(tail)
        for raw in whole:
            try:
                row = json.loads(raw)
            except ValueError:
                ledger.torn.append(raw)
                continue
            if not isinstance(row, dict) or "event.action" not in row:
                ledger.torn.append(raw)
            else:
                ledger.rows.append(row)
    return ledger


def read_stats(folder: Path) -> dict[str, dict[str, int]]:
    """Each worker's ``handler.stats`` as it wrote them after close()."""
    return {p.stem.removeprefix("stats-"): json.loads(p.read_text()) for p in folder.glob("stats-*.json")}
