"""Why a decision was made, in a form a moderator can check in seconds.

A decision names a video and an alignment line (``t_match = speed * t_query + offset``). This
module turns it into evidence a person reads: the two matched segments, the decision model's
features, and a handful of frame pairs along the line, each with the thumbnail of the query
frame and the matched video's thumbnail nearest in time. Thumbnails are the ones both videos
kept when they were checked (``VideoFeatures.thumbnails``), so nothing is decoded twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vdup.features.types import Thumbnails, VideoFeatures
from vdup.matching.decide import Decision, Match
from vdup.matching.evidence import FEATURE_NAMES

#: Frame pairs shown per decision.
MAX_PAIRS = 6


@dataclass(frozen=True)
class FramePair:
    """One aligned moment: query_t, match_t in s; the JPEGs (None when a video kept none)."""

    query_t: float
    match_t: float
    query_jpeg: bytes | None
    match_jpeg: bytes | None


@dataclass(frozen=True)
class Evidence:
    """What decided a video: the matched video (the best candidate when it is not a duplicate;
    '' when there was none), its root, the score and path, the segments (s), the decision
    model's features by name, and up to ``MAX_PAIRS`` aligned frame pairs."""

    matched_video: str
    duplicate_for: str
    is_duplicate: bool
    score: float
    path: str
    query_segment_s: tuple[float, float] | None
    match_segment_s: tuple[float, float] | None
    features: dict[str, float] = field(default_factory=dict)
    pairs: tuple[FramePair, ...] = ()

    def document(self) -> dict:
        """The JSON-ready part (everything but the JPEG bytes)."""
        return {
            "matched_video": self.matched_video,
            "duplicate_for": self.duplicate_for,
            "is_duplicate": self.is_duplicate,
            "score": self.score,
            "path": self.path,
            "query_segment_s": list(self.query_segment_s) if self.query_segment_s else None,
            "match_segment_s": list(self.match_segment_s) if self.match_segment_s else None,
            "features": self.features,
            "pairs": [{"query_t": p.query_t, "match_t": p.match_t} for p in self.pairs],
        }


def explain(
    decision: Decision,
    query: VideoFeatures | None,
    matched: Thumbnails,
    max_pairs: int = MAX_PAIRS,
) -> Evidence:
    """Evidence for ``decision``.

    query: the checked video's features (None for an exact byte match: then both sides are the
    matched video's own thumbnails, since the bytes are the same); matched: the thumbnails of
    ``decision.matched_video`` (or of the best candidate when not a duplicate).
    Pairs: query thumbnails inside the query segment, spread evenly, each mapped through the
    alignment line to the matched video's nearest thumbnail.
    """
    match = _chosen(decision)
    if query is None:
        pairs = tuple(
            FramePair(float(t), float(t), jpeg, jpeg)
            for t, jpeg in _spread(matched.times, matched.jpegs, max_pairs)
        )
        return Evidence(
            decision.matched_video,
            decision.duplicate_for,
            decision.is_duplicate,
            float(decision.score),
            decision.path,
            None,
            None,
            {},
            pairs,
        )
    features: dict[str, float] = {}
    pairs_out: tuple[FramePair, ...] = ()
    q_seg = decision.query_segment_s
    m_seg = decision.match_segment_s
    if match is not None and match.alignment.inliers > 0:
        a = match.alignment
        q_seg = q_seg or a.query_span_s
        m_seg = m_seg or a.ref_span_s
        if match.evidence is not None:
            features = {n: round(float(v), 4) for n, v in zip(FEATURE_NAMES, match.evidence)}
        pairs_out = _pairs(query.thumbnails, matched, a.speed, a.offset_s, q_seg, max_pairs)
    return Evidence(
        match.video_id if match is not None else "",
        decision.duplicate_for,
        decision.is_duplicate,
        float(decision.score),
        decision.path,
        _rounded(q_seg),
        _rounded(m_seg),
        features,
        pairs_out,
    )


def _chosen(decision: Decision) -> Match | None:
    """The match the decision rests on: the named one, else the most probable candidate."""
    for m in decision.candidates:
        if m.video_id == decision.matched_video and decision.matched_video:
            return m
    return decision.candidates[0] if decision.candidates and not decision.is_duplicate else None


def _pairs(
    query: Thumbnails,
    matched: Thumbnails,
    speed: float,
    offset_s: float,
    segment: tuple[float, float],
    max_pairs: int,
) -> tuple[FramePair, ...]:
    if not len(query.times):
        return ()
    lo, hi = segment
    inside = np.flatnonzero((query.times >= lo - 1e-3) & (query.times <= hi + 1e-3))
    if not len(inside):  # a segment shorter than the thumbnails' spacing: its nearest one
        inside = np.array([query.nearest((lo + hi) / 2)])
    chosen = inside[_even(len(inside), max_pairs)]
    out = []
    for i in chosen.tolist():
        qt = float(query.times[i])
        mt = speed * qt + offset_s
        j = matched.nearest(mt)
        out.append(
            FramePair(
                round(qt, 2),
                round(float(matched.times[j]) if j >= 0 else mt, 2),
                query.jpegs[i],
                matched.jpegs[j] if j >= 0 else None,
            )
        )
    return tuple(out)


def _spread(times: np.ndarray, jpegs: tuple[bytes, ...], k: int) -> list[tuple[float, bytes]]:
    idx = _even(len(times), k)
    return [(float(times[i]), jpegs[i]) for i in idx.tolist()]


def _even(n: int, k: int) -> np.ndarray:
    """int64 [min(n, k)]: indices spread evenly over n, first and last included."""
    if n <= k:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))


def _rounded(seg: tuple[float, float] | None) -> tuple[float, float] | None:
    return (round(float(seg[0]), 2), round(float(seg[1]), 2)) if seg is not None else None
