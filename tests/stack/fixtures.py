"""pytest fixtures for the real stack programs (registered by tests/conftest.py's ``pytest_plugins``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import CodeType, ModuleType

import pytest

from tests.stack import cache
from tests.stack import elasticsearch as _elasticsearch


def pytest_configure(config: pytest.Config) -> None:
    """Progress lines of first-time stack builds go to the terminal as they happen, past output capture."""

    def show(text: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if capture is None:
            print(text, file=sys.stderr, flush=True)
            return
        with capture.global_and_fixture_disabled():
            if reporter is None or hasattr(config, "workerinput"):  # an xdist worker: its stderr is the terminal's
                print(text, file=sys.stderr, flush=True)
                return
            reporter.ensure_newline()
            reporter.write_line(text)
            reporter.flush()

    cache.set_announcer(show)


# What a test's code calls, module by module: Go-built programs (minutes on a fresh machine), or the Elasticsearch
# node and the ILM checker (Maven, ready in about a minute).
_GO_BUILT = frozenset({"tests.stack.servers", "tests.stack.gobuild"})
_MAVEN_INSTALLED = frozenset({"tests.stack.elasticsearch", "tests.stack.ilm"})


def _modules_called(function: object) -> set[str]:
    """The modules whose names *function*'s code (nested functions included) reads from its globals."""
    code, namespace = getattr(function, "__code__", None), getattr(function, "__globals__", {})
    codes = [code] if isinstance(code, CodeType) else []
    names: set[str] = set()
    while codes:
        current = codes.pop()
        names.update(current.co_names)
        codes.extend(const for const in current.co_consts if isinstance(const, CodeType))
    return {value.__name__ for name in names if isinstance(value := namespace.get(name), ModuleType)}


def stack_tier(item: pytest.Item) -> int:
    """
    0: *item* runs no stack program; 1: only the Elasticsearch node or the ILM checker; 2: a Go-built program.
    Read from the code of the test and of the fixtures it uses (a helper in between is not followed: such a test
    counts as 0 and waits on the program's lock if it comes early).
    """
    functions = [getattr(item, "function", None)]
    fixtures = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    functions += [definition.func for definitions in fixtures.values() for definition in definitions]
    called = set().union(*(_modules_called(function) for function in functions))
    return 2 if called & _GO_BUILT else int(bool(called & _MAVEN_INSTALLED))


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: the `stack` marks below count for it
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """
    Tests ordered by what they need from the stack, keeping their order otherwise: while ``.ci/run``'s background
    ``python -m tests.stack install`` builds the programs, the tests that need none run first, then those that
    need only the node (mostly waiting on it, so their time hides under the builds), then the Go programs'.
    A stack test that comes before its program is ready waits on the program's lock, and says so. Under xdist
    (pyproject's addopts) the workers take the tests in this order too, so the Go programs' tests come last.

    Every test that needs a stack program (tier 1 or 2) is marked ``stack`` here, so ``-m "not stack"`` leaves
    out exactly those; a file that is all stack tests says so itself too (``pytestmark``).
    """
    items.sort(key=stack_tier)
    for item in items:
        if stack_tier(item) and item.get_closest_marker("stack") is None:
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def elasticsearch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_elasticsearch.ElasticsearchNode]:
    """
    One real Elasticsearch 7.10.2 node for the whole session, on free loopback ports (installed into the
    stack cache on first use, ~15 s; then ~3 s to start). Tests share it: give each its own index.
    """
    with _elasticsearch.start(tmp_path_factory.mktemp("elasticsearch")) as node:
        yield node
