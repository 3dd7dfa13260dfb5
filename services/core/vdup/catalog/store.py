"""The embedded catalog's SQLite file: schema, migrations, and every read and write of its rows.

``LocalCatalog`` owns the FAISS view and the lock; this module owns the truth. Each write
method here is one transaction, committed (and fsynced: WAL, synchronous=FULL) before it
returns, so an acknowledged add, delete or verdict survives kill -9.

Tables (schema version 3):
    meta          catalog id, schema version
    videos        one record per video (``VideoRecord``)
    rows          descriptor rows, float16 [512] blobs; ``indexed`` marks the rows in FAISS
    audio         a video's audio windows, float16 [w, 128] blob
    deletions     row ids removed from FAISS since the last snapshot (replayed at start-up)
    pending       videos whose decision a cross-replica race has not settled yet
    thumbnails    a video's review thumbnails (JPEG) by sampled time
    evidence      the decision's evidence document (JSON) and its frame-pair thumbnails
    verdicts      the audit log: every moderator verdict, with the records before and after
    negatives     (video, root) pairs a moderator ruled distinct: the negative list

Not thread-safe: the caller serialises calls (``LocalCatalog`` holds one lock around them).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vdup.catalog.review import (
    AUDIT_COLUMNS,
    AuditEntry,
    Outcome,
    QueueItem,
    QueueQuery,
    Side,
    StoredEvidence,
    Verdict,
    audit_entry,
    plan_verdict,
    queue_item,
    queue_sql,
    stored_evidence,
)
from vdup.catalog.types import StoredRows, VideoRecord
from vdup.errors import NotFound, StorageError
from vdup.features.types import AUDIO_DIM, DIM, Thumbnails, distinct_rows
from vdup.matching.decide import Candidate
from vdup.matching.explain import Evidence

SCHEMA_VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    video_id TEXT PRIMARY KEY, root_id TEXT NOT NULL, sha256 TEXT NOT NULL,
    is_duplicate INTEGER NOT NULL, duplicate_for TEXT NOT NULL, matched_video TEXT NOT NULL,
    score REAL NOT NULL, path TEXT NOT NULL, duration_s REAL NOT NULL, frames INTEGER NOT NULL,
    created_at REAL NOT NULL, source TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS videos_sha256 ON videos (sha256);
CREATE TABLE IF NOT EXISTS rows (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT, video_id TEXT NOT NULL, t REAL NOT NULL,
    view INTEGER NOT NULL, vec BLOB NOT NULL, indexed INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS rows_video ON rows (video_id);
CREATE TABLE IF NOT EXISTS audio (video_id TEXT PRIMARY KEY, vecs BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS deletions (seq INTEGER PRIMARY KEY AUTOINCREMENT, row_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pending (video_id TEXT PRIMARY KEY);
"""

#: Added by schema version 3 (the review store). Run after SCHEMA's tables exist.
SCHEMA_V3 = """
CREATE INDEX IF NOT EXISTS videos_root ON videos (root_id);
CREATE INDEX IF NOT EXISTS videos_queue ON videos (is_duplicate, created_at);
CREATE TABLE IF NOT EXISTS thumbnails (
    video_id TEXT NOT NULL, i INTEGER NOT NULL, t REAL NOT NULL, jpeg BLOB NOT NULL,
    PRIMARY KEY (video_id, i)
);
CREATE TABLE IF NOT EXISTS evidence (video_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evidence_thumbs (
    video_id TEXT NOT NULL, side TEXT NOT NULL, i INTEGER NOT NULL, jpeg BLOB NOT NULL,
    matched_video TEXT NOT NULL, PRIMARY KEY (video_id, side, i)
);
CREATE INDEX IF NOT EXISTS evidence_thumbs_match ON evidence_thumbs (matched_video);
CREATE TABLE IF NOT EXISTS verdicts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, video_id TEXT NOT NULL, at REAL NOT NULL,
    who TEXT NOT NULL, verdict TEXT NOT NULL, of TEXT NOT NULL, note TEXT NOT NULL,
    before TEXT NOT NULL, after TEXT NOT NULL, changed TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS verdicts_video ON verdicts (video_id);
CREATE TABLE IF NOT EXISTS negatives (
    video_id TEXT NOT NULL, not_of TEXT NOT NULL, verdict_seq INTEGER NOT NULL,
    PRIMARY KEY (video_id, not_of)
);
"""

_SQL_VARS = 900  # ids per IN (...) query, under SQLite's default variable limit


@dataclass(frozen=True)
class TruthChange:
    """One change of the platform's truth, as a view applies it: op 'add' (record and rows),
    'update' (the record's decision fields) or 'delete' (the id alone)."""

    op: str
    video_id: str
    record: VideoRecord | None = None
    rows: StoredRows | None = None


class CatalogCorrupt(RuntimeError):
    """The data directory holds something we did not write or cannot read: refuse to start."""


class SqliteStore:
    """The catalog's SQLite file at ``path``.

    cache_mb: SQLite's page cache, MB (allocated as pages are read;
    docs/benchmarks.md#design-choices-measured). verify: run ``PRAGMA quick_check`` at open (reads the whole file).
    Raises CatalogCorrupt for a file that is not a vdup catalog, is damaged, or has a schema
    version this code does not know.
    """

    def __init__(self, path: Path, cache_mb: int = 128, verify: bool = True) -> None:
        self.path = path
        self.db = _open(path, cache_mb, verify)

    def close(self) -> None:
        self.db.close()

    def catalog_id(self) -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key='catalog_id'").fetchone()
        if row is not None:
            return str(row[0])
        cid = uuid.uuid4().hex
        self.db.execute("INSERT INTO meta VALUES ('catalog_id', ?)", (cid,))
        return cid

    # ---------------------------------------------------------------- records

    def record(self, video_id: str) -> VideoRecord | None:
        row = self.db.execute("SELECT * FROM videos WHERE video_id=?", (video_id,)).fetchone()
        return VideoRecord.from_row(row) if row else None

    def is_pending(self, video_id: str) -> bool:
        q = "SELECT 1 FROM pending WHERE video_id=?"
        return self.db.execute(q, (video_id,)).fetchone() is not None

    def find_sha256(self, sha256: str) -> VideoRecord | None:
        row = self.db.execute(
            "SELECT * FROM videos WHERE sha256=? ORDER BY created_at, video_id LIMIT 1", (sha256,)
        ).fetchone()
        return VideoRecord.from_row(row) if row else None

    def records(self, limit: int, after: str) -> list[VideoRecord]:
        rows = self.db.execute(
            "SELECT * FROM videos WHERE video_id > ? ORDER BY video_id LIMIT ?", (after, limit)
        ).fetchall()
        return [VideoRecord.from_row(r) for r in rows]

    def count_videos(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM videos").fetchone()[0])

    def pending_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    # ---------------------------------------------------------------- descriptor rows

    def count_rows(self, indexed_only: bool) -> int:
        q = "SELECT COUNT(*) FROM rows" + (" WHERE indexed=1" if indexed_only else "")
        return int(self.db.execute(q).fetchone()[0])

    def rows_after(
        self, max_row: int, batch: int = 20_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Indexed rows with id > ``max_row`` in id order, as (ids int64 [b], float32 [b, 512])."""
        cur = self.db.execute(
            "SELECT row_id, vec FROM rows WHERE row_id > ? AND indexed=1 ORDER BY row_id",
            (max_row,),
        )
        while chunk := cur.fetchmany(batch):
            ids = np.array([r[0] for r in chunk], np.int64)
            vecs = np.frombuffer(b"".join(r[1] for r in chunk), np.float16).reshape(-1, DIM)
            yield ids, vecs.astype(np.float32)

    def deleted_rows(self, after_seq: int, upto_row: int) -> list[int]:
        """Row ids deleted after deletion ``after_seq`` that are <= ``upto_row``."""
        q = "SELECT row_id FROM deletions WHERE seq > ? AND row_id <= ?"
        return [int(r[0]) for r in self.db.execute(q, (after_seq, upto_row))]

    def sequences(self) -> tuple[int, int]:
        """(last row id ever assigned, last deletion seq): what a snapshot covers."""
        seq = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name='rows'").fetchone()
        dels = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM deletions").fetchone()[0]
        return (int(seq[0]) if seq else 0), int(dels)

    def sample_rows(self, n: int, seed: int = 0) -> np.ndarray:
        """float32 [<= n, 512]: stored rows drawn uniformly (by row id)."""
        lo, hi = self.db.execute("SELECT MIN(row_id), MAX(row_id) FROM rows").fetchone()
        if lo is None:
            return np.zeros((0, DIM), np.float32)
        if self.count_rows(indexed_only=False) <= n:
            blobs = [r[0] for r in self.db.execute("SELECT vec FROM rows")]
        else:
            rng = np.random.default_rng(seed)
            ids = np.unique(rng.integers(lo, hi + 1, int(n * 1.2)))[:n].tolist()
            blobs = []
            for chunk in _chunks(ids):
                q = f"SELECT vec FROM rows WHERE row_id IN ({_marks(chunk)})"
                blobs += [r[0] for r in self.db.execute(q, chunk)]
        return np.frombuffer(b"".join(blobs), np.float16).reshape(-1, DIM).astype(np.float32)

    def owners(self, row_ids: list[int]) -> list[tuple[int, str]]:
        """(row id, video id) of those of ``row_ids`` that are indexed and not deleted."""
        out: list[tuple[int, str]] = []
        for chunk in _chunks(row_ids):
            out += self.db.execute(
                "SELECT row_id, video_id FROM rows INDEXED BY rows_owner "
                f"WHERE indexed=1 AND row_id IN ({_marks(chunk)})",
                chunk,
            ).fetchall()
        return out

    def candidate(self, video_id: str, retrieval: float) -> Candidate:
        rec = self.db.execute(
            "SELECT root_id, duration_s FROM videos WHERE video_id=?", (video_id,)
        ).fetchone()
        rows = self._rows_of(video_id)
        audio = self._audio_of(video_id)
        return Candidate(
            video_id=video_id,
            root_id=rec[0] if rec else video_id,
            descriptors=np.stack([np.frombuffer(r[2], np.float16) for r in rows]).astype(
                np.float32
            ),
            views=np.array([r[1] for r in rows], np.int8),
            row_times=np.array([r[0] for r in rows], np.float32),
            audio=audio.astype(np.float32),
            duration_s=float(rec[1]) if rec else 0.0,
            retrieval=float(retrieval),
        )

    def stored(self, video_id: str) -> tuple[VideoRecord, StoredRows | None, bool] | None:
        """(record, every stored row in insertion order, pending); None if unknown."""
        record = self.record(video_id)
        if record is None:
            return None
        rows = self._rows_of(video_id)
        stored = None
        if rows:
            stored = StoredRows(
                descriptors=np.frombuffer(b"".join(r[2] for r in rows), np.float16).reshape(
                    -1, DIM
                ),
                views=np.array([r[1] for r in rows], np.int8),
                times=np.array([r[0] for r in rows], np.float32),
                audio=self._audio_of(video_id),
            )
        return record, stored, self.is_pending(video_id)

    def _rows_of(self, video_id: str) -> list[tuple[float, int, bytes]]:
        q = "SELECT t, view, vec FROM rows WHERE video_id=? ORDER BY row_id"
        return self.db.execute(q, (video_id,)).fetchall()

    def _audio_of(self, video_id: str) -> np.ndarray:
        """float16 [w, 128] (w = 0 when none is stored)."""
        row = self.db.execute("SELECT vecs FROM audio WHERE video_id=?", (video_id,)).fetchone()
        if row is None:
            return np.zeros((0, AUDIO_DIM), np.float16)
        return np.frombuffer(row[0], np.float16).reshape(-1, AUDIO_DIM)

    # ---------------------------------------------------------------- writes

    def insert(
        self,
        items: list[tuple[VideoRecord, StoredRows | None, Thumbnails | None, Evidence | None]],
        pending: bool,
        index_max_sim: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Store ``items`` (record, rows, thumbnails, evidence) in ONE transaction: all or none.

        Returns the rows to add to FAISS: (ids int64 [r], float32 [r, 512]), the rows
        ``distinct_rows(·, index_max_sim)`` keeps. Raises sqlite3.IntegrityError for a known id,
        StorageError when SQLite cannot commit (nothing stored either way).
        """
        new_ids: list[np.ndarray] = []
        new_vecs: list[np.ndarray] = []

        def body() -> None:
            for record, rows, thumbs, evidence in items:
                self._insert_record(record, pending)
                if rows is not None:
                    ids, vecs = self._insert_rows(record.video_id, rows, index_max_sim)
                    new_ids.append(ids)
                    new_vecs.append(vecs)
                if thumbs is not None:
                    self._insert_thumbnails(record.video_id, thumbs)
                if evidence is not None:
                    self._insert_evidence(record.video_id, evidence)

        self._transaction(body, "store the video", integrity_passes=True)
        if not new_ids:
            return np.zeros(0, np.int64), np.zeros((0, DIM), np.float32)
        return np.concatenate(new_ids), np.concatenate(new_vecs)

    def _insert_record(self, record: VideoRecord, pending: bool) -> None:
        self.db.execute("INSERT INTO videos VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", record.as_row())
        if pending:
            self.db.execute("INSERT INTO pending VALUES (?)", (record.video_id,))

    def _insert_rows(
        self, video_id: str, rows: StoredRows, index_max_sim: float
    ) -> tuple[np.ndarray, np.ndarray]:
        stored = np.ascontiguousarray(rows.descriptors, np.float16)
        indexed = np.zeros(len(stored), bool)
        indexed[distinct_rows(stored, index_max_sim)] = True
        ids = []
        for t, v, vec, ix in zip(
            rows.times.tolist(), rows.views.tolist(), stored, indexed.tolist()
        ):
            cur = self.db.execute(
                "INSERT INTO rows (video_id, t, view, vec, indexed) VALUES (?,?,?,?,?)",
                (video_id, float(t), int(v), vec.tobytes(), int(ix)),
            )
            if ix:
                ids.append(cur.lastrowid)
        self.db.execute(
            "INSERT INTO audio VALUES (?, ?)",
            (video_id, np.ascontiguousarray(rows.audio, np.float16).tobytes()),
        )
        return np.asarray(ids, np.int64), stored[indexed].astype(np.float32)

    def _insert_thumbnails(self, video_id: str, thumbs: Thumbnails) -> None:
        self.db.executemany(
            "INSERT INTO thumbnails VALUES (?,?,?,?)",
            [
                (video_id, i, float(t), jpeg)
                for i, (t, jpeg) in enumerate(zip(thumbs.times.tolist(), thumbs.jpegs))
            ],
        )

    def _insert_evidence(self, video_id: str, evidence: Evidence) -> None:
        self.db.execute(
            "INSERT INTO evidence VALUES (?, ?)", (video_id, json.dumps(evidence.document()))
        )
        images = []
        for i, pair in enumerate(evidence.pairs):
            if pair.query_jpeg is not None:
                images.append((video_id, "query", i, pair.query_jpeg, video_id))
            if pair.match_jpeg is not None:
                images.append((video_id, "match", i, pair.match_jpeg, evidence.matched_video))
        self.db.executemany("INSERT INTO evidence_thumbs VALUES (?,?,?,?,?)", images)

    def resolve(self, record: VideoRecord) -> bool:
        """Settle a pending video's decision fields, only if still pending (one transaction)."""
        settled = [False]

        def body() -> None:
            q = "DELETE FROM pending WHERE video_id=?"
            settled[0] = self.db.execute(q, (record.video_id,)).rowcount > 0
            if settled[0]:
                self._set_decision(record)

        self._transaction(body, "settle the video")
        return settled[0]

    def delete(self, video_id: str) -> list[int] | None:
        """Delete a video with everything stored about it (rows, audio, thumbnails, evidence,
        and its frames in other videos' evidence); returns its indexed row ids (now on the
        deletions list), None when unknown. Verdicts stay: they are the audit log."""
        out: list[list[int] | None] = [None]

        def body() -> None:
            out[0] = self._delete(video_id)

        self._transaction(body, "delete the video")
        return out[0]

    def _delete(self, video_id: str) -> list[int] | None:
        rows = [
            int(r[0])
            for r in self.db.execute(
                "SELECT row_id FROM rows WHERE video_id=? AND indexed=1", (video_id,)
            )
        ]
        found = self.db.execute("DELETE FROM videos WHERE video_id=?", (video_id,)).rowcount > 0
        for table in ("rows", "audio", "pending", "thumbnails", "evidence", "negatives"):
            self.db.execute(f"DELETE FROM {table} WHERE video_id=?", (video_id,))
        self.db.execute(
            "DELETE FROM evidence_thumbs WHERE video_id=? OR matched_video=?",
            (video_id, video_id),
        )
        self.db.executemany("INSERT INTO deletions (row_id) VALUES (?)", [(r,) for r in rows])
        return rows if found else None

    # ---------------------------------------------------------------- a view of the truth

    def truth_seq(self) -> int:
        """The last change of the platform's truth applied here (0: none; an embedded catalog
        is its own truth and stays at 0)."""
        row = self.db.execute("SELECT value FROM meta WHERE key='truth_seq'").fetchone()
        return int(row[0]) if row else 0

    def apply(
        self, changes: list[TruthChange], truth_seq: int, index_max_sim: float
    ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Apply changes of the truth, in order, and record ``truth_seq`` as applied, in ONE
        transaction (a crash applies all of them or none, so none is applied twice).

        Returns (row ids int64 [r] and float32 [r, 512] to add to FAISS, row ids to remove).
        An add of a video already here replaces it (the truth is right by definition).
        """
        new_ids: list[np.ndarray] = []
        new_vecs: list[np.ndarray] = []
        removed: list[int] = []

        def body() -> None:
            for change in changes:
                if change.op == "delete":
                    removed.extend(self._delete(change.video_id) or [])
                elif change.op == "update":
                    assert change.record is not None
                    self._set_decision(change.record)
                else:
                    assert change.record is not None
                    removed.extend(self._delete(change.video_id) or [])
                    self._insert_record(change.record, pending=False)
                    if change.rows is not None:
                        ids, vecs = self._insert_rows(change.video_id, change.rows, index_max_sim)
                        new_ids.append(ids)
                        new_vecs.append(vecs)
            self.db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('truth_seq', ?)", (str(int(truth_seq)),)
            )

        self._transaction(body, "apply the truth's changes")
        if not new_ids:
            return np.zeros(0, np.int64), np.zeros((0, DIM), np.float32), removed
        return np.concatenate(new_ids), np.concatenate(new_vecs), removed

    # ---------------------------------------------------------------- review

    def thumbnails(self, video_id: str) -> Thumbnails:
        rows = self.db.execute(
            "SELECT t, jpeg FROM thumbnails WHERE video_id=? ORDER BY i", (video_id,)
        ).fetchall()
        if not rows:
            return Thumbnails.empty()
        return Thumbnails(np.array([r[0] for r in rows], np.float32), tuple(r[1] for r in rows))

    def evidence(self, video_id: str) -> StoredEvidence | None:
        row = self.db.execute("SELECT doc FROM evidence WHERE video_id=?", (video_id,)).fetchone()
        if row is None:
            return None
        q = "SELECT side, i FROM evidence_thumbs WHERE video_id=?"
        present = {(r[0], int(r[1])) for r in self.db.execute(q, (video_id,))}
        return stored_evidence(video_id, json.loads(row[0]), present, self.audit(1000, video_id))

    def evidence_image(self, video_id: str, side: Side, index: int) -> bytes | None:
        row = self.db.execute(
            "SELECT jpeg FROM evidence_thumbs WHERE video_id=? AND side=? AND i=?",
            (video_id, side, index),
        ).fetchone()
        return bytes(row[0]) if row else None

    def review_queue(self, query: QueueQuery) -> list[QueueItem]:
        clause, args = queue_sql(query, "?")
        rows = self.db.execute(
            f"SELECT v.*, e.doc FROM videos v LEFT JOIN evidence e ON e.video_id=v.video_id "
            f"{clause}",
            args,
        ).fetchall()
        return [
            queue_item(
                VideoRecord.from_row(row[:12]),
                json.loads(row[12]) if row[12] else None,
                next(iter(self.audit(1, row[0])), None),
            )
            for row in rows
        ]

    def audit(self, limit: int = 100, video_id: str = "") -> list[AuditEntry]:
        """Verdicts, newest first; only ``video_id``'s when given."""
        q = f"SELECT {AUDIT_COLUMNS} FROM verdicts "
        if video_id:
            rows = self.db.execute(
                q + "WHERE video_id=? ORDER BY seq DESC LIMIT ?", (video_id, limit)
            ).fetchall()
        else:
            rows = self.db.execute(q + "ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
        return [audit_entry(r) for r in rows]

    def negatives(self, video_ids: list[str]) -> dict[str, frozenset[str]]:
        out: dict[str, set[str]] = {}
        for chunk in _chunks(sorted(set(video_ids))):
            for vid, not_of in self.db.execute(
                f"SELECT video_id, not_of FROM negatives WHERE video_id IN ({_marks(chunk)})",
                chunk,
            ):
                out.setdefault(vid, set()).add(not_of)
        return {k: frozenset(v) for k, v in out.items()}

    def apply_verdict(self, verdict: Verdict) -> Outcome:
        """See ``vdup.catalog.review``: one transaction re-points the records, writes the audit
        entry and updates the negative list (``plan_verdict`` decides what changes)."""
        before = self.record(verdict.video_id)
        if before is None:
            raise NotFound(f"no video {verdict.video_id!r} in the catalog")
        target = self.record(verdict.of) if verdict.verdict == "duplicate_of" else None
        plan = plan_verdict(verdict, before, target, self._descendants(before))
        seq = [0]

        def body() -> None:
            self._set_decision(plan.after)
            for chunk in _chunks(list(plan.changed)):
                self.db.execute(
                    f"UPDATE videos SET root_id=?, duplicate_for=? WHERE video_id IN "
                    f"({_marks(chunk)})",
                    [plan.root, plan.root, *chunk],
                )
            cur = self.db.execute(
                "INSERT INTO verdicts (video_id, at, who, verdict, of, note, before, after, "
                "changed) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    verdict.video_id,
                    time.time(),
                    verdict.who,
                    verdict.verdict,
                    verdict.of,
                    verdict.note,
                    json.dumps(before.to_dict()),
                    json.dumps(plan.after.to_dict()),
                    json.dumps(list(plan.changed)),
                ),
            )
            seq[0] = int(cur.lastrowid or 0)
            if plan.negative is not None:
                self.db.execute(
                    "INSERT OR REPLACE INTO negatives VALUES (?,?,?)", (*plan.negative, seq[0])
                )
            if plan.cleared is not None:
                self.db.execute("DELETE FROM negatives WHERE video_id=? AND not_of=?", plan.cleared)

        self._transaction(body, "record the verdict")
        entry = self.audit(1, verdict.video_id)[0]
        assert entry.seq == seq[0]
        return Outcome(plan.after, plan.changed, entry)

    def _descendants(self, record: VideoRecord) -> set[str]:
        """``record``'s video and the videos of its group matched to it, directly or through
        each other (breadth-first over ``matched_video``)."""
        seen = {record.video_id}
        frontier = [record.video_id]
        while frontier:
            found: list[str] = []
            for chunk in _chunks(frontier):
                found += [
                    r[0]
                    for r in self.db.execute(
                        f"SELECT video_id FROM videos WHERE root_id=? AND matched_video IN "
                        f"({_marks(chunk)})",
                        [record.root_id, *chunk],
                    )
                ]
            frontier = [v for v in found if v not in seen]
            seen.update(frontier)
        return seen

    # ---------------------------------------------------------------- plumbing

    def _set_decision(self, record: VideoRecord) -> None:
        self.db.execute(
            "UPDATE videos SET root_id=?, is_duplicate=?, duplicate_for=?, matched_video=?, "
            "score=?, path=? WHERE video_id=?",
            (
                record.root_id,
                int(record.is_duplicate),
                record.duplicate_for,
                record.matched_video,
                record.score,
                record.path,
                record.video_id,
            ),
        )

    def _transaction(
        self, body: Callable[[], None], what: str, integrity_passes: bool = False
    ) -> None:
        """Run ``body`` in BEGIN IMMEDIATE ... COMMIT; roll back on any error. SQLite errors
        become StorageError (nothing written), except IntegrityError when ``integrity_passes``
        (a known id: the caller's to answer)."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            body()
            self.db.execute("COMMIT")
        except sqlite3.IntegrityError:
            self._rollback()
            if integrity_passes:
                raise
            raise StorageError(f"the catalog could not {what}: a constraint failed") from None
        except sqlite3.Error as exc:
            self._rollback()
            raise StorageError(f"the catalog could not {what}: {exc}") from None
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _open(path: Path, cache_mb: int, verify: bool) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(f"PRAGMA cache_size=-{int(cache_mb) * 1024}")
        db.executescript(SCHEMA)
        _migrate(db, path)
        # Start-up counts the indexed rows; without this partial index that count reads every
        # row's blob (minutes for a million videos), with it ~8 B a row.
        db.execute("CREATE INDEX IF NOT EXISTS rows_indexed ON rows (indexed) WHERE indexed=1")
        # Search maps FAISS ids to videos; this covering index packs ~80 owners a page, where
        # the table costs a random ~1 KB read per id (docs/benchmarks.md#design-choices-measured).
        db.execute(
            "CREATE INDEX IF NOT EXISTS rows_owner ON rows (row_id, video_id, indexed) "
            "WHERE indexed=1"
        )
        db.executescript(SCHEMA_V3)
        if verify:
            check = db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check[0] if check else 'no answer'}")
    except sqlite3.DatabaseError as exc:
        raise CatalogCorrupt(
            f"{path} is not a vdup catalog or is damaged ({exc}); refusing to start. "
            "Move it away or restore it from a backup."
        ) from None
    return db


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring an older catalog to ``SCHEMA_VERSION``: v1 -> v2 adds ``rows.indexed`` (every
    stored row was indexed); v2 -> v3 adds the review tables (``SCHEMA_V3``, idempotent)."""
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    if row is None:
        db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        return
    version = int(row[0])
    if version > SCHEMA_VERSION or version < 1:
        raise CatalogCorrupt(f"{path}: schema version {version}, expected {SCHEMA_VERSION}")
    if version == 1:
        db.execute("ALTER TABLE rows ADD COLUMN indexed INTEGER NOT NULL DEFAULT 1")
    if version < SCHEMA_VERSION:
        db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))


def _chunks[T](items: list[T]) -> Iterator[list[T]]:
    for i in range(0, len(items), _SQL_VARS):
        yield items[i : i + _SQL_VARS]


def _marks(chunk: list) -> str:
    return ",".join("?" * len(chunk))
