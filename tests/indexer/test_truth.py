"""The PostgreSQL truth, on a real server: migrations, one-transaction adds, the change log in
commit order, the race re-check, and an outage answered as Unavailable."""

from __future__ import annotations

import threading
import time

import numpy as np
import psycopg
import pytest

from support.postgres import fresh_database, running_server
from support.shards import record, scene
from vdup.catalog.types import StoredRows
from vdup.errors import Conflict, Unavailable
from vdup.indexer.truth import CHANGE_LOCK, MIGRATIONS, Truth


def rows(seed: int) -> StoredRows:
    return StoredRows.from_features(scene(seed))


def test_upgrade_is_idempotent_and_refuses_a_newer_database(database_url):
    t = Truth(database_url)
    try:
        assert t.version() == 0
        assert t.upgrade() == len(MIGRATIONS) == t.upgrade()
        assert t.version() == len(MIGRATIONS)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (len(MIGRATIONS) + 1,))
        with pytest.raises(RuntimeError, match="upgrade vdup first"):
            t.upgrade()
    finally:
        t.close()


def test_an_add_stores_the_record_and_its_rows_and_logs_one_change(truth):
    stored = rows(1)
    seq = truth.add(record("a", 1), stored)
    assert truth.head() == seq and truth.get("a") == record("a", 1)
    got_rec, got_rows = truth.stored(["a", "nope"])["a"]
    assert got_rec.video_id == "a" and set(truth.stored(["a", "nope"])) == {"a"}
    assert np.array_equal(got_rows.descriptors, stored.descriptors.astype(np.float16))
    assert np.array_equal(got_rows.views, stored.views) and np.array_equal(
        got_rows.times, stored.times
    )
    assert np.array_equal(got_rows.audio, stored.audio.astype(np.float16))
    assert truth.find_sha256("sha-a").video_id == "a"
    with pytest.raises(Conflict):
        truth.add(record("a", 1), stored)
    assert [c.op for c in truth.changes(0)] == ["add"]  # the refused add left nothing


def test_changes_come_in_order_with_updates_and_deletes(truth):
    truth.add(record("a", 1), rows(1))
    truth.add(record("b", 2), None)
    moved = record("b", 2)
    moved.root_id, moved.is_duplicate, moved.duplicate_for = "a", True, "a"
    assert truth.update_decision(moved) is not None
    assert truth.delete("a") is not None and truth.delete("a") is None
    log = truth.changes(0)
    assert [(c.op, c.video_id) for c in log] == [
        ("add", "a"),
        ("add", "b"),
        ("update", "b"),
        ("delete", "a"),
    ]
    assert [c.seq for c in log] == sorted(c.seq for c in log)
    assert log[0].original and not log[2].original
    assert [c.video_id for c in truth.changes(log[1].seq, limit=1)] == ["b"]
    assert truth.get("b").duplicate_for == "a" and truth.get("a") is None
    assert truth.stored(["a"]) == {}  # the rows went with the video


def test_a_change_number_drawn_later_never_commits_first(truth, database_url):
    """Writers draw numbers under CHANGE_LOCK and hold it to commit: a writer that starts while
    another holds the lock waits, and gets the higher number, and commits after it."""
    holder = psycopg.connect(database_url)
    holder.execute("SELECT pg_advisory_xact_lock(%s)", (CHANGE_LOCK,))
    holder.execute("INSERT INTO changes (op, video_id) VALUES ('add', 'held')")
    done = threading.Event()
    threading.Thread(target=lambda: (truth.add(record("late", 3), None), done.set())).start()
    time.sleep(0.5)
    assert not done.is_set(), "the second writer committed while the first held the lock"
    assert truth.head() == 0  # nothing committed yet: the head does not run ahead
    holder.commit()
    holder.close()
    assert done.wait(10)
    log = truth.changes(0)
    assert [c.video_id for c in log] == ["held", "late"] and log[0].seq < log[1].seq


def test_of_two_concurrent_originals_of_one_content_the_second_becomes_the_copy(truth):
    since = truth.head()  # both checks searched here and found nothing
    barrier = threading.Barrier(2)
    results = {}

    def recheck_for(vid):
        def recheck(newer):
            copy = record(vid, 5)
            src = newer[0][0]
            copy.root_id = copy.duplicate_for = src.root_id
            copy.is_duplicate, copy.matched_video = True, src.video_id
            return copy, None  # (the stored record, its decision's evidence)

        return recheck

    def check(vid):
        barrier.wait()
        results[vid] = truth.add_original(record(vid, 5), rows(5), since, recheck_for(vid))[0]

    threads = [threading.Thread(target=check, args=(v,)) for v in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    originals = [v for v, r in results.items() if not r.is_duplicate]
    copies = [r for r in results.values() if r.is_duplicate]
    assert len(originals) == 1 and len(copies) == 1
    assert copies[0].duplicate_for == originals[0]
    assert truth.get(copies[0].video_id).duplicate_for == originals[0]


def test_storage_per_video_is_measured(truth):
    for i in range(20):
        truth.add(record(f"v{i}", i), rows(i))
    sizes = truth.bytes_per_video()
    assert sizes["total"] > sizes["stored_rows"] > 8 * 512 * 2 * 0.9  # 8 float16 rows at least


@pytest.mark.slow
def test_an_outage_answers_unavailable_and_the_truth_resumes_by_itself():
    with running_server() as server, fresh_database(server) as url:
        t = Truth(url, timeout_s=2.0)
        t.upgrade()
        t.add(record("a", 1), rows(1))
        server.stop()
        with pytest.raises(Unavailable):
            t.get("a")
        with pytest.raises(Unavailable):
            t.add(record("b", 2), rows(2))
        server.start()
        deadline = time.monotonic() + 20
        while True:
            try:
                assert t.get("a") is not None
                break
            except Unavailable:
                assert time.monotonic() < deadline, "the pool did not reconnect"
                time.sleep(0.2)
        assert t.get("b") is None  # the refused add was never acknowledged nor stored
        t.add(record("b", 2), rows(2))
        t.close()
