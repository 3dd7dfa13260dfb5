"""``Catalog`` over the PostgreSQL truth and FAISS shard replicas (platform mode).

Writes go to the truth, one transaction each (``vdup.indexer.truth``); a video is acknowledged
once that commit returns. Reads of records (get, by sha256, pages) go to the truth too. Searches
go to the replicas: for each shard, one ready replica answers; on an error, a timeout or a
replica that is behind, the next replica of that shard is asked, within the check's deadline.
Only when no replica of a shard answers does the search fail closed (``Unavailable``, 503).

Read your writes: a search first reads the truth's head (the last committed change number) and
sends it as ``X-Vdup-Min-Seq``; a replica that has not applied that far waits a little, then
answers 409, and the next replica is asked. So a check never misses a video acknowledged before
it started.

Two copies of one new video checked at the same moment on two API processes: both search, both
find nothing, both decide "original". The add of an original therefore runs a re-check inside
its transaction, under the truth's change lock (``Truth.add_original``): it decides again over
the originals committed since its own search's head. The lock serialises those transactions, so
the second one always sees the first and stores itself as its copy; no pending state, no
protocol between replicas.

It is also the platform's review store (``vdup.indexer.review``): evidence, verdicts and the
negative list live in the truth beside the records they correct.
"""

from __future__ import annotations

import builtins
import itertools
import logging
import threading
import time

import numpy as np

from vdup.catalog.review import (
    AuditEntry,
    Outcome,
    QueueItem,
    QueueQuery,
    Side,
    StoredEvidence,
    Verdict,
)
from vdup.catalog.types import StoredRows, VideoRecord
from vdup.errors import Unavailable
from vdup.features.types import QUERY_MAX_SIM, Thumbnails, VideoFeatures
from vdup.indexer import wire
from vdup.indexer.client import ShardedCatalog, merge_candidates
from vdup.indexer.discovery import KubernetesReplicas, ReplicaDirectory, uses_kubernetes
from vdup.indexer.races import as_copy
from vdup.indexer.review import TruthReview
from vdup.indexer.routes import APPLIED_HEADER, MIN_SEQ_HEADER
from vdup.indexer.truth import Truth
from vdup.matching.decide import Candidate, DecisionConfig, decide
from vdup.matching.explain import Evidence, explain

log = logging.getLogger(__name__)

#: Seconds a replica that failed is tried last (others of its shard first).
PENALTY_S = 5.0


class StaticReplicas:
    """``VDUP_INDEXER_URLS`` for replicas: one entry per shard, in shard order, each the
    shard's replica URLs joined by '|' (``http://s0a:8090|http://s0b:8090,http://s1a:8090``)."""

    def __init__(self, entries: list[str]) -> None:
        groups = [[u.strip().rstrip("/") for u in e.split("|") if u.strip()] for e in entries]
        if not groups or any(not g for g in groups):
            raise ValueError("every shard needs at least one replica URL")
        self.groups = groups

    def replicas(self) -> list[list[str]]:
        return self.groups

    def urls(self) -> list[str]:
        """The first replica of each shard (what ``ShardedCatalog`` helpers iterate)."""
        return [g[0] for g in self.groups]


class ReplicatedCatalog(ShardedCatalog):
    """See the module docstring. truth: the PostgreSQL truth; replicas: where each shard's
    replicas are; timeout_s: deadline of one call to one replica."""

    def __init__(
        self,
        truth: Truth,
        replicas: ReplicaDirectory,
        timeout_s: float = 10.0,
        decision: DecisionConfig | None = None,
        search_k: int = 32,
        workers: int = 16,
        query_max_sim: float = QUERY_MAX_SIM,
    ) -> None:
        super().__init__(
            replicas,
            timeout_s=timeout_s,
            decision=decision,
            search_k=search_k,
            settle_races=False,
            workers=workers,
            query_max_sim=query_max_sim,
        )
        self.truth = truth
        self.review = TruthReview(truth)
        self.replicas = replicas
        self._searched = threading.local()  # the head the last search in this thread used
        self._turn = itertools.count()
        self._failed_at: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings) -> ReplicatedCatalog:
        """Replicas from EndpointSlices (``VDUP_INDEXER_DISCOVERY=kubernetes``: one headless
        Service per replica index, ``KubernetesReplicas``) or from ``VDUP_INDEXER_URLS``."""
        replicas: ReplicaDirectory = (
            KubernetesReplicas.from_settings(settings)
            if uses_kubernetes(settings)
            else StaticReplicas(settings.indexer_urls)
        )
        return cls(
            Truth(settings.database_url),
            replicas,
            timeout_s=settings.indexer_timeout_s,
            decision=settings.decision(),
            search_k=settings.search_k,
            query_max_sim=settings.query_max_sim,
        )

    # ---------------------------------------------------------------- reads

    def get(self, video_id: str) -> VideoRecord | None:
        return self.truth.get(video_id)

    def get_state(self, video_id: str) -> tuple[VideoRecord, bool] | None:
        record = self.truth.get(video_id)
        return (record, False) if record is not None else None

    def find_sha256(self, sha256: str) -> VideoRecord | None:
        return self.truth.find_sha256(sha256)

    def list(self, limit: int = 100, after: str = "") -> builtins.list[VideoRecord]:
        return self.truth.list(limit, after)

    def search_vectors(
        self, query: np.ndarray, k: int, max_candidates: int
    ) -> builtins.list[Candidate]:
        """query: float32 [q, 512]; one ready replica of each shard, merged. The truth's head is
        read first and every replica must have applied it (read your writes)."""
        head = self.truth.head()
        self._searched.head = head
        body = wire.encode_search(query, k, max_candidates)
        groups = self.replicas.replicas()

        def one(i: int, _url: str) -> builtins.list[Candidate]:
            return self._search_shard(i, groups[i], body, head)

        return merge_candidates(self._each(one), max_candidates)

    def _search_shard(
        self, i: int, urls: builtins.list[str], body: bytes, head: int
    ) -> builtins.list[Candidate]:
        errors = []
        for url in self._order(urls):
            try:
                resp = self._call(
                    i,
                    url,
                    "search",
                    "POST",
                    "/v1/search",
                    content=body,
                    headers={"Content-Type": wire.MEDIA_TYPE, MIN_SEQ_HEADER: str(head)},
                )
            except Unavailable as exc:
                self._failed_at[url] = time.monotonic()
                errors.append(str(exc))
                continue
            if resp.status_code == 409:
                errors.append(f"{url} is behind (applied {resp.headers.get(APPLIED_HEADER)})")
                continue
            if resp.status_code != 200:
                errors.append(f"{url}: HTTP {resp.status_code}")
                continue
            try:
                return wire.decode_candidates(resp.content)
            except wire.WireError as exc:
                errors.append(f"{url}: bad answer: {exc}")
        raise Unavailable(
            f"no replica of index shard {i} could answer: " + "; ".join(errors or ["none listed"])
        )

    def _order(self, urls: builtins.list[str]) -> builtins.list[str]:
        """The shard's replicas, rotated per call (spreads the load), recently failed ones last."""
        start = next(self._turn) % len(urls)
        rotated = urls[start:] + urls[:start]
        now = time.monotonic()
        return sorted(rotated, key=lambda u: now - self._failed_at.get(u, -1e9) < PENALTY_S)

    def stats(self) -> dict:
        return {"videos": self.truth.count(), "vectors": 0, "index": "replicas", "shards": []}

    # ---------------------------------------------------------------- writes

    def add(
        self,
        record: VideoRecord,
        features: VideoFeatures | None,
        *,
        evidence: Evidence | None = None,
    ) -> VideoRecord:
        """Durably add ``record`` to the truth; returns what is stored (``record`` itself, or
        for an original that a concurrent check of the same content committed first, the
        copy of it this one became). Raises Unavailable (nothing acknowledged) and Conflict
        (the id is known)."""
        rows = StoredRows.from_features(features) if features is not None else None
        thumbs = features.thumbnails if features is not None else None
        if record.is_duplicate or rows is None or features is None:
            self.truth.add(record, rows, thumbs, evidence)
            return record
        since = getattr(self._searched, "head", None)
        if since is None:  # an add without a search in this thread: look at everything
            since = 0

        def recheck(
            newer: builtins.list[tuple[VideoRecord, StoredRows]],
        ) -> tuple[VideoRecord, Evidence | None] | None:
            return self._as_copy(record, features, newer, evidence is not None)

        stored, _ = self.truth.add_original(record, rows, since, recheck, thumbs, evidence)
        return stored

    def _as_copy(
        self,
        record: VideoRecord,
        features: VideoFeatures,
        newer: builtins.list[tuple[VideoRecord, StoredRows]],
        explained: bool,
    ) -> tuple[VideoRecord, Evidence | None] | None:
        """``record`` as a copy of one of the ``newer`` originals, with that decision's
        evidence, if the decision says it is one; None to stay an original."""
        d = decide(features, _candidates(features, newer, self.query_max_sim), self.decision)
        if not d.is_duplicate:
            return None
        log.info(
            "race: %s is a copy of %s, committed while it was checked",
            record.video_id,
            d.matched_video,
        )
        why = explain(d, features, self.review.thumbnails(d.matched_video)) if explained else None
        return as_copy(record, d.duplicate_for, d.matched_video, d.score, d.path), why

    def delete(self, video_id: str) -> bool:
        return self.truth.delete(video_id) is not None

    # ---------------------------------------------------------------- review (ReviewStore)

    def thumbnails(self, video_id: str) -> Thumbnails:
        return self.review.thumbnails(video_id)

    def evidence(self, video_id: str) -> StoredEvidence | None:
        return self.review.evidence(video_id)

    def evidence_image(self, video_id: str, side: Side, index: int) -> bytes | None:
        return self.review.evidence_image(video_id, side, index)

    def review_queue(self, query: QueueQuery) -> builtins.list[QueueItem]:
        return self.review.review_queue(query)

    def apply_verdict(self, verdict: Verdict) -> Outcome:
        return self.review.apply_verdict(verdict)

    def audit(self, limit: int = 100, video_id: str = "") -> builtins.list[AuditEntry]:
        return self.review.audit(limit, video_id)

    def negatives(self, video_ids: builtins.list[str]) -> dict[str, frozenset[str]]:
        return self.review.negatives(video_ids)

    def close(self) -> None:
        super().close()
        self.truth.close()


def _candidates(
    features: VideoFeatures,
    newer: builtins.list[tuple[VideoRecord, StoredRows]],
    query_max_sim: float,
) -> builtins.list[Candidate]:
    """Candidates from stored rows, with the retrieval score an exact search would give."""
    query = features.search_rows(query_max_sim)
    out = []
    for rec, rows in newer:
        desc = np.asarray(rows.descriptors, np.float32)
        out.append(
            Candidate(
                video_id=rec.video_id,
                root_id=rec.root_id,
                descriptors=desc,
                views=np.asarray(rows.views, np.int8),
                row_times=np.asarray(rows.times, np.float32),
                audio=np.asarray(rows.audio, np.float32),
                duration_s=rec.duration_s,
                retrieval=float(np.max(query @ desc.T)) if len(desc) else 0.0,
            )
        )
    return out
