"""Fixtures of the indexer tests (helpers live in support/shards.py)."""

from __future__ import annotations

import pytest

from support.shards import Shards


@pytest.fixture
def shards(tmp_path):
    """Two fresh shard processes on free loopback ports, for one test."""
    s = Shards(tmp_path, 2).start()
    yield s
    s.stop()


@pytest.fixture
def truth(database_url):
    """A ``Truth`` over a fresh, upgraded database."""
    from vdup.indexer.truth import Truth

    t = Truth(database_url)
    t.upgrade()
    yield t
    t.close()
