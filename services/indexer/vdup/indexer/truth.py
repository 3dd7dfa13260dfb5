"""The platform's catalog truth in PostgreSQL: videos, their stored rows, and a change log.

Why PostgreSQL, and why a change log: the FAISS shards become disposable views. Each replica of
shard i loads its last snapshot and then applies, in order, every change after the sequence
number that snapshot covers (``vdup.indexer.replica``). Any number of replicas can serve one
shard, resharding is starting views with another shard count, and a replica lost with its volume
rebuilds from here. This is the shape of Meta's HMA (hashes in PostgreSQL, FAISS rebuilt in
memory by the matchers) and of Milvus (a log as the truth, query nodes tail it).

The change log's one promise: **sequence order is commit order.** Every write transaction takes
one advisory lock (``CHANGE_LOCK``) before it draws its sequence number and holds it until it
commits, so no change ever becomes visible behind one with a higher number. A tailer that has
applied everything up to n never meets an n' < n later, and ``head()`` (the highest committed
number) is a read-your-writes point: a replica that has applied ``head()`` has every video
acknowledged before it was read. The lock is held for the insert and the commit only (a few
ms with fsync), far under the upload rate of a platform.

Storage per video: one ``videos`` row (the record), one ``stored_rows`` row (descriptors
float16 [r, 512], views int8 [r], times float32 [r], audio float16 [w, 128] as bytea), one
``changes`` row per write. Schema changes are numbered migrations (``MIGRATIONS``), applied by
``upgrade()`` at start-up or by ``vdup db upgrade`` (the chart's job), under an advisory lock so
two processes never apply one twice.

Every PostgreSQL failure to answer (refused, reset, timed out, in recovery) becomes
``Unavailable`` (503 with Retry-After at the API), never a wrong answer; nothing is acknowledged
before its commit returns.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from vdup.catalog.types import RECORD_FIELDS, StoredRows, VideoRecord
from vdup.errors import Conflict, Unavailable
from vdup.features.types import AUDIO_DIM, DIM, Thumbnails
from vdup.matching.explain import Evidence

log = logging.getLogger(__name__)

#: ``pg_advisory_xact_lock`` key every writer holds from drawing its change number to commit.
CHANGE_LOCK = 0x76647570  # "vdup"
#: Key of the migration lock.
MIGRATION_LOCK = 0x76647571

MIGRATIONS: tuple[str, ...] = (
    # 1: videos, their rows, the change log
    """
    CREATE TABLE videos (
        video_id text PRIMARY KEY, root_id text NOT NULL, sha256 text NOT NULL,
        is_duplicate boolean NOT NULL, duplicate_for text NOT NULL, matched_video text NOT NULL,
        score real NOT NULL, path text NOT NULL, duration_s real NOT NULL, frames integer NOT NULL,
        created_at double precision NOT NULL, source text NOT NULL DEFAULT ''
    );
    CREATE INDEX videos_sha256 ON videos (sha256);
    CREATE INDEX videos_root ON videos (root_id);
    CREATE TABLE stored_rows (
        video_id text PRIMARY KEY REFERENCES videos ON DELETE CASCADE,
        descriptors bytea NOT NULL, views bytea NOT NULL, times bytea NOT NULL,
        audio bytea NOT NULL
    );
    CREATE TABLE changes (
        seq bigserial PRIMARY KEY, op text NOT NULL CHECK (op IN ('add', 'update', 'delete')),
        video_id text NOT NULL, original boolean NOT NULL DEFAULT false
    );
    """,
    # 2: the review store (vdup.indexer.review): thumbnails, evidence, verdicts, negative list
    """
    CREATE INDEX videos_queue ON videos (is_duplicate, created_at);
    CREATE TABLE thumbnails (
        video_id text NOT NULL REFERENCES videos ON DELETE CASCADE, i integer NOT NULL,
        t real NOT NULL, jpeg bytea NOT NULL, PRIMARY KEY (video_id, i)
    );
    CREATE TABLE evidence (
        video_id text PRIMARY KEY REFERENCES videos ON DELETE CASCADE, doc jsonb NOT NULL
    );
    CREATE TABLE evidence_thumbs (
        video_id text NOT NULL REFERENCES videos ON DELETE CASCADE, side text NOT NULL,
        i integer NOT NULL, jpeg bytea NOT NULL, matched_video text NOT NULL,
        PRIMARY KEY (video_id, side, i)
    );
    CREATE INDEX evidence_thumbs_match ON evidence_thumbs (matched_video);
    CREATE TABLE verdicts (
        seq bigserial PRIMARY KEY, video_id text NOT NULL, at double precision NOT NULL,
        who text NOT NULL, verdict text NOT NULL, of text NOT NULL, note text NOT NULL,
        before jsonb NOT NULL, after jsonb NOT NULL, changed jsonb NOT NULL
    );
    CREATE INDEX verdicts_video ON verdicts (video_id);
    CREATE TABLE negatives (
        video_id text NOT NULL REFERENCES videos ON DELETE CASCADE, not_of text NOT NULL,
        verdict_seq bigint NOT NULL, PRIMARY KEY (video_id, not_of)
    );
    """,
)

Op = Literal["add", "update", "delete"]


@dataclass(frozen=True)
class Change:
    """One committed write: seq (commit order), op, the video; original: an add of a video
    decided to be an original (what the race re-check looks for)."""

    seq: int
    op: Op
    video_id: str
    original: bool = False


class Truth:
    """The catalog truth at ``url`` (``postgresql://...``, ``VDUP_DATABASE_URL``).

    pool_size: connections kept open (each API or indexer process needs few: one per
    concurrent check); timeout_s: how long a call waits for a connection or an answer before
    ``Unavailable``.
    """

    def __init__(self, url: str, pool_size: int = 4, timeout_s: float = 5.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            timeout=timeout_s,
            kwargs={
                "connect_timeout": max(1, int(timeout_s)),
                "options": f"-c statement_timeout={int(timeout_s * 1000)}",
            },
            open=False,
            name="vdup-truth",
            reconnect_timeout=0,  # keep trying in the background; calls answer 503 meanwhile
        )
        self._pool.open(wait=False)

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def connection(self, what: str) -> Iterator[psycopg.Connection]:
        """A pooled connection; PostgreSQL not answering becomes ``Unavailable``."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.errors.AdminShutdown) as exc:
            raise Unavailable(
                f"the catalog database is unavailable ({what}): {_short(exc)}"
            ) from None
        except psycopg.InterfaceError as exc:
            raise Unavailable(
                f"the catalog database connection failed ({what}): {_short(exc)}"
            ) from None
        except Exception as exc:  # the pool's own timeout when no connection can be made
            if type(exc).__name__ == "PoolTimeout":
                raise Unavailable(f"the catalog database is unavailable ({what})") from None
            raise

    # ---------------------------------------------------------------- schema

    def upgrade(self) -> int:
        """Apply the migrations this database lacks, in order, each in its own transaction;
        returns the schema version. Refuses (RuntimeError) a database newer than this code."""
        with self.connection("upgrade") as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL, "
                    "applied_at timestamptz NOT NULL DEFAULT now())"
                )
                row = conn.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_version"
                ).fetchone()
                version = int(row[0]) if row else 0
                if version > len(MIGRATIONS):
                    raise RuntimeError(
                        f"the catalog database has schema version {version}; this vdup knows "
                        f"{len(MIGRATIONS)}: upgrade vdup first"
                    )
                for n in range(version + 1, len(MIGRATIONS) + 1):
                    with conn.transaction():
                        conn.execute(MIGRATIONS[n - 1])
                        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (n,))
                    log.info("catalog database: migration %d applied", n)
        return len(MIGRATIONS)

    def version(self) -> int:
        with self.connection("version") as conn:
            exists = conn.execute("SELECT to_regclass('schema_version')").fetchone()
            if not exists or exists[0] is None:
                return 0
            row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
            return int(row[0]) if row else 0

    # ---------------------------------------------------------------- reads

    def head(self) -> int:
        """The highest committed change number (0 for an empty catalog)."""
        with self.connection("head") as conn:
            row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()
        return int(row[0]) if row else 0

    def get(self, video_id: str) -> VideoRecord | None:
        with self.connection("get") as conn:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM videos WHERE video_id=%s", (video_id,)
            ).fetchone()
        return VideoRecord.from_row(row) if row else None

    def find_sha256(self, sha256: str) -> VideoRecord | None:
        with self.connection("find_sha256") as conn:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM videos WHERE sha256=%s ORDER BY created_at, video_id "
                "LIMIT 1",
                (sha256,),
            ).fetchone()
        return VideoRecord.from_row(row) if row else None

    def list(self, limit: int = 100, after: str = "") -> list[VideoRecord]:
        with self.connection("list") as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM videos WHERE video_id > %s ORDER BY video_id LIMIT %s",
                (after, limit),
            ).fetchall()
        return [VideoRecord.from_row(r) for r in rows]

    def count(self) -> int:
        with self.connection("count") as conn:
            row = conn.execute("SELECT COUNT(*) FROM videos").fetchone()
        return int(row[0]) if row else 0

    def changes(self, after: int, limit: int = 5000) -> builtins.list[Change]:
        """Committed changes with seq > ``after``, in order, at most ``limit``."""
        with self.connection("changes") as conn:
            rows = conn.execute(
                "SELECT seq, op, video_id, original FROM changes WHERE seq > %s ORDER BY seq "
                "LIMIT %s",
                (after, limit),
            ).fetchall()
        return [Change(int(r[0]), r[1], r[2], bool(r[3])) for r in rows]

    def stored(
        self, video_ids: builtins.list[str]
    ) -> dict[str, tuple[VideoRecord, StoredRows | None]]:
        """The records and rows of those of ``video_ids`` that exist (one round trip)."""
        if not video_ids:
            return {}
        with self.connection("stored") as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS_V}, s.descriptors, s.views, s.times, s.audio FROM videos v "
                "LEFT JOIN stored_rows s ON s.video_id = v.video_id WHERE v.video_id = ANY(%s)",
                (list(video_ids),),
            ).fetchall()
        out = {}
        for r in rows:
            rec = VideoRecord.from_row(r[:12])
            out[rec.video_id] = (rec, _rows(r[12:]) if r[12] is not None else None)
        return out

    # ---------------------------------------------------------------- writes

    def add(
        self,
        record: VideoRecord,
        rows: StoredRows | None,
        thumbnails: Thumbnails | None = None,
        evidence: Evidence | None = None,
    ) -> int:
        """Durably add ``record``, its rows, thumbnails and the evidence of its decision in ONE
        transaction; returns its change number once committed. Raises Conflict for a known id
        (nothing written)."""
        with self.connection("add") as conn:
            try:
                with conn.transaction():
                    return self._add(conn, record, rows, thumbnails, evidence)
            except psycopg.errors.UniqueViolation:
                raise Conflict(f"video {record.video_id!r} is already in the catalog") from None

    def add_original(
        self,
        record: VideoRecord,
        rows: StoredRows,
        since: int,
        recheck: Callable[
            [builtins.list[tuple[VideoRecord, StoredRows]]],
            tuple[VideoRecord, Evidence | None] | None,
        ],
        thumbnails: Thumbnails | None = None,
        evidence: Evidence | None = None,
    ) -> tuple[VideoRecord, int]:
        """Add a video its check decided is an original, settling races in the transaction.

        Under ``CHANGE_LOCK`` (so no other write commits meanwhile), the originals added after
        change ``since`` (the head the check's search read) are handed to ``recheck``; when it
        returns (this video as a copy of one of them, that decision's evidence), those are
        stored instead.
        Returns (the stored record, its change number). Two concurrent checks of one new video
        serialise here, and the second sees the first.
        """
        with self.connection("add") as conn:
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHANGE_LOCK,))
                    newer = self._originals_after(conn, since, record.video_id)
                    settled = recheck(newer) if newer else None
                    final, why = settled if settled is not None else (record, evidence)
                    return final, self._add(conn, final, rows, thumbnails, why)
            except psycopg.errors.UniqueViolation:
                raise Conflict(f"video {record.video_id!r} is already in the catalog") from None

    def _originals_after(
        self, conn: psycopg.Connection, since: int, exclude: str
    ) -> builtins.list[tuple[VideoRecord, StoredRows]]:
        rows = conn.execute(
            f"SELECT {COLUMNS_V}, s.descriptors, s.views, s.times, s.audio FROM changes c "
            "JOIN videos v ON v.video_id = c.video_id JOIN stored_rows s ON s.video_id = "
            "c.video_id WHERE c.seq > %s AND c.op = 'add' AND c.original AND c.video_id <> %s "
            "ORDER BY c.seq",
            (since, exclude),
        ).fetchall()
        return [(VideoRecord.from_row(r[:12]), _rows(r[12:])) for r in rows]

    def _add(
        self,
        conn: psycopg.Connection,
        record: VideoRecord,
        rows: StoredRows | None,
        thumbnails: Thumbnails | None = None,
        evidence: Evidence | None = None,
    ) -> int:
        """Inside a transaction: the record, its rows, thumbnails and evidence, and its change
        (taking ``CHANGE_LOCK``)."""
        conn.execute(f"INSERT INTO videos ({COLUMNS}) VALUES ({_MARKS})", record.as_row())
        if rows is not None:
            conn.execute(
                "INSERT INTO stored_rows VALUES (%s, %s, %s, %s, %s)",
                (
                    record.video_id,
                    np.ascontiguousarray(rows.descriptors, np.float16).tobytes(),
                    np.ascontiguousarray(rows.views, np.int8).tobytes(),
                    np.ascontiguousarray(rows.times, np.float32).tobytes(),
                    np.ascontiguousarray(rows.audio, np.float16).tobytes(),
                ),
            )
        if thumbnails is not None and len(thumbnails.jpegs):
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO thumbnails VALUES (%s, %s, %s, %s)",
                    [
                        (record.video_id, i, float(t), jpeg)
                        for i, (t, jpeg) in enumerate(
                            zip(thumbnails.times.tolist(), thumbnails.jpegs)
                        )
                    ],
                )
        if evidence is not None:
            conn.execute(
                "INSERT INTO evidence VALUES (%s, %s)",
                (record.video_id, Jsonb(evidence.document())),
            )
            images = []
            for i, pair in enumerate(evidence.pairs):
                if pair.query_jpeg is not None:
                    images.append((record.video_id, "query", i, pair.query_jpeg, record.video_id))
                if pair.match_jpeg is not None:
                    images.append(
                        (record.video_id, "match", i, pair.match_jpeg, evidence.matched_video)
                    )
            if images:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO evidence_thumbs VALUES (%s, %s, %s, %s, %s)", images
                    )
        return log_change(conn, "add", record.video_id, original=not record.is_duplicate)

    def update_decision(self, record: VideoRecord) -> int | None:
        """Store ``record``'s decision fields (root, duplicate, matched video, score, path);
        returns the change number, None for an unknown video."""
        with self.connection("update") as conn:
            with conn.transaction():
                n = conn.execute(
                    "UPDATE videos SET root_id=%s, is_duplicate=%s, duplicate_for=%s, "
                    "matched_video=%s, score=%s, path=%s WHERE video_id=%s",
                    (
                        record.root_id,
                        record.is_duplicate,
                        record.duplicate_for,
                        record.matched_video,
                        record.score,
                        record.path,
                        record.video_id,
                    ),
                ).rowcount
                if not n:
                    return None
                return log_change(conn, "update", record.video_id)

    def delete(self, video_id: str) -> int | None:
        """Delete a video with its rows, thumbnails, evidence and its frames in other videos'
        evidence; returns the change number, None when unknown. Verdicts stay (audit log)."""
        with self.connection("delete") as conn:
            with conn.transaction():
                n = conn.execute("DELETE FROM videos WHERE video_id=%s", (video_id,)).rowcount
                if not n:
                    return None
                conn.execute("DELETE FROM evidence_thumbs WHERE matched_video=%s", (video_id,))
                return log_change(conn, "delete", video_id)

    # ---------------------------------------------------------------- measures

    def bytes_per_video(self) -> dict[str, float]:
        """Table bytes (heap + TOAST + indexes) over videos, per table and in all."""
        with self.connection("sizes") as conn:
            n = self.count() or 1
            out = {}
            for table in (
                "videos",
                "stored_rows",
                "changes",
                "thumbnails",
                "evidence",
                "evidence_thumbs",
            ):
                row = conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()
                out[table] = round(int(row[0]) / n, 1) if row else 0.0
        out["total"] = round(sum(out.values()), 1)
        return out


def log_change(conn: psycopg.Connection, op: Op, video_id: str, original: bool = False) -> int:
    """Take ``CHANGE_LOCK`` (held to commit), then draw the change's number: commit order."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHANGE_LOCK,))
    row = conn.execute(
        "INSERT INTO changes (op, video_id, original) VALUES (%s, %s, %s) RETURNING seq",
        (op, video_id, original),
    ).fetchone()
    assert row is not None
    return int(row[0])


COLUMNS = ", ".join(RECORD_FIELDS)
COLUMNS_V = ", ".join(f"v.{f}" for f in RECORD_FIELDS)
_MARKS = ", ".join(["%s"] * len(RECORD_FIELDS))


def _rows(blobs: tuple) -> StoredRows:
    desc, views, times, audio = (bytes(b) for b in blobs)
    return StoredRows(
        descriptors=np.frombuffer(desc, np.float16).reshape(-1, DIM),
        views=np.frombuffer(views, np.int8),
        times=np.frombuffer(times, np.float32),
        audio=np.frombuffer(audio, np.float16).reshape(-1, AUDIO_DIM),
    )


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
