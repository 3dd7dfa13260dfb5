"""The decision: is the query a copy of a catalog video, and of which root original?

Inputs are plain values: the query's features and, for each candidate video that retrieval found,
its stored descriptors (``Candidate``). Per candidate and per pair of views (query: whole frame,
mirrored, content region, both; candidate: whole frame, content region) the frames are aligned
in time and the alignment's evidence is measured (``vdup.matching.evidence``): how alike the
aligned frames look, how much of each video they cover, whether the two videos move alike along
the line, whether the soundtracks match in step with the frames, how far the match stands above
every other original's. The decision model (``vdup.matching.model``) weighs that evidence into
a probability of "copy"; a candidate's probability is that of its best view pair.

The query is a duplicate when some candidate's probability reaches the model's threshold, which
was chosen for precision when the model was fitted. Among those candidates, a match to a root
original itself (direct evidence) comes before a match through one of its copies, then the
probability. The answer names the matched video's root, so copies of copies resolve to the first
upload. The path says what carried the decision: 'visual_audio' when the same evidence without
the soundtrack would not have reached the threshold, else 'visual'.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from vdup.features.types import VideoFeatures
from vdup.matching.align import Alignment, Dynamics
from vdup.matching.evidence import (
    FEATURE_NAMES,
    ViewPair,
    align_views,
    audio_similarity,
    background_levels,
    frames_for,
    is_constant,
    vector,
    without_audio,
)
from vdup.matching.model import DecisionModel, default_model

__all__ = [
    "Candidate",
    "Decision",
    "DecisionConfig",
    "Match",
    "audio_similarity",
    "decide",
    "evidence_table",
    "is_constant",
]


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
    """model: the decision model; None = the one that ships with vdup.
    threshold: probability at or above which a match is a copy; None = the model's own.
    min_inliers: aligned frames needed for full confidence (fewer scale it down), or as many
        as a clip of the candidate's duration leaves at the query's sampling, if fewer.
    max_candidates: candidates aligned per query (by retrieval score).
    tolerance_s: how far (s) an aligned frame may sit from the alignment line.
    constant_audio: a track whose windows are all at least this alike (silence) confirms
        nothing.
    settle_probability: once a root original itself matches at this probability (and at the
        threshold), its copies further down the ranking are not aligned: a direct match to the
        root outranks any match through its copies, so they cannot change the answer.
    background: float32 [b, 512] background set for the query frames' levels; None = the
        model's (``vdup calibrate`` passes the set it is collecting evidence with)."""

    model: DecisionModel | None = field(default=None, compare=False)
    threshold: float | None = None
    min_inliers: int = 3
    max_candidates: int = 20
    tolerance_s: float = 1.25
    constant_audio: float = 0.99
    settle_probability: float = 0.95
    background: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def background_set(self) -> np.ndarray | None:
        return self.background if self.background is not None else self.decision_model.background

    @property
    def decision_model(self) -> DecisionModel:
        return self.model if self.model is not None else default_model()

    @property
    def operating_threshold(self) -> float:
        return self.decision_model.threshold if self.threshold is None else self.threshold


@dataclass
class Match:
    """The best view pair of one candidate. confidence: alignment confidence 0..1; audio:
    soundtrack similarity anywhere, -1..1; audio_aligned: in step with the frames, -1..1;
    probability: the model's p(copy), 0..1; views: (query view, candidate view); evidence:
    float32 [F] (``vdup.matching.evidence.FEATURES``)."""

    video_id: str
    root_id: str
    confidence: float
    audio: float
    alignment: Alignment
    dynamics: Dynamics = field(default_factory=lambda: Dynamics(0.0, 0.0, 0))
    probability: float = 0.0
    audio_aligned: float = 0.0
    views: tuple[int, int] = (0, 0)
    evidence: np.ndarray | None = None


@dataclass
class Decision:
    """path: 'exact' (same bytes), 'visual', 'visual_audio' or '' (not a duplicate); score: the
    chosen match's probability (the best candidate's when not a duplicate)."""

    is_duplicate: bool
    duplicate_for: str = ""
    matched_video: str = ""
    score: float = 0.0
    path: str = ""
    query_segment_s: tuple[float, float] | None = None
    match_segment_s: tuple[float, float] | None = None
    candidates: list[Match] = field(default_factory=list)


@dataclass
class _Scored:
    candidate: Candidate
    rank: int
    pairs: list[ViewPair]
    audio: float
    needed: int


def _rank(candidates: list[Candidate], cfg: DecisionConfig) -> list[Candidate]:
    return sorted(candidates, key=lambda c: (-c.retrieval, c.video_id))[: cfg.max_candidates]


def _align(
    query: VideoFeatures,
    views: tuple[np.ndarray, np.ndarray, np.ndarray],
    c: Candidate,
    rank: int,
    cfg: DecisionConfig,
) -> _Scored:
    qdesc, qviews, levels = views
    pairs = align_views(
        qdesc,
        qviews,
        query.timestamps,
        query.audio,
        c.descriptors,
        c.views,
        c.row_times,
        c.audio,
        c.duration_s,
        cfg.min_inliers,
        cfg.tolerance_s,
        cfg.constant_audio,
        levels,
    )
    return _Scored(
        c,
        rank,
        pairs,
        audio_similarity(query.audio, c.audio, cfg.constant_audio),
        min(cfg.min_inliers, frames_for(c.duration_s, query.timestamps)),
    )


def _rows(
    query: VideoFeatures, scored: list[_Scored], s: _Scored, cfg: DecisionConfig
) -> np.ndarray:
    """float32 [pairs, F]: the evidence of each of ``s``'s view pairs, against ``scored``."""
    rival = max(
        (
            p.confidence
            for o in scored
            if o.candidate.root_id != s.candidate.root_id
            for p in o.pairs
        ),
        default=0.0,
    )
    present = not (
        is_constant(query.audio, cfg.constant_audio)
        or is_constant(s.candidate.audio, cfg.constant_audio)
    )
    return np.stack(
        [
            vector(
                p,
                needed=s.needed,
                audio=s.audio,
                audio_present=present,
                retrieval=s.candidate.retrieval,
                rank=s.rank,
                rival=rival,
                query_duration_s=query.duration_s,
                candidate_duration_s=s.candidate.duration_s,
                query_frames=len(query.timestamps),
            )
            for p in s.pairs
        ]
    )


def _score_all(
    query: VideoFeatures, candidates: list[Candidate], cfg: DecisionConfig
) -> list[_Scored]:
    """Aligns the ranked candidates, skipping the copies of a root already settled directly."""
    scored: list[_Scored] = []
    settled: set[str] = set()
    ranked = _rank(candidates, cfg)
    if not ranked:
        return scored
    qdesc, qviews = query.query_views()
    views = (qdesc, qviews, background_levels(qdesc, cfg.background_set))
    for rank, c in enumerate(ranked):
        if c.root_id in settled:
            continue
        s = _align(query, views, c, rank, cfg)
        scored.append(s)
        if s.pairs and c.video_id == c.root_id and cfg.settle_probability <= 1.0:
            p = cfg.decision_model.probability(_rows(query, scored, s, cfg))
            if float(p.max()) >= max(cfg.operating_threshold, cfg.settle_probability):
                settled.add(c.root_id)
    return scored


def evidence_table(
    query: VideoFeatures, candidates: list[Candidate], cfg: DecisionConfig
) -> list[tuple[Candidate, np.ndarray]]:
    """(candidate, float32 [pairs, F] evidence of each aligned view pair) for every candidate
    the decision aligns: what ``vdup calibrate`` learns from (with ``settle_probability`` > 1
    every candidate is aligned and no model is consulted). Candidates without any aligned pair
    get an empty [0, F] table."""
    scored = _score_all(query, candidates, cfg)
    return [
        (
            s.candidate,
            _rows(query, scored, s, cfg)
            if s.pairs
            else np.zeros((0, len(FEATURE_NAMES)), np.float32),
        )
        for s in scored
    ]


def decide(
    query: VideoFeatures,
    candidates: list[Candidate],
    cfg: DecisionConfig,
    negatives: Mapping[str, Collection[str]] | None = None,
) -> Decision:
    """The decision over ``candidates`` (any order; the best ``max_candidates`` by retrieval).

    negatives: video id -> roots a moderator ruled that video's content is not a copy of (a
    negative list, like HMA's negative banks); see ``_unbarred``.
    """
    scored = _score_all(query, candidates, cfg)
    model = cfg.decision_model
    matches: list[Match] = []
    for s in scored:
        c = s.candidate
        if not s.pairs:
            matches.append(Match(c.video_id, c.root_id, 0.0, s.audio, Alignment.empty()))
            continue
        x = _rows(query, scored, s, cfg)
        p = model.probability(x)
        best = int(np.argmax(p))
        pair = s.pairs[best]
        matches.append(
            Match(
                c.video_id,
                c.root_id,
                pair.confidence,
                s.audio,
                pair.alignment,
                pair.dynamics,
                float(p[best]),
                pair.audio_aligned,
                pair.views,
                x[best],
            )
        )
    matches.sort(key=lambda m: (-m.probability, -m.confidence, m.video_id))
    threshold = cfg.operating_threshold
    admissible = [m for m in matches if m.probability >= threshold]
    if negatives and admissible:
        admissible = _unbarred(admissible, negatives)
    if not admissible:
        top = matches[0].probability if matches else 0.0
        return Decision(is_duplicate=False, score=round(top, 4), candidates=matches)
    m = min(admissible, key=lambda m: (m.video_id != m.root_id, -m.probability, m.video_id))
    assert m.evidence is not None
    silent = float(model.probability(without_audio(m.evidence[None]))[0])
    a = m.alignment
    return Decision(
        is_duplicate=True,
        duplicate_for=m.root_id,
        matched_video=m.video_id,
        score=round(m.probability, 4),
        path="visual" if silent >= threshold else "visual_audio",
        query_segment_s=a.query_span_s,
        match_segment_s=a.ref_span_s,
        candidates=matches,
    )


def _unbarred(admissible: list[Match], negatives: Mapping[str, Collection[str]]) -> list[Match]:
    """``admissible`` without the matches the negative list rules out.

    When the query matches a video V on the list (or a copy whose root V is) at the threshold,
    a match to a root V was ruled distinct from stays admissible only if it is strictly more
    probable than the match through V: more copies of V's content do not fall back to the
    overturned root, while a copy that is closer to that root than to V is still its copy.
    """
    through: dict[str, float] = {}  # barred root -> best probability of a match that bars it
    for m in admissible:
        for key in {m.video_id, m.root_id}:
            for root in negatives.get(key, ()):
                through[root] = max(through.get(root, 0.0), m.probability)
    return [m for m in admissible if m.probability > through.get(m.root_id, -1.0)]
