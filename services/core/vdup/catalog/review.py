"""What moderators read and write: evidence kept with each decision, verdicts, the negative list.

Why it lives with the catalog: a verdict changes records (the video and the copies that named
it), and that change, its audit entry and the negative-list entry must be one transaction with
the records themselves. The embedded catalog keeps all of it in its SQLite file
(``vdup.catalog.store``), the platform mode in its PostgreSQL truth (``vdup.indexer.review``).
Shards that own their data have none: the API answers 501 on the review routes there
(docs/architecture.md, "Review").

Verdict semantics (``apply_verdict``):

- ``not_duplicate``: the video becomes an original (its own root). The copies that matched it,
  directly or through each other, within its old group, move with it. The pair (video, old
  root) joins the negative list, so later copies of this content are not matched to that root.
- ``duplicate_of`` X: the video, and every copy in its group that descends from it, moves
  under X's root. Pointing a video at its own group's member that descends from it is refused
  (409): roots stay flat, a group never contains its own root twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from vdup.catalog.types import VideoRecord
from vdup.errors import Conflict, NotFound
from vdup.features.types import Thumbnails

VerdictKind = Literal["not_duplicate", "duplicate_of"]
Side = Literal["query", "match"]


@dataclass(frozen=True)
class Verdict:
    """A moderator's ruling on ``video_id``; ``of`` is required for ``duplicate_of``;
    who: the key's name (never the key); note: free text, at most 2 000 characters."""

    video_id: str
    verdict: VerdictKind
    of: str = ""
    note: str = ""
    who: str = "anonymous"


@dataclass(frozen=True)
class AuditEntry:
    """One verdict as the audit log keeps it: at (Unix s), the records before and after, and
    every other video the verdict re-pointed (ids)."""

    seq: int
    at: float
    who: str
    video_id: str
    verdict: VerdictKind
    of: str
    note: str
    before: dict
    after: dict
    changed: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "seq": self.seq,
            "at": self.at,
            "who": self.who,
            "video_id": self.video_id,
            "verdict": self.verdict,
            "of": self.of,
            "note": self.note,
            "before": self.before,
            "after": self.after,
            "changed": list(self.changed),
        }


@dataclass(frozen=True)
class Outcome:
    """What a verdict did: the record after it, the other videos it re-pointed, its entry."""

    record: VideoRecord
    changed: tuple[str, ...]
    entry: AuditEntry


@dataclass(frozen=True)
class StoredEvidence:
    """Evidence as stored: the JSON document of ``Evidence.document()``, which pairs still have
    their thumbnails (query, match per pair; a match side is dropped when that video is
    deleted), and the verdicts on this video, oldest first."""

    video_id: str
    document: dict
    has_query: tuple[bool, ...]
    has_match: tuple[bool, ...]
    verdicts: tuple[AuditEntry, ...] = ()


@dataclass(frozen=True)
class QueueQuery:
    """Filters of the review queue: path '' = any; scores inclusive; status 'open' = duplicates
    without a verdict, 'all' = every duplicate and every video with a verdict; sort 'newest' (then lowest score) or 'score' (lowest first, then newest)."""

    limit: int = 50
    path: str = ""
    min_score: float = 0.0
    max_score: float = 1.0
    status: Literal["open", "all"] = "open"
    sort: Literal["newest", "score"] = "newest"


@dataclass(frozen=True)
class QueueItem:
    record: VideoRecord
    query_segment_s: tuple[float, float] | None
    match_segment_s: tuple[float, float] | None
    verdict: AuditEntry | None = None


#: The columns of an audit entry, in the order ``audit_entry`` reads them.
AUDIT_COLUMNS = "seq, video_id, at, who, verdict, of, note, before, after, changed"


def queue_sql(query: QueueQuery, mark: str) -> tuple[str, list[object]]:
    """The ``WHERE ... ORDER BY ... LIMIT`` of the review queue over ``videos v`` (both stores
    run it), with its arguments; ``mark``: the driver's placeholder ('?' or '%s')."""
    ruled = "EXISTS (SELECT 1 FROM verdicts d WHERE d.video_id = v.video_id)"
    where = [f"v.score >= {mark}", f"v.score <= {mark}"]
    args: list[object] = [query.min_score, query.max_score]
    if query.path:
        where.append(f"v.path = {mark}")
        args.append(query.path)
    if query.status == "open":  # duplicates nobody has ruled on
        where += ["v.is_duplicate = TRUE", f"NOT {ruled}"]
    else:  # and the videos ruled on, whatever the ruling made them
        where.append(f"(v.is_duplicate = TRUE OR {ruled})")
    order = (
        "v.created_at DESC, v.score ASC, v.video_id"
        if query.sort == "newest"
        else "v.score ASC, v.created_at DESC, v.video_id"
    )
    return f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {mark}", [*args, query.limit]


def queue_item(record: VideoRecord, doc: dict | None, last: AuditEntry | None) -> QueueItem:
    """A queue row: the record, the segments of its evidence document, its latest verdict."""
    doc = doc or {}
    return QueueItem(
        record, _segment(doc.get("query_segment_s")), _segment(doc.get("match_segment_s")), last
    )


def stored_evidence(
    video_id: str, doc: dict, present: set[tuple[str, int]], verdicts: list[AuditEntry]
) -> StoredEvidence:
    """Evidence as read back: ``present`` holds the (side, pair index) of the kept thumbnails;
    ``verdicts`` newest first, as ``audit`` gives them."""
    n = len(doc["pairs"])
    return StoredEvidence(
        video_id,
        doc,
        tuple(("query", i) in present for i in range(n)),
        tuple(("match", i) in present for i in range(n)),
        tuple(verdicts[::-1]),
    )


def audit_entry(row: Sequence) -> AuditEntry:
    """An entry from a row in ``AUDIT_COLUMNS`` order; the JSON columns as text (SQLite) or
    already decoded (PostgreSQL jsonb)."""

    def js(value: object) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    return AuditEntry(
        seq=int(row[0]),
        video_id=row[1],
        at=float(row[2]),
        who=row[3],
        verdict=row[4],
        of=row[5],
        note=row[6],
        before=js(row[7]),
        after=js(row[8]),
        changed=tuple(js(row[9])),
    )


def _segment(value: list | None) -> tuple[float, float] | None:
    return (float(value[0]), float(value[1])) if value else None


class ReviewStore(Protocol):
    """The moderators' side of a catalog (implemented by ``LocalCatalog``)."""

    def thumbnails(self, video_id: str) -> Thumbnails: ...

    def evidence(self, video_id: str) -> StoredEvidence | None: ...

    def evidence_image(self, video_id: str, side: Side, index: int) -> bytes | None: ...

    def review_queue(self, query: QueueQuery) -> list[QueueItem]: ...

    def apply_verdict(self, verdict: Verdict) -> Outcome:
        """Apply ``verdict`` durably, in one transaction. Raises NotFound for an unknown video
        or ``of``, Conflict for a ruling that cannot hold (see the module docstring)."""
        ...

    def audit(self, limit: int = 100, video_id: str = "") -> list[AuditEntry]: ...

    def negatives(self, video_ids: list[str]) -> dict[str, frozenset[str]]:
        """For each of ``video_ids`` on the negative list, the roots it is not a copy of."""
        ...


@dataclass(frozen=True)
class VerdictPlan:
    """What a verdict changes: the ruled record after it; the other videos re-pointed to
    ``root`` (their root and duplicate_for); the (video, root) pair the negative list gains,
    and the one it loses, if any."""

    after: VideoRecord
    root: str
    changed: tuple[str, ...]
    negative: tuple[str, str] | None
    cleared: tuple[str, str] | None


def plan_verdict(
    verdict: Verdict,
    before: VideoRecord,
    target: VideoRecord | None,
    descendants: set[str],
) -> VerdictPlan:
    """The changes ``verdict`` makes (pure; each store applies them in one transaction).

    before: the ruled video's record; target: the record of ``verdict.of`` (duplicate_of; None
    when unknown); descendants: the ruled video and the videos of its group matched to it,
    directly or through each other. Raises NotFound (unknown ``of``) and Conflict (see the
    module docstring).
    """
    if verdict.verdict == "not_duplicate":
        root = before.video_id
        after = _moved(before, root, is_duplicate=False, path="")
    else:
        if target is None:
            raise NotFound(f"no video {verdict.of!r} in the catalog")
        if verdict.of == before.video_id or target.root_id == before.video_id:
            raise Conflict(
                f"{verdict.of!r} belongs to {before.video_id!r}'s own group; a video cannot be "
                "a copy of its own copy"
            )
        if verdict.of in descendants:
            raise Conflict(
                f"{verdict.of!r} was matched through {before.video_id!r}; rule on it first"
            )
        root = target.root_id
        after = _moved(before, root, is_duplicate=True, path="verdict", matched=verdict.of)
    moves = root != before.root_id  # else the group keeps its root: nothing else changes
    changed = tuple(sorted(v for v in descendants if v != before.video_id)) if moves else ()
    ruled_apart = verdict.verdict == "not_duplicate" and before.root_id != before.video_id
    return VerdictPlan(
        after,
        root,
        changed,
        (before.video_id, before.root_id) if ruled_apart else None,
        None if ruled_apart else (before.video_id, root),
    )


def _moved(
    record: VideoRecord, root: str, is_duplicate: bool, path: str, matched: str | None = None
) -> VideoRecord:
    return replace(
        record,
        root_id=root,
        is_duplicate=is_duplicate,
        duplicate_for=root if is_duplicate else "",
        path=path,
        matched_video=record.matched_video if matched is None else matched,
    )


#: Columns of ``labels``: the Yappy manifest's, which ``vdup calibrate`` and ``vdup eval`` read.
LABEL_COLUMNS = ("created", "uuid", "link", "is_duplicate", "duplicate_for", "kind")


def labels(entries: list[AuditEntry], record_of: Callable[[str], VideoRecord | None]) -> list[dict]:
    """The verdicts as labelled manifest rows, for refitting the decision on moderators' work.

    entries: audit entries (any order; the newest per video rules); record_of: the catalog's
    current record of an id. Rows: each ruled video with its label after the verdict (kind
    'verdict:<verdict>'), and each root it was or is under (kind 'verdict:root', the root's own
    current label), so a replay in ``created`` order meets the originals first. link is the
    record's ``source`` (the link or file name it was checked from). Videos deleted since are
    left out.
    """
    latest: dict[str, AuditEntry] = {}
    for e in sorted(entries, key=lambda e: e.seq):
        latest[e.video_id] = e
    rows: dict[str, dict] = {}
    roots: set[str] = set()
    for vid, e in latest.items():
        rec = record_of(vid)
        if rec is None:
            continue
        rows[vid] = _label(rec, f"verdict:{e.verdict}")
        roots.update(r for r in (e.before.get("root_id", ""), rec.root_id) if r and r != vid)
    for root in sorted(roots - rows.keys()):
        rec = record_of(root)
        if rec is not None:
            rows[root] = _label(rec, "verdict:root")
    return sorted(rows.values(), key=lambda r: (r["created"], r["uuid"]))


def _label(rec: VideoRecord, kind: str) -> dict:
    created = datetime.fromtimestamp(rec.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return {
        "created": created,
        "uuid": rec.video_id,
        "link": rec.source,
        "is_duplicate": str(rec.is_duplicate),
        "duplicate_for": rec.duplicate_for,
        "kind": kind,
    }
