"""pytest fixtures for the real stack programs (registered by tests/conftest.py's ``pytest_plugins``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.stack import cache
from tests.stack import elasticsearch as _elasticsearch


def pytest_configure(config: pytest.Config) -> None:
    """Progress lines of first-time stack builds go to the terminal as they happen, past output capture."""

    def show(text: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None:
            print(text, file=sys.stderr, flush=True)
            return
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(text)
            reporter.flush()

    cache.set_announcer(show)


# The modules that build or download stack programs on first use (Go builds, the Maven node).
_INSTALLING = frozenset({"tests.stack.servers", "tests.stack.gobuild", "tests.stack.ilm"})


def runs_stack_programs(item: pytest.Item) -> bool:
    """Whether *item* needs a stack program: it asks for the ``elasticsearch`` node, or its module imports a builder."""
    if "elasticsearch" in getattr(item, "fixturenames", ()):
        return True
    module = getattr(item, "module", None)
    return isinstance(module, ModuleType) and any(
        isinstance(value, ModuleType) and value.__name__ in _INSTALLING for value in vars(module).values()
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """
    Tests that run stack programs go last, in their order: while ``.ci/run``'s background
    ``python -m tests.stack install`` builds them (minutes on a fresh machine), the rest of the suite runs,
    and a stack test that comes early only waits on the program's lock.
    """
    items.sort(key=runs_stack_programs)


@pytest.fixture(scope="session")
def elasticsearch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_elasticsearch.ElasticsearchNode]:
    """
    One real Elasticsearch 7.10.2 node for the whole session, on free loopback ports (installed into the
    stack cache on first use, ~15 s; then ~3 s to start). Tests share it: give each its own index.
    """
    with _elasticsearch.start(tmp_path_factory.mktemp("elasticsearch")) as node:
        yield node
