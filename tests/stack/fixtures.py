"""pytest fixtures for the real stack programs (registered by tests/conftest.py's ``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stack import elasticsearch as _elasticsearch


@pytest.fixture(scope="session")
def elasticsearch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_elasticsearch.ElasticsearchNode]:
    """
    One real Elasticsearch 7.10.2 node for the whole session, on free loopback ports (installed into the
    stack cache on first use, ~15 s; then ~3 s to start). Tests share it: give each its own index.
    """
    with _elasticsearch.start(tmp_path_factory.mktemp("elasticsearch")) as node:
        yield node
