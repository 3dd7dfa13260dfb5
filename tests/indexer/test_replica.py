"""A shard replica tails the truth into its own LocalCatalog: only its shard's videos, adds,
updates and deletes in order, and a restart resumes from what its view already applied."""

from __future__ import annotations

from support.shards import record, scene
from vdup.catalog.local import LocalCatalog
from vdup.catalog.types import StoredRows
from vdup.indexer.placement import placement
from vdup.indexer.replica import Replica
from vdup.indexer.truth import Truth


def fill(truth: Truth, n: int) -> list[str]:
    ids = [f"v{i}" for i in range(n)]
    for i, vid in enumerate(ids):
        truth.add(record(vid, i), StoredRows.from_features(scene(i)))
    return ids


def test_a_replica_holds_exactly_its_shards_videos_and_finds_them(truth, tmp_path):
    ids = fill(truth, 12)
    views = []
    for shard in range(2):
        cat = LocalCatalog(tmp_path / f"r{shard}", snapshot_every=0)
        replica = Replica(truth, cat, shard, 2)
        assert replica.catch_up() == truth.head() == replica.applied
        mine = {v for v in ids if placement(v, 2) == shard}
        assert {r.video_id for r in cat.list(100)} == mine
        vid = sorted(mine)[0]
        found = cat.search(scene(int(vid[1:]), copy=1), 8, 3)
        assert found[0].video_id == vid
        views.append(cat)
    assert sum(c.stats()["videos"] for c in views) == 12
    for c in views:
        c.close()


def test_updates_and_deletes_follow_and_a_restart_resumes_where_it_stopped(truth, tmp_path):
    ids = fill(truth, 8)
    shard_ids = [v for v in ids if placement(v, 1) == 0]
    cat = LocalCatalog(tmp_path / "r", snapshot_every=0)
    replica = Replica(truth, cat, 0, 1)
    replica.catch_up()
    moved = truth.get(shard_ids[1])
    moved.root_id, moved.is_duplicate, moved.duplicate_for = shard_ids[0], True, shard_ids[0]
    truth.update_decision(moved)
    truth.delete(shard_ids[2])
    replica.catch_up()
    assert cat.get(shard_ids[1]).root_id == shard_ids[0]
    assert cat.get(shard_ids[2]) is None
    assert all(c.video_id != shard_ids[2] for c in cat.search(scene(2), 8, 8))
    applied = replica.applied
    del cat  # kill -9: no close, no snapshot
    truth.add(record("late", 40), StoredRows.from_features(scene(40)))
    again = LocalCatalog(tmp_path / "r", snapshot_every=0)
    assert again.truth_seq == applied  # the view remembers, in the same transactions
    r2 = Replica(truth, again, 0, 1)
    assert r2.step() == 1  # only the change it lacks
    assert again.get("late") is not None and again.stats()["videos"] == 8 - 1 + 1
    again.close()


def test_a_replica_started_late_catches_up_and_waits_for_a_change_it_lacks(truth, tmp_path):
    fill(truth, 3)
    cat = LocalCatalog(tmp_path / "r", snapshot_every=0)
    replica = Replica(truth, cat, 0, 1, poll_s=0.02)
    assert not replica.ready
    replica.start()
    try:
        assert replica.wait_for(truth.head(), 10)
        seq = truth.add(record("new", 9), StoredRows.from_features(scene(9)))
        assert replica.wait_for(seq, 10) and cat.get("new") is not None
        assert replica.ready
        assert not replica.wait_for(seq + 1000, 0.1)  # a change that does not exist yet
    finally:
        replica.stop()
        cat.close()
