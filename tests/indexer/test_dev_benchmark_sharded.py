"""Real videos: the first 40 rows of the shared dev benchmark decided through two shard processes
give exactly the answers of one local catalog (features are extracted once, for both runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.shards import Cached
from vdup.catalog.local import LocalCatalog
from vdup.checker import DuplicateChecker
from vdup.evaluate import read_manifest, resolve_link
from vdup.indexer.client import ShardedCatalog
from vdup.matching.decide import DecisionConfig

pytestmark = pytest.mark.slow  # shard processes over the shared benchmark

ROWS = 40


def test_dev_subset_decisions_match_one_catalog(tmp_path, shards, extractor, dev_manifest):
    rows = read_manifest(dev_manifest)[:ROWS]
    videos = [(r.uuid, Path(resolve_link(r.link, dev_manifest)).read_bytes()) for r in rows]
    cached = Cached(extractor)
    local = DuplicateChecker(cached, LocalCatalog(tmp_path / "one"), DecisionConfig())
    sharded = DuplicateChecker(cached, ShardedCatalog(shards.urls), DecisionConfig())
    try:
        want = [local.check(data, vid).to_response() for vid, data in videos]
        got = [sharded.check(data, vid).to_response() for vid, data in videos]
        assert got == want
        assert sum(r["is_duplicate"] for r in got) >= 5
    finally:
        local.catalog.close()
        sharded.catalog.close()
