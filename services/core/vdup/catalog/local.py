"""A durable catalog in one directory: SQLite holds the truth, FAISS is a rebuildable cache.

Layout of ``data_dir``:
    catalog.sqlite   the truth: videos, descriptor rows (float16), audio, deletions, pending
                     videos, and the review store (``vdup.catalog.store``)
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
from pathlib import Path

import faiss
import numpy as np

from vdup.catalog import snapshot
from vdup.catalog.faiss_index import needs_training, new_index, removes, set_search_params
from vdup.catalog.faiss_index import remove as remove_rows
from vdup.catalog.review import (
    AuditEntry,
    Outcome,
    QueueItem,
    QueueQuery,
    Side,
    StoredEvidence,
    Verdict,
)
from vdup.catalog.store import CatalogCorrupt, SqliteStore, TruthChange
from vdup.catalog.types import StoredRows, VideoRecord
from vdup.features.types import INDEX_MAX_SIM, QUERY_MAX_SIM, Thumbnails, VideoFeatures
from vdup.matching.decide import Candidate
from vdup.matching.explain import Evidence

log = logging.getLogger(__name__)

#: Fewest stored rows worth training a compressed index on; below it the exact index serves.
MIN_TRAIN_ROWS = 1000

__all__ = ["MIN_TRAIN_ROWS", "CatalogCorrupt", "LocalCatalog"]


class LocalCatalog:
    """The embedded catalog (also the engine of each indexer shard), and its review store.

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
    ~400-1 600 owner-index entries and 20 candidates' rows
    (docs/benchmarks.md#design-choices-measured).
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
        self.index_max_sim = index_max_sim
        self.query_max_sim = query_max_sim
        self.dir.mkdir(parents=True, exist_ok=True)
        self.index_factory = index_factory
        self.snapshot_every = snapshot_every
        self.nprobe = nprobe
        self.threads = threads
        # Exact search is memory-bound: FAISS's per-row path streams the whole index once per
        # query row, its BLAS path once per batch (docs/benchmarks.md#design-choices-measured).
        faiss.cvar.distance_compute_blas_threshold = 1
        self._lock = threading.RLock()
        self._snap_lock = threading.Lock()
        self._rows_since_snapshot = 0
        self.last_snapshot_at = 0.0
        self._check_orphan_snapshot()
        t0 = time.perf_counter()
        self._store = SqliteStore(self.dir / "catalog.sqlite", sqlite_cache_mb, verify)
        log.info(
            "%s: SQLite opened%s in %.2f s",
            self.dir,
            " and checked" if verify else "",
            time.perf_counter() - t0,
        )
        try:
            self.catalog_id = self._store.catalog_id()
            self.index, self.effective_factory = self._load_index()
        except sqlite3.DatabaseError as exc:
            self._store.close()
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
        rows = self._store.count_rows(indexed_only=True)
        if removes(index):
            return index.ntotal == rows
        return index.ntotal >= rows

    def _rebuild(self) -> tuple[faiss.Index, str]:
        """A fresh index over every stored row: trained if the catalog wants a trained type and
        holds enough rows, exact otherwise."""
        if needs_training(self.index_factory):
            if self._store.count_rows(indexed_only=False) >= MIN_TRAIN_ROWS:
                try:
                    index = self._trained(self._store.sample_rows(200_000))
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
        for ids, vecs in self._store.rows_after(max_row):
            index.add_with_ids(vecs, ids)
            added += len(ids)
        gone = self._store.deleted_rows(del_seq, max_row)
        if gone:
            remove_rows(index, gone)
        return added

    # ---------------------------------------------------------------- training

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
            sample = self._store.sample_rows(max_train_rows)
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
            return self._store.record(video_id)

    def get_state(self, video_id: str) -> tuple[VideoRecord, bool] | None:
        """(record, pending) or None; pending: added by a check that has not settled it yet
        (docs/indexer.md, "Races across API replicas")."""
        with self._lock:
            record = self._store.record(video_id)
            if record is None:
                return None
            return record, self._store.is_pending(video_id)

    def find_sha256(self, sha256: str) -> VideoRecord | None:
        with self._lock:
            return self._store.find_sha256(sha256)

    def list(self, limit: int = 100, after: str = "") -> builtins.list[VideoRecord]:
        with self._lock:
            return self._store.records(limit, after)

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
            best: dict[int, float] = {}
            for rid, s in zip(ids[valid].tolist(), sims[valid].tolist()):
                if s > best.get(rid, -2.0):
                    best[rid] = s
            per_video: dict[str, float] = {}
            for rid, vid in self._store.owners(builtins.list(best)):
                per_video[vid] = max(per_video.get(vid, -2.0), best[rid])
            chosen = sorted(per_video.items(), key=lambda kv: (-kv[1], kv[0]))[:max_candidates]
            return [self._store.candidate(vid, score) for vid, score in chosen]

    def stats(self) -> dict:
        with self._lock:
            return {
                "videos": self._store.count_videos(),
                "vectors": int(self.index.ntotal),
                "index": self.effective_factory,
            }

    @property
    def unsnapshotted_rows(self) -> int:
        """Rows that the next start must replay from SQLite (0 right after a snapshot)."""
        return self._rows_since_snapshot

    def pending_count(self) -> int:
        with self._lock:
            return self._store.pending_count()

    def stored(self, video_id: str) -> tuple[VideoRecord, StoredRows | None, bool] | None:
        """(record, every stored row in insertion order, pending) of one video, read in one go;
        None if unknown. ``add_rows`` of the result stores the same video again (resharding moves
        videos between shards this way); rows is None for a video stored without features."""
        with self._lock:
            return self._store.stored(video_id)

    # ---------------------------------------------------------------- writes

    def add(
        self,
        record: VideoRecord,
        features: VideoFeatures | None,
        pending: bool = False,
        *,
        evidence: Evidence | None = None,
    ) -> VideoRecord:
        """Durably add ``record`` with its descriptor rows, audio and thumbnails, and the
        evidence of its decision, then index the rows.

        pending: the record is provisional until ``resolve`` (cross-replica races).
        Returns the stored record. Raises sqlite3.IntegrityError for a known id and StorageError
        (nothing acknowledged) when SQLite cannot commit, e.g. disk full.
        """
        rows = StoredRows.from_features(features) if features is not None else None
        thumbs = features.thumbnails if features is not None else None
        self._add([(record, rows, thumbs, evidence)], pending)
        return record

    def add_rows(
        self, record: VideoRecord, rows: StoredRows | None, pending: bool = False
    ) -> VideoRecord:
        """``add`` for rows that are already in stored form (the indexer shard's path)."""
        self._add([(record, rows, None, None)], pending)
        return record

    def add_many(
        self, items: builtins.list[tuple[VideoRecord, StoredRows | None]], pending: bool = False
    ) -> None:
        """Add several videos in ONE transaction (bulk loads): all of them or none."""
        self._add([(r, rows, None, None) for r, rows in items], pending)

    def _add(
        self,
        items: builtins.list[
            tuple[VideoRecord, StoredRows | None, Thumbnails | None, Evidence | None]
        ],
        pending: bool,
    ) -> None:
        with self._lock:
            ids, vecs = self._store.insert(items, pending, self.index_max_sim)
            if len(ids):
                self.index.add_with_ids(vecs, ids)
                self._rows_since_snapshot += len(ids)
            due = self.snapshot_every and self._rows_since_snapshot >= self.snapshot_every
        if due:
            self.snapshot()

    def resolve(self, record: VideoRecord) -> bool:
        """Settle a pending video: store ``record``'s decision fields (root_id, is_duplicate,
        duplicate_for, matched_video, score, path) and clear its pending mark, atomically, only
        if it is still pending. Returns False (nothing written) when it was not pending."""
        with self._lock:
            return self._store.resolve(record)

    def delete(self, video_id: str) -> bool:
        """Delete a video and everything kept about it (its evidence, and its frames in other
        videos' evidence). False when unknown."""
        with self._lock:
            rows = self._store.delete(video_id)
            if rows:
                remove_rows(self.index, rows)
                self._rows_since_snapshot += 1
            return rows is not None

    # ---------------------------------------------------------------- a view of the truth

    @property
    def truth_seq(self) -> int:
        """The last change of the platform's truth this catalog has applied (a replica's view;
        0 for an embedded catalog, which is its own truth)."""
        with self._lock:
            return self._store.truth_seq()

    def apply_truth(self, changes: builtins.list[TruthChange], truth_seq: int) -> None:
        """Apply the truth's ``changes`` (in order) and mark ``truth_seq`` applied: one SQLite
        transaction, then the FAISS index follows (``vdup.indexer.replica``)."""
        with self._lock:
            ids, vecs, removed = self._store.apply(changes, truth_seq, self.index_max_sim)
            if removed:
                remove_rows(self.index, removed)
            if len(ids):
                self.index.add_with_ids(vecs, ids)
            self._rows_since_snapshot += len(ids) + (1 if removed else 0)
            due = self.snapshot_every and self._rows_since_snapshot >= self.snapshot_every
        if due:
            self.snapshot()

    # ---------------------------------------------------------------- review

    def thumbnails(self, video_id: str) -> Thumbnails:
        with self._lock:
            return self._store.thumbnails(video_id)

    def evidence(self, video_id: str) -> StoredEvidence | None:
        with self._lock:
            return self._store.evidence(video_id)

    def evidence_image(self, video_id: str, side: Side, index: int) -> bytes | None:
        with self._lock:
            return self._store.evidence_image(video_id, side, index)

    def review_queue(self, query: QueueQuery) -> builtins.list[QueueItem]:
        with self._lock:
            return self._store.review_queue(query)

    def apply_verdict(self, verdict: Verdict) -> Outcome:
        with self._lock:
            return self._store.apply_verdict(verdict)

    def audit(self, limit: int = 100, video_id: str = "") -> builtins.list[AuditEntry]:
        with self._lock:
            return self._store.audit(limit, video_id)

    def negatives(self, video_ids: builtins.list[str]) -> dict[str, frozenset[str]]:
        with self._lock:
            return self._store.negatives(video_ids)

    # ---------------------------------------------------------------- snapshots

    def snapshot(self) -> float:
        """Write the FAISS index atomically (temp, fsync, rename) and what it covers; returns s.

        The index is copied under the lock (a memory copy); the slow part, hashing and writing,
        runs outside it, so adds and searches continue meanwhile.
        """
        t0 = time.perf_counter()
        with self._snap_lock:
            with self._lock:
                max_row, del_seq = self._store.sequences()
                blob = faiss.serialize_index(self.index)
                covered = self._rows_since_snapshot
                checkpoint = snapshot.Checkpoint(
                    catalog_id=self.catalog_id,
                    max_row_id=max_row,
                    deletion_seq=del_seq,
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
            self._store.close()
