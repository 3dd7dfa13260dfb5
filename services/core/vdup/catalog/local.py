"""A durable catalog in one directory: SQLite holds the truth, FAISS is a rebuildable cache.

Layout of ``data_dir``:
    catalog.sqlite   videos, descriptor rows (float16), audio, deletions, pending videos;
                     WAL mode, synchronous=FULL
    index.faiss      snapshot of the FAISS index (written to a temp file, fsynced, renamed)
    index.json       what the snapshot covers: catalog id, last row id, last deletion, row count,
                     factory, checksum

Why this shape: an add is one SQLite transaction (video, its rows, its audio); it is acknowledged
after the commit, which is fsynced, so SQLite *is* the write-ahead log. The FAISS index is only a
faster view of the rows. Start-up loads the last snapshot and replays rows and deletions that came
after it, so kill -9 at any moment loses nothing acknowledged. Nothing is ever unpickled: FAISS has
its own format, the rest is SQLite and JSON.

What start-up does with files it did not expect (docs/indexer.md, "Start-up checks"):

- ``catalog.sqlite`` that is not a vdup catalog, is damaged or has another schema version:
  ``CatalogCorrupt``, the process refuses to start. It is the only copy of the data.
- a snapshot without its ``catalog.sqlite``: ``CatalogCorrupt`` (the catalog was removed; starting
  empty would silently drop every video).
- ``index.faiss`` / ``index.json`` that are damaged, truncated, from another catalog (catalog id),
  of another dimension or factory, or that disagree with SQLite on the row count: logged, and
  the index is rebuilt from SQLite. Lossless, since the snapshot holds nothing SQLite lacks.

Index types: ``index_factory`` is a FAISS factory string over inner product. "Flat" is exact.
Types that need training ("IVF1024,PQ64", "IVF4096,SQ8", ...) are trained by ``train()`` on rows
sampled from SQLite (``vdup indexer --train``); until then the catalog serves from an exact flat
index, so an untrained shard is slow but never wrong. HNSW types cannot remove vectors, and
fast-scan PQ ("PQ128x4fs") must not (``faiss_index.removes``): deleted rows stay in the index until the
next rebuild, and search ignores them (it maps every hit back through the ``rows`` table, where
deleted rows no longer exist).
"""

from __future__ import annotations

import builtins
import logging
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import faiss
import numpy as np

from vdup.catalog import snapshot
from vdup.catalog.faiss_index import needs_training, new_index, removes, set_search_params
from vdup.catalog.faiss_index import remove as remove_rows
from vdup.catalog.types import StoredRows, VideoRecord
from vdup.errors import StorageError
from vdup.features.types import (
    AUDIO_DIM,
    DIM,
    INDEX_MAX_SIM,
    QUERY_MAX_SIM,
    VideoFeatures,
    distinct_rows,
)
from vdup.matching.decide import Candidate

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
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

#: Fewest stored rows worth training a compressed index on; below it the exact index serves.
MIN_TRAIN_ROWS = 1000


class CatalogCorrupt(RuntimeError):
    """The data directory holds something we did not write or cannot read: refuse to start."""


class LocalCatalog:
    """The embedded catalog (also the engine of each indexer shard).

    index_factory: a FAISS factory string over inner product ("Flat" for exact search; trained
    types such as "IVF1024,PQ64" need ``train()``, see the module docstring).
    snapshot_every: rows added between automatic snapshots (0 = only on close and on request).
    nprobe: IVF lists visited per query row (HNSW: efSearch = 4 * nprobe).
    threads: FAISS (OpenMP) threads per search, set in the searching thread (OpenMP keeps the
    setting per thread, and searches run in worker threads); 0 = OpenMP's default (all cores).
    index_max_sim: which of a video's stored rows enter the FAISS index (``distinct_rows``):
    a row within this cosine similarity of one already indexed stays in SQLite only (the
    aligner still reads every row), so memory grows with scenes, not frames; >= 1 indexes all.
    query_max_sim: the same selection applied to the query rows of ``search``.
    sqlite_cache_mb: SQLite's page cache, MB (allocated as pages are read). Each search reads
    ~400-1 600 owner-index entries and 20 candidates' rows; a 1M-video shard with 128 MB
    instead of SQLite's 2 MB default: owners p99 69 -> 39 ms, candidates p50 14 -> 7 ms.
    verify: run SQLite's ``PRAGMA quick_check`` at start-up. It reads the whole file (about 20 s
    per GB on the 2-core reference machine), so shards skip it by default; a file that is not
    SQLite, or not ours, is refused either way, and a damaged page met later raises
    ``sqlite3.DatabaseError`` (the shard answers 500, the API 503).
    """

    def __init__(
        self,
        data_dir: str | Path,
        index_factory: str = "Flat",
        snapshot_every: int = 5000,
        nprobe: int = 16,
        verify: bool = True,
        threads: int = 0,
        index_max_sim: float = INDEX_MAX_SIM,
        query_max_sim: float = QUERY_MAX_SIM,
        sqlite_cache_mb: int = 128,
    ) -> None:
        self.dir = Path(data_dir)
        self.sqlite_cache_mb = sqlite_cache_mb
        self.index_max_sim = index_max_sim
        self.query_max_sim = query_max_sim
        self.dir.mkdir(parents=True, exist_ok=True)
        self.index_factory = index_factory
        self.snapshot_every = snapshot_every
        self.nprobe = nprobe
        self.threads = threads
        # Exact search is memory-bound: FAISS's per-row path streams the whole index once per
        # query row, its BLAS path once per batch (13-row query, 40k rows: 88 -> 24 ms here).
        faiss.cvar.distance_compute_blas_threshold = 1
        self._lock = threading.RLock()
        self._snap_lock = threading.Lock()
        self._rows_since_snapshot = 0
        self.last_snapshot_at = 0.0
        self._check_orphan_snapshot()
        t0 = time.perf_counter()
        self._db = self._open_db(verify)
        log.info(
            "%s: SQLite opened%s in %.2f s",
            self.dir,
            " and checked" if verify else "",
            time.perf_counter() - t0,
        )
        try:
            self.catalog_id = self._catalog_id()
            self.index, self.effective_factory = self._load_index()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise CatalogCorrupt(
                f"{self.dir / 'catalog.sqlite'} is damaged ({exc}); refusing to start. Restore "
                "it from a backup."
            ) from None

    # ---------------------------------------------------------------- start-up

    def _check_orphan_snapshot(self) -> None:
        if not (self.dir / "catalog.sqlite").exists() and (self.dir / "index.faiss").exists():
            raise CatalogCorrupt(
                f"{self.dir} holds an index snapshot but no catalog.sqlite: the catalog was "
                "removed or the wrong directory is mounted; refusing to start empty. Restore "
                "catalog.sqlite, or delete index.faiss and index.json to start a new catalog."
            )

    def _open_db(self, verify: bool) -> sqlite3.Connection:
        path = self.dir / "catalog.sqlite"
        try:
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA cache_size=-{int(self.sqlite_cache_mb) * 1024}")
            db.executescript(SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) == 1:
                # v1 -> v2: every stored row was indexed.
                db.execute("ALTER TABLE rows ADD COLUMN indexed INTEGER NOT NULL DEFAULT 1")
                db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise CatalogCorrupt(f"{path}: schema version {row[0]}, expected {SCHEMA_VERSION}")
            # Start-up counts the indexed rows; without this partial index that count reads
            # every row's blob (minutes for a million videos), with it ~8 B a row.
            db.execute("CREATE INDEX IF NOT EXISTS rows_indexed ON rows (indexed) WHERE indexed=1")
            # Search maps FAISS ids to videos. Through the table each id costs a random read of a
            # ~1 KB row (a 1M-video shard: p50 80 ms, p99 2.2 s a query with a cold cache);
            # this covering index packs ~80 owners a page (p50 6 ms). Built once on an existing
            # catalog (~40 s a million videos).
            db.execute(
                "CREATE INDEX IF NOT EXISTS rows_owner "
                "ON rows (row_id, video_id, indexed) WHERE indexed=1"
            )
            if verify:
                check = db.execute("PRAGMA quick_check").fetchone()
                if check is None or check[0] != "ok":
                    raise sqlite3.DatabaseError(
                        f"quick_check: {check[0] if check else 'no answer'}"
                    )
        except sqlite3.DatabaseError as exc:
            raise CatalogCorrupt(
                f"{path} is not a vdup catalog or is damaged ({exc}); refusing to start. "
                "Move it away or restore it from a backup."
            ) from None
        return db

    def _catalog_id(self) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key='catalog_id'").fetchone()
        if row is not None:
            return row[0]
        cid = uuid.uuid4().hex
        self._db.execute("INSERT INTO meta VALUES ('catalog_id', ?)", (cid,))
        return cid

    def _load_index(self) -> tuple[faiss.Index, str]:
        t0 = time.perf_counter()
        loaded = self._load_snapshot()
        if loaded is not None:
            index, factory, max_row, del_seq = loaded
            t1 = time.perf_counter()
            replayed = self._replay(index, max_row, del_seq)
            if self._consistent(index):
                self._rows_since_snapshot = replayed
                log.info(
                    "%s: snapshot of %d rows loaded in %.2f s, %d later rows replayed from "
                    "SQLite in %.2f s",
                    self.dir,
                    index.ntotal - replayed,
                    t1 - t0,
                    replayed,
                    time.perf_counter() - t1,
                )
                return index, factory
            log.warning(
                "snapshot in %s disagrees with the catalog's rows; rebuilding it from SQLite",
                self.dir,
            )
        t1 = time.perf_counter()
        index, factory = self._rebuild()
        self._rows_since_snapshot = int(index.ntotal)
        log.info(
            "%s: index (%s) of %d rows rebuilt from SQLite in %.2f s",
            self.dir,
            factory,
            index.ntotal,
            time.perf_counter() - t1,
        )
        return index, factory

    def _load_snapshot(self) -> tuple[faiss.Index, str, int, int] | None:
        """The snapshot if it is ours, whole and of a usable type; None (logged) otherwise."""
        if not snapshot.exists(self.dir):
            return None
        try:
            index, cp = snapshot.read(self.dir, self.catalog_id, (self.index_factory, "Flat"))
        except (OSError, snapshot.SnapshotUnusable) as exc:
            log.warning(
                "snapshot in %s is unusable (%s); rebuilding the index from the catalog, "
                "which loses nothing",
                self.dir,
                exc,
            )
            return None
        factory = cp.factory
        if factory != self.index_factory:
            log.info(
                "%s: the index is not trained for %r yet; serving exact search until "
                "'vdup indexer --train'",
                self.dir,
                self.index_factory,
            )
        self.last_snapshot_at = cp.written_at
        return index, factory, cp.max_row_id, cp.deletion_seq

    def _consistent(self, index: faiss.Index) -> bool:
        rows = self._db.execute("SELECT COUNT(*) FROM rows WHERE indexed=1").fetchone()[0]
        if removes(index):
            return index.ntotal == rows
        return index.ntotal >= rows

    def _rebuild(self) -> tuple[faiss.Index, str]:
        """A fresh index over every stored row: trained if the catalog wants a trained type and
        holds enough rows, exact otherwise."""
        if needs_training(self.index_factory):
            n = self._db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
            if n >= MIN_TRAIN_ROWS:
                try:
                    index = self._trained(self._sample_rows(200_000))
                    self._replay(index, 0, 0)
                    return index, self.index_factory
                except RuntimeError as exc:
                    log.warning(
                        "training %r failed (%s); serving exact search", self.index_factory, exc
                    )
            factory = "Flat"
        else:
            factory = self.index_factory
        index = new_index(factory)
        self._replay(index, 0, 0)
        return index, factory

    def _replay(self, index: faiss.Index, max_row: int, del_seq: int) -> int:
        """Bring ``index`` up to date: rows after ``max_row``, deletions after ``del_seq``;
        returns the rows added."""
        added = 0
        cur = self._db.execute(
            "SELECT row_id, vec FROM rows WHERE row_id > ? AND indexed=1 ORDER BY row_id",
            (max_row,),
        )
        while batch := cur.fetchmany(20_000):
            ids = np.array([r[0] for r in batch], np.int64)
            vecs = np.frombuffer(b"".join(r[1] for r in batch), np.float16).reshape(-1, DIM)
            index.add_with_ids(vecs.astype(np.float32), ids)
            added += len(ids)
        gone = [
            r[0]
            for r in self._db.execute(
                "SELECT row_id FROM deletions WHERE seq > ? AND row_id <= ?", (del_seq, max_row)
            )
        ]
        if gone:
            remove_rows(index, gone)
        return added

    # ---------------------------------------------------------------- training

    def _sample_rows(self, n: int, seed: int = 0) -> np.ndarray:
        """float32 [<= n, 512]: stored rows drawn uniformly (by row id) from the catalog."""
        lo, hi = self._db.execute("SELECT MIN(row_id), MAX(row_id) FROM rows").fetchone()
        if lo is None:
            return np.zeros((0, DIM), np.float32)
        total = self._db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
        if total <= n:
            blobs = [r[0] for r in self._db.execute("SELECT vec FROM rows")]
        else:
            rng = np.random.default_rng(seed)
            ids = np.unique(rng.integers(lo, hi + 1, int(n * 1.2)))[:n].tolist()
            blobs = []
            for i in range(0, len(ids), 900):
                chunk = ids[i : i + 900]
                q = f"SELECT vec FROM rows WHERE row_id IN ({','.join('?' * len(chunk))})"
                blobs += [r[0] for r in self._db.execute(q, chunk)]
        return np.frombuffer(b"".join(blobs), np.float16).reshape(-1, DIM).astype(np.float32)

    def _trained(self, sample: np.ndarray) -> faiss.Index:
        index = new_index(self.index_factory)
        if not index.is_trained:
            if len(sample) < MIN_TRAIN_ROWS:
                raise RuntimeError(f"{len(sample)} rows are too few to train on")
            index.train(sample)
        return index

    def train(self, max_train_rows: int = 200_000) -> dict:
        """Train the configured index type on up to ``max_train_rows`` stored rows, index every
        row into it and snapshot it. Blocks writes while it indexes; meant for a stopped shard
        (``vdup indexer --train``). Returns what it did (rows, seconds)."""
        t0 = time.perf_counter()
        with self._lock:
            sample = self._sample_rows(max_train_rows)
            index = self._trained(sample)
            self._replay(index, 0, 0)
            self.index, self.effective_factory = index, self.index_factory
            self._rows_since_snapshot = int(index.ntotal)
        self.snapshot()
        return {
            "factory": self.index_factory,
            "trained_on": int(len(sample)),
            "vectors": int(index.ntotal),
            "seconds": round(time.perf_counter() - t0, 2),
        }

    # ---------------------------------------------------------------- reads

    def get(self, video_id: str) -> VideoRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM videos WHERE video_id=?", (video_id,)).fetchone()
        return _record(row) if row else None

    def get_state(self, video_id: str) -> tuple[VideoRecord, bool] | None:
        """(record, pending) or None; pending: added by a check that has not settled it yet
        (docs/indexer.md, "Races across API replicas")."""
        with self._lock:
            row = self._db.execute("SELECT * FROM videos WHERE video_id=?", (video_id,)).fetchone()
            if row is None:
                return None
            pending = (
                self._db.execute("SELECT 1 FROM pending WHERE video_id=?", (video_id,)).fetchone()
                is not None
            )
        return _record(row), pending

    def find_sha256(self, sha256: str) -> VideoRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM videos WHERE sha256=? ORDER BY created_at, video_id LIMIT 1",
                (sha256,),
            ).fetchone()
        return _record(row) if row else None

    def list(self, limit: int = 100, after: str = "") -> list[VideoRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM videos WHERE video_id > ? ORDER BY video_id LIMIT ?", (after, limit)
            ).fetchall()
        return [_record(r) for r in rows]

    def search(
        self, features: VideoFeatures, k: int = 32, max_candidates: int = 20
    ) -> builtins.list[Candidate]:
        return self.search_vectors(
            features.search_rows(self.query_max_sim), features.audio is not None, k, max_candidates
        )

    def search_vectors(
        self, query: np.ndarray, with_audio: bool, k: int, max_candidates: int
    ) -> builtins.list[Candidate]:
        """query: float32 [q, 512]. Candidates ordered by best row similarity, then video id."""
        with self._lock:
            if self.index.ntotal == 0:
                return []
            set_search_params(self.index, self.nprobe)
            if self.threads:
                faiss.omp_set_num_threads(self.threads)
            sims, ids = self.index.search(
                np.ascontiguousarray(query, np.float32), min(k, self.index.ntotal)
            )
            valid = ids >= 0
            if not valid.any():
                return []
            flat_ids, flat_sims = ids[valid], sims[valid]
            best: dict[int, float] = {}
            for rid, s in zip(flat_ids.tolist(), flat_sims.tolist()):
                if s > best.get(rid, -2.0):
                    best[rid] = s
            per_video: dict[str, float] = {}
            keys = list(best)
            for i in range(0, len(keys), 900):
                chunk = keys[i : i + 900]
                marks = ",".join("?" * len(chunk))
                owners = self._db.execute(
                    "SELECT row_id, video_id FROM rows INDEXED BY rows_owner "
                    f"WHERE indexed=1 AND row_id IN ({marks})",
                    chunk,
                ).fetchall()
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
            descriptors=np.stack([np.frombuffer(r[2], np.float16) for r in rows]).astype(
                np.float32
            ),
            views=np.array([r[1] for r in rows], np.int8),
            row_times=np.array([r[0] for r in rows], np.float32),
            audio=_audio(audio[0]) if audio else np.zeros((0, AUDIO_DIM), np.float32),
            duration_s=float(rec[1]) if rec else 0.0,
            retrieval=float(retrieval),
        )

    def stats(self) -> dict:
        with self._lock:
            videos = self._db.execute("SELECT COUNT(*) FROM videos").fetchone()[0]
            return {
                "videos": int(videos),
                "vectors": int(self.index.ntotal),
                "index": self.effective_factory,
            }

    @property
    def unsnapshotted_rows(self) -> int:
        """Rows that the next start must replay from SQLite (0 right after a snapshot)."""
        return self._rows_since_snapshot

    def pending_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    def stored(self, video_id: str) -> tuple[VideoRecord, StoredRows | None, bool] | None:
        """(record, every stored row in insertion order, pending) of one video, read in one go;
        None if unknown. ``add_rows`` of the result stores the same video again (resharding moves
        videos between shards this way); rows is None for a video stored without features."""
        with self._lock:
            row = self._db.execute("SELECT * FROM videos WHERE video_id=?", (video_id,)).fetchone()
            if row is None:
                return None
            rows = self._db.execute(
                "SELECT t, view, vec FROM rows WHERE video_id=? ORDER BY row_id", (video_id,)
            ).fetchall()
            audio = self._db.execute(
                "SELECT vecs FROM audio WHERE video_id=?", (video_id,)
            ).fetchone()
            pending = (
                self._db.execute("SELECT 1 FROM pending WHERE video_id=?", (video_id,)).fetchone()
                is not None
            )
        stored = None
        if rows:
            stored = StoredRows(
                descriptors=np.frombuffer(b"".join(r[2] for r in rows), np.float16).reshape(
                    -1, DIM
                ),
                views=np.array([r[1] for r in rows], np.int8),
                times=np.array([r[0] for r in rows], np.float32),
                audio=(
                    np.frombuffer(audio[0], np.float16).reshape(-1, AUDIO_DIM)
                    if audio
                    else np.zeros((0, AUDIO_DIM), np.float16)
                ),
            )
        return _record(row), stored, pending

    # ---------------------------------------------------------------- writes

    def add(
        self, record: VideoRecord, features: VideoFeatures | None, pending: bool = False
    ) -> VideoRecord:
        """Durably add ``record`` with its descriptor rows and audio, then index the rows.

        pending: the record is provisional until ``resolve`` (cross-replica races).
        Returns the stored record. Raises sqlite3.IntegrityError for a known id and StorageError
        (nothing acknowledged) when SQLite cannot commit, e.g. disk full.
        """
        rows = StoredRows.from_features(features) if features is not None else None
        self.add_many([(record, rows)], pending=pending)
        return record

    def add_rows(
        self, record: VideoRecord, rows: StoredRows | None, pending: bool = False
    ) -> VideoRecord:
        """``add`` for rows that are already in stored form (the indexer shard's path)."""
        self.add_many([(record, rows)], pending=pending)
        return record

    def add_many(
        self, items: builtins.list[tuple[VideoRecord, StoredRows | None]], pending: bool = False
    ) -> None:
        """Add several videos in ONE transaction (bulk loads): all of them or none."""
        with self._lock:
            new_ids: builtins.list[np.ndarray] = []
            new_vecs: builtins.list[np.ndarray] = []
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for record, rows in items:
                    self._insert(record, rows, pending, new_ids, new_vecs)
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError:
                self._rollback()
                raise
            except sqlite3.Error as exc:
                self._rollback()
                raise StorageError(f"the catalog could not store the video: {exc}") from None
            ids = np.concatenate(new_ids) if new_ids else np.zeros(0, np.int64)
            if len(ids):
                self.index.add_with_ids(np.concatenate(new_vecs), ids)
                self._rows_since_snapshot += len(ids)
            due = self.snapshot_every and self._rows_since_snapshot >= self.snapshot_every
        if due:
            self.snapshot()

    def _insert(
        self,
        record: VideoRecord,
        rows: StoredRows | None,
        pending: bool,
        new_ids: builtins.list,
        new_vecs: builtins.list,
    ) -> None:
        self._db.execute(
            "INSERT INTO videos VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                record.video_id,
                record.root_id,
                record.sha256,
                int(record.is_duplicate),
                record.duplicate_for,
                record.matched_video,
                record.score,
                record.path,
                record.duration_s,
                record.frames,
                record.created_at,
                record.source,
            ),
        )
        if pending:
            self._db.execute("INSERT INTO pending VALUES (?)", (record.video_id,))
        if rows is None:
            return
        stored = np.ascontiguousarray(rows.descriptors, np.float16)
        indexed = np.zeros(len(stored), bool)
        indexed[distinct_rows(stored, self.index_max_sim)] = True
        ids = []
        for t, v, vec, ix in zip(
            rows.times.tolist(), rows.views.tolist(), stored, indexed.tolist()
        ):
            cur = self._db.execute(
                "INSERT INTO rows (video_id, t, view, vec, indexed) VALUES (?,?,?,?,?)",
                (record.video_id, float(t), int(v), vec.tobytes(), int(ix)),
            )
            if ix:
                ids.append(cur.lastrowid)
        self._db.execute(
            "INSERT INTO audio VALUES (?, ?)",
            (record.video_id, np.ascontiguousarray(rows.audio, np.float16).tobytes()),
        )
        new_ids.append(np.asarray(ids, np.int64))
        new_vecs.append(stored[indexed].astype(np.float32))

    def resolve(self, record: VideoRecord) -> bool:
        """Settle a pending video: store ``record``'s decision fields (root_id, is_duplicate,
        duplicate_for, matched_video, score, path) and clear its pending mark, atomically, only
        if it is still pending. Returns False (nothing written) when it was not pending."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                gone = self._db.execute(
                    "DELETE FROM pending WHERE video_id=?", (record.video_id,)
                ).rowcount
                if gone:
                    self._db.execute(
                        "UPDATE videos SET root_id=?, is_duplicate=?, duplicate_for=?, "
                        "matched_video=?, score=?, path=? WHERE video_id=?",
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
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StorageError(f"the catalog could not settle the video: {exc}") from None
            return gone > 0

    def delete(self, video_id: str) -> bool:
        with self._lock:
            rows = [
                r[0]
                for r in self._db.execute(
                    "SELECT row_id FROM rows WHERE video_id=? AND indexed=1", (video_id,)
                )
            ]
            try:
                self._db.execute("BEGIN IMMEDIATE")
                n = self._db.execute("DELETE FROM videos WHERE video_id=?", (video_id,)).rowcount
                self._db.execute("DELETE FROM rows WHERE video_id=?", (video_id,))
                self._db.execute("DELETE FROM audio WHERE video_id=?", (video_id,))
                self._db.execute("DELETE FROM pending WHERE video_id=?", (video_id,))
                self._db.executemany(
                    "INSERT INTO deletions (row_id) VALUES (?)", [(r,) for r in rows]
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StorageError(f"the catalog could not delete the video: {exc}") from None
            if rows:
                remove_rows(self.index, rows)
                self._rows_since_snapshot += 1
            return n > 0

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def snapshot(self) -> float:
        """Write the FAISS index atomically (temp, fsync, rename) and what it covers; returns s.

        The index is copied under the lock (a memory copy); the slow part, hashing and writing,
        runs outside it, so adds and searches continue meanwhile.
        """
        t0 = time.perf_counter()
        with self._snap_lock:
            with self._lock:
                seq = self._db.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name='rows'"
                ).fetchone()
                max_row = int(seq[0]) if seq else 0
                del_seq = self._db.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM deletions"
                ).fetchone()[0]
                blob = faiss.serialize_index(self.index)
                covered = self._rows_since_snapshot
                checkpoint = snapshot.Checkpoint(
                    catalog_id=self.catalog_id,
                    max_row_id=int(max_row),
                    deletion_seq=int(del_seq),
                    ntotal=int(self.index.ntotal),
                    factory=self.effective_factory,
                    written_at=time.time(),
                )
            snapshot.write(self.dir, blob.data, checkpoint)
            del blob
            with self._lock:
                self._rows_since_snapshot = max(0, self._rows_since_snapshot - covered)
            self.last_snapshot_at = checkpoint.written_at
        return time.perf_counter() - t0

    def close(self) -> None:
        """Snapshot what the last snapshot lacks, then close SQLite. Callers stop writing first."""
        if self._rows_since_snapshot:
            try:
                self.snapshot()
            except OSError as exc:
                log.warning("final snapshot failed (%s); the next start replays SQLite", exc)
        with self._lock:
            self._db.close()


def _audio(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, np.float16).astype(np.float32).reshape(-1, AUDIO_DIM)


def _record(row: tuple) -> VideoRecord:
    return VideoRecord(
        video_id=row[0],
        root_id=row[1],
        sha256=row[2],
        is_duplicate=bool(row[3]),
        duplicate_for=row[4],
        matched_video=row[5],
        score=float(row[6]),
        path=row[7],
        duration_s=float(row[8]),
        frames=int(row[9]),
        created_at=float(row[10]),
        source=row[11],
    )
