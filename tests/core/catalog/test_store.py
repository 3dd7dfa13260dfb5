"""The SQLite store's review side: verdicts re-point groups in one transaction, the negative
list, evidence kept with the record and dropped with the video, and the v2 -> v3 migration."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from vdup.catalog.local import LocalCatalog
from vdup.catalog.review import QueueQuery, Verdict
from vdup.catalog.store import SCHEMA_VERSION, CatalogCorrupt, SqliteStore
from vdup.catalog.types import VideoRecord
from vdup.errors import Conflict, NotFound, StorageError
from vdup.features.types import Thumbnails
from vdup.matching.explain import Evidence, FramePair


def rec(vid: str, root: str = "", matched: str = "", t: float = 0.0, score=0.9) -> VideoRecord:
    root = root or vid
    dup = root != vid
    return VideoRecord(
        vid,
        root,
        f"sha-{vid}",
        dup,
        root if dup else "",
        matched,
        score,
        "visual" if dup else "",
        1.0,
        1,
        t,
    )


def evidence(matched: str) -> Evidence:
    pairs = (FramePair(0.0, 0.0, b"\xff\xd8q\xff\xd9", b"\xff\xd8m\xff\xd9"),)
    return Evidence(
        matched, matched, True, 0.9, "visual", (0.0, 1.0), (0.0, 1.0), {"f": 1.0}, pairs
    )


@pytest.fixture
def store(tmp_path):
    """A group: a <- b <- c (c matched b), d matched a; and an unrelated original x."""
    s = SqliteStore(tmp_path / "catalog.sqlite")
    items = [
        (rec("a", t=1), None, None, None),
        (rec("b", "a", "a", t=2), None, None, evidence("a")),
        (rec("c", "a", "b", t=3, score=0.5), None, None, evidence("b")),
        (rec("d", "a", "a", t=4), None, None, evidence("a")),
        (rec("x", t=5), None, None, None),
    ]
    s.insert(items, pending=False, index_max_sim=1.0)
    yield s
    s.close()


def test_not_duplicate_splits_off_the_video_and_what_was_matched_through_it(store):
    out = store.apply_verdict(Verdict("b", "not_duplicate", who="alice", note="own work"))
    assert (out.record.root_id, out.record.is_duplicate, out.record.duplicate_for) == (
        "b",
        False,
        "",
    )
    assert out.changed == ("c",)
    assert store.record("c").root_id == "b" and store.record("c").duplicate_for == "b"
    assert store.record("d").root_id == "a"  # matched a itself: stays
    assert store.negatives(["b", "c"]) == {"b": frozenset({"a"})}
    entry = store.audit()[0]
    assert (entry.who, entry.video_id, entry.note) == ("alice", "b", "own work")
    assert entry.before["root_id"] == "a" and entry.after["root_id"] == "b"


def test_duplicate_of_moves_a_whole_group_under_another_root(store):
    out = store.apply_verdict(Verdict("a", "duplicate_of", of="x"))
    assert out.record.root_id == "x" and out.record.matched_video == "x"
    assert set(out.changed) == {"b", "c", "d"}
    assert {store.record(v).root_id for v in "abcd"} == {"x"}
    assert store.record("c").duplicate_for == "x"


def test_duplicate_of_clears_a_contradicting_negative(store):
    store.apply_verdict(Verdict("b", "not_duplicate"))
    assert store.negatives(["b"])
    store.apply_verdict(Verdict("b", "duplicate_of", of="a"))
    assert store.negatives(["b"]) == {}
    assert store.record("b").root_id == "a"


def test_verdicts_that_cannot_hold_change_nothing(store):
    with pytest.raises(NotFound):
        store.apply_verdict(Verdict("nope", "not_duplicate"))
    with pytest.raises(NotFound):
        store.apply_verdict(Verdict("b", "duplicate_of", of="nope"))
    with pytest.raises(Conflict):  # a root cannot copy its own copy
        store.apply_verdict(Verdict("a", "duplicate_of", of="c"))
    with pytest.raises(Conflict):  # b cannot copy c, which was matched through b
        store.apply_verdict(Verdict("b", "duplicate_of", of="c"))
    assert store.audit() == [] and store.record("a").root_id == "a"


def test_a_failed_verdict_transaction_leaves_records_and_log_as_they_were(store):
    store.db.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON verdicts BEGIN SELECT RAISE(FAIL, 'x'); END"
    )
    with pytest.raises(StorageError):
        store.apply_verdict(Verdict("b", "not_duplicate"))
    assert store.record("b").root_id == "a" and store.record("c").root_id == "a"
    assert store.negatives(["b"]) == {}


def test_the_queue_lists_open_duplicates_newest_first_or_by_score(store):
    newest = [i.record.video_id for i in store.review_queue(QueueQuery())]
    assert newest == ["d", "c", "b"]
    by_score = [i.record.video_id for i in store.review_queue(QueueQuery(sort="score"))]
    assert by_score[0] == "c"
    assert [i.record.video_id for i in store.review_queue(QueueQuery(max_score=0.6))] == ["c"]
    store.apply_verdict(Verdict("b", "not_duplicate"))
    assert "b" not in [i.record.video_id for i in store.review_queue(QueueQuery())]
    ruled = {i.record.video_id: i for i in store.review_queue(QueueQuery(status="all"))}
    assert ruled["b"].verdict is not None and ruled["b"].verdict.verdict == "not_duplicate"
    assert ruled["c"].query_segment_s == (0.0, 1.0)


def test_deleting_a_video_drops_its_evidence_and_its_frames_in_other_evidence(store):
    assert store.evidence("b").has_match == (True,)
    assert store.delete("a") is not None
    assert store.evidence("b").has_match == (False,)  # a's frame is gone from b's evidence
    assert store.evidence("b").has_query == (True,)
    assert store.evidence_image("b", "match", 0) is None
    store.delete("b")
    assert store.evidence("b") is None and store.evidence_image("b", "query", 0) is None


def test_thumbnails_are_kept_per_video(tmp_path):
    s = SqliteStore(tmp_path / "catalog.sqlite")
    thumbs = Thumbnails(np.array([0.0, 2.5], np.float32), (b"\xff\xd81", b"\xff\xd82"))
    s.insert([(rec("a"), None, thumbs, None)], pending=False, index_max_sim=1.0)
    got = s.thumbnails("a")
    assert got.jpegs == thumbs.jpegs and np.allclose(got.times, thumbs.times)
    assert s.thumbnails("b").jpegs == ()
    s.delete("a")
    assert s.thumbnails("a").jpegs == ()
    s.close()


def test_a_version_2_catalog_gains_the_review_tables_and_keeps_its_videos(tmp_path):
    cat = LocalCatalog(tmp_path)
    cat.add(rec("a"), None)
    cat.close()
    db = sqlite3.connect(tmp_path / "catalog.sqlite")
    for table in ("thumbnails", "evidence", "evidence_thumbs", "verdicts", "negatives"):
        db.execute(f"DROP TABLE {table}")
    db.execute("UPDATE meta SET value='2' WHERE key='schema'")
    db.commit()
    db.close()
    again = LocalCatalog(tmp_path)
    assert again.get("a") is not None and again.audit() == []
    again.close()
    db = sqlite3.connect(tmp_path / "catalog.sqlite")
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(
        SCHEMA_VERSION
    )
    db.close()


def test_a_catalog_from_a_newer_version_is_refused(tmp_path):
    LocalCatalog(tmp_path).close()
    db = sqlite3.connect(tmp_path / "catalog.sqlite")
    db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(CatalogCorrupt, match="schema version"):
        LocalCatalog(tmp_path)


def test_verdicts_export_as_a_labelled_manifest_with_their_roots(tmp_path):
    import csv

    from vdup.cli import main
    from vdup.evaluate import read_manifest

    cat = LocalCatalog(tmp_path / "data")
    for r in (rec("a", t=1), rec("b", "a", "a", t=2), rec("c", "a", "a", t=3), rec("x", t=4)):
        cat.add(r, None)
    cat.apply_verdict(Verdict("b", "not_duplicate"))
    cat.apply_verdict(Verdict("c", "duplicate_of", of="x"))
    cat.close()
    out = tmp_path / "labels.csv"
    assert main(["review", "export", "--data", str(tmp_path / "data"), "--out", str(out)]) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["uuid"], r["is_duplicate"], r["duplicate_for"], r["kind"]) for r in rows] == [
        ("a", "False", "", "verdict:root"),
        ("b", "False", "", "verdict:not_duplicate"),
        ("c", "True", "x", "verdict:duplicate_of"),
        ("x", "False", "", "verdict:root"),
    ]
    assert [r.uuid for r in read_manifest(out)] == ["a", "b", "c", "x"]  # vdup eval reads it
