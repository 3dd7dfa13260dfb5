"""The check: one video's bytes in, a decision out, and the video added to the catalog.

This is the one code path behind the API, ``vdup check``, ``vdup ingest`` and ``vdup eval``.

Order of work: identical bytes are recognised by SHA-256 before any model runs; otherwise the
features are extracted (the heavy, parallel part), then search, decision and add run under one
lock, so two copies of one new video checked at the same moment cannot both become originals in
this process. (Across API replicas the indexer resolves that race; see docs/architecture.md.)

With a review store (the embedded catalog), each decision is kept with its evidence
(``vdup.matching.explain``), and the negative list that moderators' verdicts build takes part
in the decision: a copy of content ruled "not a duplicate of X" is not matched to X again.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from vdup.catalog.review import ReviewStore
from vdup.catalog.types import Catalog, VideoRecord
from vdup.features.extractor import Extractor
from vdup.features.preprocess import sha256_of
from vdup.features.types import Thumbnails, VideoFeatures
from vdup.matching.decide import Candidate, Decision, DecisionConfig, decide
from vdup.matching.explain import Evidence, explain
from vdup.tracing import tracer


@dataclass
class CheckResult:
    video_id: str
    decision: Decision
    record: VideoRecord
    already_known: bool = False
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_response(self) -> dict:
        d = self.decision
        out = {
            "is_duplicate": self.record.is_duplicate,
            "duplicate_for": self.record.duplicate_for,
            "uuid": self.video_id,
            "score": round(float(self.record.score), 4),
            "path": self.record.path,
            "matched_video": self.record.matched_video,
            "already_known": self.already_known,
        }
        if d.query_segment_s is not None and d.match_segment_s is not None:
            out["segments"] = {
                "query_s": [round(v, 2) for v in d.query_segment_s],
                "match_s": [round(v, 2) for v in d.match_segment_s],
            }
        return out


class DuplicateChecker:
    def __init__(
        self,
        extractor: Extractor,
        catalog: Catalog,
        config: DecisionConfig,
        search_k: int = 32,
        review: ReviewStore | None = None,
    ) -> None:
        """review: where evidence and verdicts live (the embedded catalog itself); None: no
        evidence is kept and no negative list applies (the sharded catalog today)."""
        self.extractor = extractor
        self.catalog = catalog
        self.review = review
        self.config = config
        self.search_k = search_k
        self._lock = threading.Lock()

    def check(self, data: bytes, video_id: str | None = None, source: str = "") -> CheckResult:
        """Decide whether ``data`` copies a catalog video, then add it (durably).

        Raises BadMedia/MediaTooLarge for bad input, Unavailable when a dependency is down and
        StorageError when the add cannot be made durable; in each case nothing is added.
        """
        video_id = video_id or str(uuid.uuid4())
        known = self.catalog.get(video_id)
        if known is not None:
            return _known(video_id, known)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        sha = sha256_of(data)
        exact = self.catalog.find_sha256(sha)
        if exact is not None:
            decision = Decision(True, exact.root_id, exact.video_id, 1.0, "exact")
            record = self._record(video_id, sha, decision, None, source)
            with self._lock:
                again = self.catalog.get(video_id)
                if again is not None:
                    return _known(video_id, again)
                record = self.catalog.add(record, None, evidence=self._explain(decision, None))
            timings["total"] = time.perf_counter() - t0
            return CheckResult(video_id, decision, record, timings_s=timings)

        t = time.perf_counter()
        with tracer.start_as_current_span("extract"):
            features = self.extractor.extract(data)
        timings["extract"] = time.perf_counter() - t
        with self._lock:
            again = self.catalog.get(video_id)
            if again is not None:
                return _known(video_id, again)
            t = time.perf_counter()
            with tracer.start_as_current_span("search") as span:
                candidates = self.catalog.search(
                    features, self.search_k, self.config.max_candidates
                )
                span.set_attribute("vdup.candidates", len(candidates))
            timings["search"] = time.perf_counter() - t
            t = time.perf_counter()
            with tracer.start_as_current_span("align_decide") as span:
                decision = decide(features, candidates, self.config, self._negatives(candidates))
                span.set_attribute("vdup.is_duplicate", decision.is_duplicate)
            timings["decide"] = time.perf_counter() - t
            record = self._record(video_id, sha, decision, features, source)
            t = time.perf_counter()
            with tracer.start_as_current_span("store"):
                evidence = self._explain(decision, features)
                record = self.catalog.add(record, features, evidence=evidence)
            timings["store"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        return CheckResult(video_id, decision, record, timings_s=timings)

    def _negatives(self, candidates: list[Candidate]) -> dict[str, frozenset[str]]:
        if self.review is None or not candidates:
            return {}
        ids = {c.video_id for c in candidates} | {c.root_id for c in candidates}
        return self.review.negatives(sorted(ids))

    def _explain(self, decision: Decision, features: VideoFeatures | None) -> Evidence | None:
        """The decision's evidence, with the matched video's stored thumbnails; None without a
        review store."""
        if self.review is None:
            return None
        shown = decision.matched_video
        if not shown and decision.candidates:
            shown = decision.candidates[0].video_id  # a near miss: show what it was closest to
        matched = self.review.thumbnails(shown) if shown else Thumbnails.empty()
        return explain(decision, features, matched)

    @staticmethod
    def _record(video_id, sha, decision: Decision, features, source) -> VideoRecord:
        return VideoRecord(
            video_id=video_id,
            root_id=decision.duplicate_for if decision.is_duplicate else video_id,
            sha256=sha,
            is_duplicate=decision.is_duplicate,
            duplicate_for=decision.duplicate_for if decision.is_duplicate else "",
            matched_video=decision.matched_video,
            score=float(decision.score),
            path=decision.path,
            duration_s=float(features.duration_s) if features is not None else 0.0,
            frames=len(features.timestamps) if features is not None else 0,
            created_at=time.time(),
            source=source[:500],
        )


def _known(video_id: str, record: VideoRecord) -> CheckResult:
    decision = Decision(
        record.is_duplicate, record.duplicate_for, record.matched_video, record.score, record.path
    )
    return CheckResult(video_id, decision, record, already_known=True)
