"""The decision: is the query a copy of a catalog video, and of which root original?

Inputs are plain values: the query's features and, for each candidate video that retrieval found,
its stored descriptors (``Candidate``). The visual evidence decides; audio only confirms a
borderline visual match. The same soundtrack over other visuals is never enough on its own: on a
short-video platform thousands of different clips share one trending sound.

Per candidate and per pair of views (query: whole frame, mirrored, content region, both;
candidate: whole frame, content region) the frames are aligned in time
(``vdup.matching.align``), and

    confidence = mean inlier similarity * min(1, inliers / needed),
    needed     = min(min_inliers, query samples that a clip as long as the candidate fills)

says how alike the aligned frames look (a 2 s original inserted into a long video sampled every
1.7 s can only ever show one frame). Looking alike is not enough: another recording of the same
room looks as alike as a lightly edited copy. So the motion along the alignment is compared too
(``align.dynamics``): when the two videos do move (energy >= ``motion_floor``) their motions must
agree (agreement >= ``min_motion_agreement``), or the match is *contradicted* and cannot make a
duplicate. When they hardly move, or too few frames align, motion can neither confirm nor
contradict; such an *unverified* match rests on appearance alone, so it needs a higher
confidence (``unverified_threshold``) and must single one original out: a shared screenshot
template or a room looks alike across many uploads (``unverified_margin`` over every candidate
of another root).

Among the admissible matches the confirmed ones come first, then matches to a root original
itself (direct evidence) before matches through one of its copies, then confidence. The answer
names the matched video's root, so copies of copies resolve to the first upload. Thresholds are
fields of ``DecisionConfig``; their defaults were calibrated on the development benchmark only
(docs/accuracy-notes.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vdup.features.types import VideoFeatures
from vdup.matching.align import MIN_DYNAMIC_FRAMES, Alignment, Dynamics, align, dynamics

CONFIRMED, UNVERIFIED, CONTRADICTED = "confirmed", "unverified", "contradicted"


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
    """visual_threshold: confidence at or above which the visual evidence decides, when the
        motion along the alignment confirms it.
    unverified_threshold: the same for a match whose motion cannot be checked (still content,
        or too few aligned frames); appearance alone must then be stronger...
    unverified_margin: ...and single one original out: its confidence must exceed that of
        every candidate of another root by this much (a shared screenshot template or room
        looks alike across many uploads).
    borderline_threshold: lowest confidence that matching audio can confirm.
    audio_threshold: median best-window audio similarity that counts as the same soundtrack.
    min_inliers: aligned frames needed for full confidence (fewer scale it down), or as many
        as a clip of the candidate's duration leaves at the query's sampling, if fewer.
    max_candidates: candidates aligned per query (by retrieval score).
    tolerance_s: how far (s) an aligned frame may sit from the alignment line.
    motion_floor: RMS norm of the centred descriptors (``Dynamics.energy``) from which the two
        videos count as moving, so that their motion must agree.
    min_motion_agreement: least correlation of the two videos' motion (``Dynamics.agreement``)
        for moving videos; below it the match is contradicted.
    constant_audio: a track whose windows are all at least this alike (silence) confirms
        nothing."""

    visual_threshold: float = 0.5
    unverified_threshold: float = 0.75
    unverified_margin: float = 0.25
    borderline_threshold: float = 0.4
    audio_threshold: float = 0.8
    min_inliers: int = 3
    max_candidates: int = 20
    tolerance_s: float = 1.25
    motion_floor: float = 0.12
    min_motion_agreement: float = 0.3
    constant_audio: float = 0.99


@dataclass
class Match:
    """confidence: 0..1 (see the module docstring); audio: -1..1; motion: 'confirmed',
    'unverified' or 'contradicted'; views: (query view, candidate view) that aligned best."""

    video_id: str
    root_id: str
    confidence: float
    audio: float
    alignment: Alignment
    dynamics: Dynamics = field(default_factory=lambda: Dynamics(0.0, 0.0, 0))
    motion: str = UNVERIFIED
    views: tuple[int, int] = (0, 0)


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


def audio_similarity(a: np.ndarray, b: np.ndarray, constant: float = 0.99) -> float:
    """Median over the query's windows of the best window similarity in the other track (-1..1).

    0 when either track is missing or *constant*: every window at least ``constant`` alike to
    the first (silence, a steady hum). A constant track matches every other constant track, so
    it identifies nothing.
    """
    if is_constant(a, constant) or is_constant(b, constant):
        return 0.0
    return float(np.median((a @ b.T).max(axis=1)))


def is_constant(track: np.ndarray, level: float) -> bool:
    """True for an empty track or one whose windows all match its first one (>= ``level``)."""
    if track.shape[0] == 0:
        return True
    return track.shape[0] > 1 and bool((track @ track[0]).min() >= level)


def motion_verdict(d: Dynamics, cfg: DecisionConfig) -> str:
    """'confirmed', 'unverified' (too little motion, or too few frames, to tell) or
    'contradicted'."""
    if d.frames < MIN_DYNAMIC_FRAMES or d.energy < cfg.motion_floor:
        return UNVERIFIED
    return CONFIRMED if d.agreement >= cfg.min_motion_agreement else CONTRADICTED


def _frames_for(duration_s: float, tq: np.ndarray) -> int:
    """How many of the query's samples a copy of a ``duration_s`` clip could hold (>= 1): a
    2 s original inside a long video sampled every 1.7 s leaves one or two frames."""
    gap = float(np.median(np.diff(tq))) if len(tq) > 1 else 1.0
    return max(1, int(round(duration_s / max(gap, 1e-3))))


def score_candidate(query: VideoFeatures, cand: Candidate, cfg: DecisionConfig) -> Match:
    """Align every query view against every candidate view and keep one pair.

    The most similar pair speaks for the candidate, unless another pair whose motion is
    *confirmed* is similar enough to count (``borderline_threshold``): an overlay's content
    region can confirm a copy that its whole frame, dominated by the surroundings, contradicts.
    A merely unverified pair never overrides a contradicted one.
    """
    qdesc, qviews = query.query_views()
    n = len(query.timestamps)
    sim_all = qdesc @ cand.descriptors.T  # [q, r]
    audio = audio_similarity(query.audio, cand.audio, cfg.constant_audio)
    needed = min(cfg.min_inliers, _frames_for(cand.duration_s, query.timestamps))
    best: Match | None = None
    best_confirmed: Match | None = None
    for qv in np.unique(qviews):
        start = int(np.argmax(qviews == qv))
        q = qdesc[start : start + n]
        for rv in np.unique(cand.views):
            r_mask = cand.views == rv
            sim = sim_all[start : start + n][:, r_mask]
            a = align(sim, query.timestamps, cand.row_times[r_mask], tolerance_s=cfg.tolerance_s)
            conf = a.score * min(1.0, a.inliers / needed)
            if conf <= 0.0:
                continue
            if conf >= cfg.borderline_threshold:  # below it no verdict can make it count
                d = dynamics(q, cand.descriptors[r_mask], query.timestamps,
                             cand.row_times[r_mask], a)
            else:
                d = Dynamics(0.0, 0.0, 0)
            m = Match(cand.video_id, cand.root_id, float(conf), audio, a, d, motion_verdict(d, cfg),
                      (int(qv), int(rv)))
            if best is None or m.confidence > best.confidence:
                best = m
            if m.motion == CONFIRMED and m.confidence >= cfg.borderline_threshold and (
                    best_confirmed is None or m.confidence > best_confirmed.confidence):
                best_confirmed = m
    if best_confirmed is not None:
        return best_confirmed
    if best is None:
        return Match(cand.video_id, cand.root_id, 0.0, audio, Alignment.empty())
    return best


def decide(query: VideoFeatures, candidates: list[Candidate], cfg: DecisionConfig) -> Decision:
    """The decision over ``candidates`` (any order; the best ``max_candidates`` by retrieval)."""
    ranked = sorted(candidates, key=lambda c: (-c.retrieval, c.video_id))[: cfg.max_candidates]
    matches: list[Match] = []
    settled: set[str] = set()  # roots matched directly, confirmed and above visual_threshold
    for c in ranked:
        # A settled root's copies cannot change the answer: a confirmed match to the root
        # itself outranks any match through a copy, and outranks every unverified match (whose
        # rival bar is all the copies could raise). A viral original with many re-uploads in the
        # catalog so costs one alignment, not max_candidates.
        if c.root_id in settled:
            continue
        m = score_candidate(query, c, cfg)
        matches.append(m)
        if (m.video_id == m.root_id and m.motion == CONFIRMED
                and m.confidence >= cfg.visual_threshold):
            settled.add(m.root_id)
    matches.sort(key=lambda m: (-m.confidence, m.video_id))
    admissible = []
    for m in matches:
        if m.motion == CONTRADICTED:
            continue
        if m.motion == CONFIRMED:
            visual = m.confidence >= cfg.visual_threshold
        else:
            rival = max((o.confidence for o in matches if o.root_id != m.root_id), default=0.0)
            visual = (m.confidence >= cfg.unverified_threshold
                      and m.confidence - rival >= cfg.unverified_margin)
        if visual:
            admissible.append((m, "visual"))
        elif m.confidence >= cfg.borderline_threshold and m.audio >= cfg.audio_threshold:
            admissible.append((m, "visual_audio"))
    if admissible:
        m, path = min(admissible, key=lambda mp: (
            mp[0].motion != CONFIRMED, mp[0].video_id != mp[0].root_id, -mp[0].confidence,
            mp[0].video_id))
        a = m.alignment
        return Decision(
            is_duplicate=True,
            duplicate_for=m.root_id,
            matched_video=m.video_id,
            score=round(m.confidence, 4),
            path=path,
            query_segment_s=a.query_span_s,
            match_segment_s=a.ref_span_s,
            candidates=matches,
        )
    top = matches[0].confidence if matches else 0.0
    return Decision(is_duplicate=False, score=round(top, 4), candidates=matches)
