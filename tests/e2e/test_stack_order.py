"""
The suite's order, which lets ``.ci/run`` build the stack programs in the background on a fresh machine: the
tests whose code and fixtures call no stack program run first, then the Elasticsearch node's, then those
that start a Go-built program (tests/stack/fixtures.py).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.stack.cache import ROOT
from tests.stack.fixtures import stack_tier


def test_this_session_runs_in_stack_order(request: pytest.FixtureRequest) -> None:
    tiers = [stack_tier(item) for item in request.session.items]
    assert tiers == sorted(tiers)


def test_each_test_goes_where_what_it_calls_is_ready() -> None:
    """Given the Go-program module first on the command line, pytest still runs it last, per test, not per module."""
    files = [
        "tests/e2e/test_e2e_jaeger.py",
        "tests/e2e/test_elasticsearch.py",
        "tests/lifecycle/test_collector_down.py",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    order = [line for line in done.stdout.splitlines() if "::" in line]
    in_process = [i for i, test in enumerate(order) if "::TestInProcess::" in test]
    node_only = [i for i, test in enumerate(order) if test.startswith("tests/e2e/test_elasticsearch.py::")]
    go_programs = [i for i, test in enumerate(order) if test.startswith("tests/e2e/test_e2e_jaeger.py::")]
    restarts = [i for i, test in enumerate(order) if "::test_collector_stopped_and_started" in test]
    assert in_process and node_only and go_programs and restarts
    assert max(in_process) < min(node_only) and max(node_only) < min(go_programs + restarts)
