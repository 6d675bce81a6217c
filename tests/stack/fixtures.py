"""pytest fixtures for the real stack programs (registered by tests/conftest.py's ``pytest_plugins``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

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


@pytest.fixture(scope="session")
def elasticsearch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_elasticsearch.ElasticsearchNode]:
    """
    One real Elasticsearch 7.10.2 node for the whole session, on free loopback ports (installed into the
    stack cache on first use, ~15 s; then ~3 s to start). Tests share it: give each its own index.
    """
    with _elasticsearch.start(tmp_path_factory.mktemp("elasticsearch")) as node:
        yield node
