"""The review store of the platform mode, in the PostgreSQL truth (``vdup.catalog.review``).

The same semantics as the embedded catalog's (``vdup.catalog.store``), from the same pure
``plan_verdict``: evidence and thumbnails are written in the add's own transaction
(``Truth.add``); a verdict re-points the records, writes its audit entry and updates the
negative list in one transaction, and logs an ``update`` change for every record it moved, so
the shard replicas (whose candidates carry the roots the decision names) follow it.
"""

from __future__ import annotations

import builtins
import time

import numpy as np
from psycopg.types.json import Jsonb

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
from vdup.catalog.types import VideoRecord
from vdup.errors import NotFound
from vdup.features.types import Thumbnails
from vdup.indexer.truth import COLUMNS, COLUMNS_V, Truth, log_change


class TruthReview:
    """``ReviewStore`` over ``truth``."""

    def __init__(self, truth: Truth) -> None:
        self.truth = truth

    def thumbnails(self, video_id: str) -> Thumbnails:
        with self.truth.connection("thumbnails") as conn:
            rows = conn.execute(
                "SELECT t, jpeg FROM thumbnails WHERE video_id=%s ORDER BY i", (video_id,)
            ).fetchall()
        if not rows:
            return Thumbnails.empty()
        return Thumbnails(
            np.array([r[0] for r in rows], np.float32), tuple(bytes(r[1]) for r in rows)
        )

    def evidence(self, video_id: str) -> StoredEvidence | None:
        with self.truth.connection("evidence") as conn:
            row = conn.execute("SELECT doc FROM evidence WHERE video_id=%s", (video_id,)).fetchone()
            if row is None:
                return None
            q = "SELECT side, i FROM evidence_thumbs WHERE video_id=%s"
            present = {(r[0], int(r[1])) for r in conn.execute(q, (video_id,))}
        return stored_evidence(video_id, row[0], present, self.audit(1000, video_id))

    def evidence_image(self, video_id: str, side: Side, index: int) -> bytes | None:
        with self.truth.connection("evidence_image") as conn:
            row = conn.execute(
                "SELECT jpeg FROM evidence_thumbs WHERE video_id=%s AND side=%s AND i=%s",
                (video_id, side, index),
            ).fetchone()
        return bytes(row[0]) if row else None

    def review_queue(self, query: QueueQuery) -> builtins.list[QueueItem]:
        clause, args = queue_sql(query, "%s")
        with self.truth.connection("review_queue") as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS_V}, e.doc FROM videos v LEFT JOIN evidence e "
                f"ON e.video_id = v.video_id {clause}",
                args,
            ).fetchall()
        return [
            queue_item(
                VideoRecord.from_row(row[:12]), row[12], next(iter(self.audit(1, row[0])), None)
            )
            for row in rows
        ]

    def audit(self, limit: int = 100, video_id: str = "") -> builtins.list[AuditEntry]:
        q = f"SELECT {AUDIT_COLUMNS} FROM verdicts "
        with self.truth.connection("audit") as conn:
            if video_id:
                rows = conn.execute(
                    q + "WHERE video_id=%s ORDER BY seq DESC LIMIT %s", (video_id, limit)
                ).fetchall()
            else:
                rows = conn.execute(q + "ORDER BY seq DESC LIMIT %s", (limit,)).fetchall()
        return [audit_entry(r) for r in rows]

    def negatives(self, video_ids: builtins.list[str]) -> dict[str, frozenset[str]]:
        if not video_ids:
            return {}
        out: dict[str, set[str]] = {}
        with self.truth.connection("negatives") as conn:
            for vid, not_of in conn.execute(
                "SELECT video_id, not_of FROM negatives WHERE video_id = ANY(%s)",
                (sorted(set(video_ids)),),
            ):
                out.setdefault(vid, set()).add(not_of)
        return {k: frozenset(v) for k, v in out.items()}

    def apply_verdict(self, verdict: Verdict) -> Outcome:
        with self.truth.connection("verdict") as conn:
            with conn.transaction():
                before = _locked(conn, verdict.video_id)
                if before is None:
                    raise NotFound(f"no video {verdict.video_id!r} in the catalog")
                target = _locked(conn, verdict.of) if verdict.verdict == "duplicate_of" else None
                descendants = {
                    r[0]
                    for r in conn.execute(
                        "WITH RECURSIVE d(video_id) AS (SELECT %s::text UNION SELECT v.video_id "
                        "FROM videos v JOIN d ON v.matched_video = d.video_id "
                        "WHERE v.root_id = %s) SELECT video_id FROM d",
                        (before.video_id, before.root_id),
                    )
                }
                plan = plan_verdict(verdict, before, target, descendants)
                a = plan.after
                conn.execute(
                    "UPDATE videos SET root_id=%s, is_duplicate=%s, duplicate_for=%s, "
                    "matched_video=%s, score=%s, path=%s WHERE video_id=%s",
                    (
                        a.root_id,
                        a.is_duplicate,
                        a.duplicate_for,
                        a.matched_video,
                        a.score,
                        a.path,
                        a.video_id,
                    ),
                )
                if plan.changed:
                    conn.execute(
                        "UPDATE videos SET root_id=%s, duplicate_for=%s WHERE video_id = ANY(%s)",
                        (plan.root, plan.root, list(plan.changed)),
                    )
                row = conn.execute(
                    "INSERT INTO verdicts (video_id, at, who, verdict, of, note, before, after, "
                    "changed) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING seq",
                    (
                        verdict.video_id,
                        time.time(),
                        verdict.who,
                        verdict.verdict,
                        verdict.of,
                        verdict.note,
                        Jsonb(before.to_dict()),
                        Jsonb(a.to_dict()),
                        Jsonb(list(plan.changed)),
                    ),
                ).fetchone()
                assert row is not None
                if plan.negative is not None:
                    conn.execute(
                        "INSERT INTO negatives VALUES (%s, %s, %s) ON CONFLICT (video_id, not_of) "
                        "DO UPDATE SET verdict_seq = EXCLUDED.verdict_seq",
                        (*plan.negative, int(row[0])),
                    )
                if plan.cleared is not None:
                    conn.execute(
                        "DELETE FROM negatives WHERE video_id=%s AND not_of=%s", plan.cleared
                    )
                for vid in (verdict.video_id, *plan.changed):  # the replicas follow
                    log_change(conn, "update", vid)
        entry = self.audit(1, verdict.video_id)[0]
        return Outcome(a, plan.changed, entry)


def _locked(conn, video_id: str) -> VideoRecord | None:
    """The record, locked for this transaction (two verdicts on one group serialise)."""
    row = conn.execute(
        f"SELECT {COLUMNS} FROM videos WHERE video_id=%s FOR UPDATE", (video_id,)
    ).fetchone()
    return VideoRecord.from_row(row) if row else None
