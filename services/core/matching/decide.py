"""The decision: is the query a copy of a catalog video, and of which root original?

Inputs are plain values: the query's features and, for each candidate video that retrieval found,
its stored descriptors (``Candidate``). The visual evidence decides; audio only confirms a
borderline visual match. The same soundtrack over other visuals is never enough on its own: on a
short-video platform thousands of different clips share one trending sound.

Per candidate the best-aligned pair of views is kept (whole frame, mirrored, content region, both),
and the candidate's score is ``confidence = mean inlier similarity * min(1, inliers / min_inliers)``
(see ``vdup.matching.align``). Candidates are grouped by root original, so copies of one
original reinforce one answer. Thresholds are fields of ``DecisionConfig``; their defaults were
calibrated on the development benchmark only (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vdup.features.types import VideoFeatures
from vdup.matching.align import Alignment, align


@dataclass
class Candidate:
    """A catalog video's stored evidence. descriptors: float32 [r, 512]; views: int8 [r] (0 whole
    frame, 2 content region); row_times: float32 [r] s; audio: float32 [w, 128];
    retrieval: best frame similarity that retrieval saw (0..1)."""

    video_id: str
    root_id: str
    descriptors: np.ndarray
    views: np.ndarray
    row_times: np.ndarray
    audio: np.ndarray
    duration_s: float
    retrieval: float = 0.0


@dataclass(frozen=True)
class DecisionConfig:
    """visual_threshold: confidence at or above which the visual evidence alone decides.
    borderline_threshold: lowest confidence that matching audio can confirm.
    audio_threshold: median best-window audio similarity that counts as the same soundtrack.
    min_inliers: aligned frames needed for full confidence (fewer scale it down).
    max_candidates: candidates aligned per query (by retrieval score)."""

    visual_threshold: float = 0.84
    borderline_threshold: float = 0.55
    audio_threshold: float = 0.8
    min_inliers: int = 3
    max_candidates: int = 20
    tolerance_s: float = 1.25


@dataclass
class Match:
    video_id: str
    root_id: str
    confidence: float
    audio: float
    alignment: Alignment


@dataclass
class Decision:
    """path: 'exact' (same bytes), 'visual', 'visual_audio' or '' (not a duplicate)."""

    is_duplicate: bool
    duplicate_for: str = ""
    matched_video: str = ""
    score: float = 0.0
    path: str = ""
    query_segment_s: tuple[float, float] | None = None
    match_segment_s: tuple[float, float] | None = None
    candidates: list[Match] = field(default_factory=list)


def audio_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Median over the query's windows of the best window similarity in the other track (-1..1);
    0 when either track is missing."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return 0.0
    return float(np.median((a @ b.T).max(axis=1)))


def score_candidate(query: VideoFeatures, cand: Candidate, cfg: DecisionConfig) -> Match:
    """Align every query view against the candidate's rows; keep the best-supported view pair."""
    qdesc, qviews = query.query_views()
    n = len(query.timestamps)
    sim_all = qdesc @ cand.descriptors.T  # [q, r]
    best: tuple[float, Alignment] | None = None
    for qv in np.unique(qviews):
        q_rows = slice(int(np.argmax(qviews == qv)), int(np.argmax(qviews == qv)) + n)
        for rv in np.unique(cand.views):
            r_mask = cand.views == rv
            a = align(sim_all[q_rows][:, r_mask], query.timestamps, cand.row_times[r_mask],
                      tolerance_s=cfg.tolerance_s)
            conf = a.score * min(1.0, a.inliers / cfg.min_inliers)
            if best is None or conf > best[0]:
                best = (conf, a)
    conf, alignment = best if best is not None else (0.0, Alignment.empty())
    return Match(cand.video_id, cand.root_id, float(conf),
                 audio_similarity(query.audio, cand.audio), alignment)


def decide(query: VideoFeatures, candidates: list[Candidate], cfg: DecisionConfig) -> Decision:
    """The decision over ``candidates`` (any order; the best ``max_candidates`` by retrieval)."""
    ranked = sorted(candidates, key=lambda c: (-c.retrieval, c.video_id))[: cfg.max_candidates]
    matches = [score_candidate(query, c, cfg) for c in ranked]
    matches.sort(key=lambda m: (-m.confidence, m.video_id))
    for m in matches:
        visual = m.confidence >= cfg.visual_threshold
        confirmed = m.confidence >= cfg.borderline_threshold and m.audio >= cfg.audio_threshold
        if visual or confirmed:
            a = m.alignment
            return Decision(
                is_duplicate=True,
                duplicate_for=m.root_id,
                matched_video=m.video_id,
                score=round(m.confidence, 4),
                path="visual" if visual else "visual_audio",
                query_segment_s=a.query_span_s,
                match_segment_s=a.ref_span_s,
                candidates=matches,
            )
    top = matches[0].confidence if matches else 0.0
    return Decision(is_duplicate=False, score=round(top, 4), candidates=matches)
