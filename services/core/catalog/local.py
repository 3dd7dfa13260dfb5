"""A durable catalog in one directory: SQLite holds the truth, FAISS is a rebuildable cache.

Layout of ``data_dir``:
    catalog.sqlite   videos, descriptor rows (float16), audio, deletions; WAL mode, synchronous=FULL
    index.faiss      snapshot of the FAISS index (written to a temp file, fsynced, renamed)
    index.json       what the snapshot covers: last row id, last deletion, row count, checksum

Why this shape: an add is one SQLite transaction (video, its rows, its audio); it is acknowledged
after the commit, which is fsynced, so SQLite *is* the write-ahead log. The FAISS index is only a
faster view of the rows. Start-up loads the last snapshot and replays rows and deletions that came
after it; a missing or stale snapshot is rebuilt from SQLite, so kill -9 at any moment loses
nothing acknowledged. Nothing is ever unpickled: FAISS has its own format, the rest is SQLite and
JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

import faiss
import numpy as np

from vdup.catalog.types import VideoRecord
from vdup.errors import StorageError
from vdup.features.types import AUDIO_DIM, DIM, VideoFeatures
from vdup.matching.decide import Candidate

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
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
    view INTEGER NOT NULL, vec BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS rows_video ON rows (video_id);
CREATE TABLE IF NOT EXISTS audio (video_id TEXT PRIMARY KEY, vecs BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS deletions (seq INTEGER PRIMARY KEY AUTOINCREMENT, row_id INTEGER NOT NULL);
"""


class CatalogCorrupt(RuntimeError):
    """The data directory holds something we did not write or cannot read: refuse to start."""


class LocalCatalog:
    """The embedded catalog (also the engine of each indexer shard).

    index_factory: a FAISS factory string over inner product ("Flat" for exact search; trained
    types such as "IVF1024,PQ64" need ``train()`` first, see docs/scaling.md).
    snapshot_every: rows added between automatic snapshots (0 = only on close).
    """

    def __init__(
        self,
        data_dir: str | Path,
        index_factory: str = "Flat",
        snapshot_every: int = 5000,
        nprobe: int = 16,
    ) -> None:
        self.dir = Path(data_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.index_factory = index_factory
        self.snapshot_every = snapshot_every
        self.nprobe = nprobe
        self._lock = threading.RLock()
        self._db = self._open_db()
        self._rows_since_snapshot = 0
        self.index = self._load_index()

    # ---------------------------------------------------------------- start-up

    def _open_db(self) -> sqlite3.Connection:
        path = self.dir / "catalog.sqlite"
        try:
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise CatalogCorrupt(f"{path}: schema version {row[0]}, expected {SCHEMA_VERSION}")
            db.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError as exc:
            raise CatalogCorrupt(
                f"{path} is not a vdup catalog or is damaged ({exc}); refusing to start. "
                "Move it away or restore it from a backup."
            ) from None
        return db

    def _new_index(self) -> faiss.Index:
        base = faiss.index_factory(DIM, self.index_factory, faiss.METRIC_INNER_PRODUCT)
        return faiss.IndexIDMap2(base) if self.index_factory == "Flat" else faiss.IndexIDMap(base)

    def _load_index(self) -> faiss.Index:
        snap, meta_path = self.dir / "index.faiss", self.dir / "index.json"
        index, max_row, del_seq = None, 0, 0
        if snap.exists() and meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text())
                blob = snap.read_bytes()
                if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
                    raise ValueError("checksum mismatch")
                index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
                max_row, del_seq = int(meta["max_row_id"]), int(meta["deletion_seq"])
            except (ValueError, KeyError, RuntimeError, json.JSONDecodeError) as exc:
                log.warning("snapshot %s unusable (%s); rebuilding from the catalog", snap, exc)
                index, max_row, del_seq = None, 0, 0
        if index is None:
            index = self._new_index()
        self._replay(index, max_row, del_seq)
        return index

    def _replay(self, index: faiss.Index, max_row: int, del_seq: int) -> None:
        """Bring ``index`` up to date: rows after ``max_row``, deletions after ``del_seq``."""
        cur = self._db.execute(
            "SELECT row_id, vec FROM rows WHERE row_id > ? ORDER BY row_id", (max_row,)
        )
        while batch := cur.fetchmany(20_000):
            ids = np.array([r[0] for r in batch], np.int64)
            vecs = np.stack([np.frombuffer(r[1], np.float16) for r in batch]).astype(np.float32)
            index.add_with_ids(vecs, ids)
        gone = [r[0] for r in self._db.execute(
            "SELECT row_id FROM deletions WHERE seq > ? AND row_id <= ?", (del_seq, max_row))]
        if gone:
            index.remove_ids(np.array(gone, np.int64))

    # ---------------------------------------------------------------- reads

    def get(self, video_id: str) -> VideoRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM videos WHERE video_id=?", (video_id,)).fetchone()
        return _record(row) if row else None

    def find_sha256(self, sha256: str) -> VideoRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM videos WHERE sha256=? ORDER BY created_at LIMIT 1", (sha256,)
            ).fetchone()
        return _record(row) if row else None

    def list(self, limit: int = 100, after: str = "") -> list[VideoRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM videos WHERE video_id > ? ORDER BY video_id LIMIT ?", (after, limit)
            ).fetchall()
        return [_record(r) for r in rows]

    def search(self, features: VideoFeatures, k: int = 32, max_candidates: int = 20) -> list[Candidate]:
        query, _ = features.query_views()
        return self.search_vectors(query, features.audio is not None, k, max_candidates)

    def search_vectors(
        self, query: np.ndarray, with_audio: bool, k: int, max_candidates: int
    ) -> list[Candidate]:
        """query: float32 [q, 512]. Candidates ordered by best row similarity, then video id."""
        with self._lock:
            if self.index.ntotal == 0:
                return []
            _set_nprobe(self.index, self.nprobe)
            sims, ids = self.index.search(np.ascontiguousarray(query, np.float32),
                                          min(k, self.index.ntotal))
            valid = ids >= 0
            if not valid.any():
                return []
            flat_ids, flat_sims = ids[valid], sims[valid]
            best: dict[int, float] = {}
            for rid, s in zip(flat_ids.tolist(), flat_sims.tolist()):
                if s > best.get(rid, -2.0):
                    best[rid] = s
            placeholders = ",".join("?" * len(best))
            owners = self._db.execute(
                f"SELECT row_id, video_id FROM rows WHERE row_id IN ({placeholders})", list(best)
            ).fetchall()
            per_video: dict[str, float] = {}
            for rid, vid in owners:
                per_video[vid] = max(per_video.get(vid, -2.0), best[rid])
            chosen = sorted(per_video.items(), key=lambda kv: (-kv[1], kv[0]))[:max_candidates]
            return [self._candidate(vid, score) for vid, score in chosen]

    def _candidate(self, video_id: str, retrieval: float) -> Candidate:
        rec = self._db.execute(
            "SELECT root_id, duration_s FROM videos WHERE video_id=?", (video_id,)
        ).fetchone()
        rows = self._db.execute(
            "SELECT t, view, vec FROM rows WHERE video_id=? ORDER BY row_id", (video_id,)
        ).fetchall()
        audio = self._db.execute("SELECT vecs FROM audio WHERE video_id=?", (video_id,)).fetchone()
        return Candidate(
            video_id=video_id,
            root_id=rec[0] if rec else video_id,
            descriptors=np.stack([np.frombuffer(r[2], np.float16) for r in rows]).astype(np.float32),
            views=np.array([r[1] for r in rows], np.int8),
            row_times=np.array([r[0] for r in rows], np.float32),
            audio=_audio(audio[0]) if audio else np.zeros((0, AUDIO_DIM), np.float32),
            duration_s=float(rec[1]) if rec else 0.0,
            retrieval=float(retrieval),
        )

    def stats(self) -> dict:
        with self._lock:
            videos = self._db.execute("SELECT COUNT(*) FROM videos").fetchone()[0]
            return {"videos": int(videos), "vectors": int(self.index.ntotal),
                    "index": self.index_factory}

    # ---------------------------------------------------------------- writes

    def add(self, record: VideoRecord, features: VideoFeatures | None) -> None:
        """Durably add ``record`` with its descriptor rows and audio, then index the rows.

        Raises StorageError (nothing acknowledged) when SQLite cannot commit, e.g. disk full.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO videos VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (record.video_id, record.root_id, record.sha256, int(record.is_duplicate),
                     record.duplicate_for, record.matched_video, record.score, record.path,
                     record.duration_s, record.frames, record.created_at, record.source),
                )
                ids = np.zeros(0, np.int64)
                vecs = np.zeros((0, DIM), np.float32)
                if features is not None:
                    vecs, views = features.stored_views()
                    times = np.tile(features.timestamps, len(vecs) // len(features.timestamps))
                    first = None
                    for t, v, vec in zip(times.tolist(), views.tolist(), vecs):
                        cur = self._db.execute(
                            "INSERT INTO rows (video_id, t, view, vec) VALUES (?,?,?,?)",
                            (record.video_id, t, v, vec.astype(np.float16).tobytes()),
                        )
                        first = cur.lastrowid if first is None else first
                    ids = np.arange(first, first + len(vecs), dtype=np.int64)
                    self._db.execute(
                        "INSERT INTO audio VALUES (?, ?)",
                        (record.video_id, features.audio.astype(np.float16).tobytes()),
                    )
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError:
                self._rollback()
                raise
            except sqlite3.Error as exc:
                self._rollback()
                raise StorageError(f"the catalog could not store the video: {exc}") from None
            if len(ids):
                stored = vecs.astype(np.float16).astype(np.float32)
                self.index.add_with_ids(stored, ids)
                self._rows_since_snapshot += len(ids)
            if self.snapshot_every and self._rows_since_snapshot >= self.snapshot_every:
                self.snapshot()

    def delete(self, video_id: str) -> bool:
        with self._lock:
            rows = [r[0] for r in self._db.execute(
                "SELECT row_id FROM rows WHERE video_id=?", (video_id,))]
            try:
                self._db.execute("BEGIN IMMEDIATE")
                n = self._db.execute("DELETE FROM videos WHERE video_id=?", (video_id,)).rowcount
                self._db.execute("DELETE FROM rows WHERE video_id=?", (video_id,))
                self._db.execute("DELETE FROM audio WHERE video_id=?", (video_id,))
                self._db.executemany("INSERT INTO deletions (row_id) VALUES (?)",
                                     [(r,) for r in rows])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StorageError(f"the catalog could not delete the video: {exc}") from None
            if rows:
                self.index.remove_ids(np.array(rows, np.int64))
            return n > 0

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def snapshot(self) -> float:
        """Write the FAISS index atomically (temp, fsync, rename) and what it covers; returns s."""
        t0 = time.perf_counter()
        with self._lock:
            seq = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='rows'").fetchone()
            max_row = int(seq[0]) if seq else 0
            del_seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM deletions").fetchone()[0]
            blob = faiss.serialize_index(self.index).tobytes()
            meta = {"max_row_id": int(max_row), "deletion_seq": int(del_seq),
                    "ntotal": int(self.index.ntotal), "factory": self.index_factory,
                    "sha256": hashlib.sha256(blob).hexdigest(), "written_at": time.time()}
            _atomic_write(self.dir / "index.faiss", blob)
            _atomic_write(self.dir / "index.json", json.dumps(meta).encode())
            self._rows_since_snapshot = 0
        return time.perf_counter() - t0

    def close(self) -> None:
        with self._lock:
            if self._rows_since_snapshot:
                try:
                    self.snapshot()
                except OSError as exc:
                    log.warning("final snapshot failed (%s); the next start replays SQLite", exc)
            self._db.close()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _set_nprobe(index: faiss.Index, nprobe: int) -> None:
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if hasattr(inner, "nprobe"):
        inner.nprobe = nprobe


def _audio(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, np.float16).astype(np.float32).reshape(-1, AUDIO_DIM)


def _record(row: tuple) -> VideoRecord:
    return VideoRecord(
        video_id=row[0], root_id=row[1], sha256=row[2], is_duplicate=bool(row[3]),
        duplicate_for=row[4], matched_video=row[5], score=float(row[6]), path=row[7],
        duration_s=float(row[8]), frames=int(row[9]), created_at=float(row[10]), source=row[11],
    )
