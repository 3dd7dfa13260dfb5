"""Evidence: what one alignment of a query against a catalog video shows, as numbers to weigh.

Why this exists: the decision used to be a ladder of hand-set thresholds (a motion floor, an
agreement floor, a borderline band that audio could lift, a margin for still content), each a
veto calibrated on the 179 dev videos. On other footage those lines cut through true copies: a
flipped copy whose motion agreement came out at 0.2 was vetoed however well its frames and its
soundtrack matched. Here every (query view, candidate view) alignment becomes one fixed vector
of evidence, ``FEATURES``, and ``vdup.matching.model`` weighs them all together into one
calibrated probability, learned from thousands of generated copies and look-alikes
(``vdup calibrate``). No single number decides on its own.

Everything here is a plain function of arrays: the same code computes the evidence when serving
and when calibrating, so a model sees at training time exactly what it will see in production.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vdup.matching.align import MIN_DYNAMIC_FRAMES, Alignment, Dynamics, align, dynamics

#: (name, monotone direction) of each evidence feature, in the order of the vector. Direction +1
#: means more of it never makes a copy less likely (the model is constrained so); 0, no
#: constraint. Units and ranges:
#:   confidence        alignment score * min(1, inliers / needed) (0..1)
#:   similarity        mean SSCD cosine similarity of the inlier frame pairs (0..1)
#:   peak              best inlier similarity (0..1)
#:   gain              mean inlier similarity above the chance level of a random line (-1..1)
#:   inliers           log(1 + aligned query frames)
#:   inlier_share      min(1, inliers / needed): needed = what a copy of the candidate could show
#:   query_coverage    share of the query's samples that align (0..1)
#:   ref_coverage      share of the candidate's samples that align (0..1)
#:   speed_change      |log2 speed| of the alignment line
#:   motion_agreement  correlation of the two videos' motion along the line (-1..1; 0 unknown)
#:   motion_energy     how much the calmer video moves (RMS of centred descriptors)
#:   motion_frames     log(1 + frames the motion was compared on)
#:   audio             median best-window similarity of the soundtracks, anywhere (-1..1)
#:   audio_aligned     median similarity of the soundtrack windows the visual line pairs (-1..1)
#:   audio_present     1 when both soundtracks exist and are not constant, else 0
#:   retrieval         best frame similarity retrieval saw for the candidate (0..1)
#:   rank              log(1 + the candidate's rank in retrieval order)
#:   margin            confidence minus the best confidence of a candidate of another root
#:   query_flipped     1 when the query view is mirrored
#:   query_region      1 when the query view is its content box
#:   candidate_region  1 when the candidate view is its content box
#:   query_duration    log(1 + s)
#:   candidate_duration log(1 + s)
#:   query_frames      log(1 + sampled query frames)
#:   normalised        mean inlier similarity minus each query frame's background level (below)
#:   background        mean background level of the inlier query frames (0..1)
#: A query frame's background level is its mean similarity to its ``BACKGROUND_K`` nearest
#: frames of a fixed set from unrelated videos (CSLS-style, as in the VSC22 baseline's score
#: normalisation): a black frame, a text card or a shared template is close to much of any
#: background, so its similarity to a candidate says little; a frame of a copy stands out.
FEATURES: tuple[tuple[str, int], ...] = (
    ("confidence", 1),
    ("similarity", 1),
    ("peak", 1),
    ("gain", 1),
    ("inliers", 0),
    ("inlier_share", 1),
    ("query_coverage", 0),
    ("ref_coverage", 0),
    ("speed_change", 0),
    ("motion_agreement", 1),
    ("motion_energy", 0),
    ("motion_frames", 0),
    ("audio", 0),
    ("audio_aligned", 1),
    ("audio_present", 0),
    ("retrieval", 1),
    ("rank", 0),
    ("margin", 1),
    ("query_flipped", 0),
    ("query_region", 0),
    ("candidate_region", 0),
    ("query_duration", 0),
    ("candidate_duration", 0),
    ("query_frames", 0),
    ("normalised", 1),
    ("background", 0),
)
FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _ in FEATURES)
COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}
AUDIO_COLUMNS = (COLUMN["audio"], COLUMN["audio_aligned"], COLUMN["audio_present"])

BACKGROUND_K = 5
AUDIO_HOP_S = 0.5  # audio window i covers [0.5 i, 0.5 i + 1) s (VideoFeatures.audio)
MIN_AUDIO_WINDOWS = 2  # fewer windows paired along the line tell nothing


@dataclass(frozen=True)
class ViewPair:
    """One (query view, candidate view) alignment. views: (query view 0..3, candidate view 0 or
    2); confidence: 0..1 (``FEATURES``); audio_aligned: -1..1, 0 when it cannot be measured;
    normalised, background: ``FEATURES`` (0 without a background set)."""

    views: tuple[int, int]
    confidence: float
    alignment: Alignment
    dynamics: Dynamics
    audio_aligned: float
    normalised: float = 0.0
    background: float = 0.0


def background_levels(
    qdesc: np.ndarray, background: np.ndarray | None, k: int = BACKGROUND_K
) -> np.ndarray:
    """float32 [q]: each query row's mean similarity to its ``k`` nearest background rows.

    qdesc: float32 [q, 512]; background: float32 [b, 512] L2-normalised, or None (all 0). Cost:
    one [q, b] product (docs/benchmarks.md#design-choices-measured).
    """
    if background is None or len(background) == 0:
        return np.zeros(len(qdesc), np.float32)
    sim = qdesc @ background.T
    k = min(k, sim.shape[1])
    return np.partition(sim, sim.shape[1] - k, axis=1)[:, -k:].mean(axis=1).astype(np.float32)


def frames_for(duration_s: float, tq: np.ndarray) -> int:
    """How many of the query's samples a copy of a ``duration_s`` clip could hold (>= 1): a
    2 s original inside a long video sampled every 1.7 s leaves one or two frames."""
    gap = float(np.median(np.diff(tq))) if len(tq) > 1 else 1.0
    return max(1, int(round(duration_s / max(gap, 1e-3))))


def is_constant(track: np.ndarray, level: float) -> bool:
    """True for an empty track or one whose windows all match its first one (>= ``level``)."""
    if track.shape[0] == 0:
        return True
    return track.shape[0] > 1 and bool((track @ track[0]).min() >= level)


def audio_similarity(a: np.ndarray, b: np.ndarray, constant: float = 0.99) -> float:
    """Median over the query's windows of the best window similarity in the other track (-1..1).

    0 when either track is missing or *constant*: every window at least ``constant`` alike to
    the first (silence, a steady hum). A constant track matches every other constant track, so
    it identifies nothing.
    """
    if is_constant(a, constant) or is_constant(b, constant):
        return 0.0
    return float(np.median((a @ b.T).max(axis=1)))


def aligned_audio(a: np.ndarray, b: np.ndarray, line: Alignment, constant: float = 0.99) -> float:
    """Similarity of the soundtracks where the visual line says the videos meet (-1..1).

    a: query windows [wa, 128], b: candidate windows [wb, 128] (``AUDIO_HOP_S`` apart). Each query
    window whose centre lies in the matched query segment (widened by one window) is paired
    with the candidate window nearest to the centre's mapped time ``speed * t + offset``; its
    similarity is the best of that window and its two neighbours (the videos are sampled at
    different moments). The median over the paired windows, or 0 when fewer than
    ``MIN_AUDIO_WINDOWS`` pair or either track is constant. The same trending sound over other
    visuals can match anywhere, but only a copy's soundtrack also matches *in step* with its
    frames.
    """
    if line.inliers == 0 or is_constant(a, constant) or is_constant(b, constant):
        return 0.0
    lo, hi = line.query_span_s
    centres = AUDIO_HOP_S * np.arange(len(a)) + AUDIO_HOP_S
    keep = (centres >= lo - AUDIO_HOP_S) & (centres <= hi + AUDIO_HOP_S)
    j = np.rint((line.speed * centres + line.offset_s - AUDIO_HOP_S) / AUDIO_HOP_S).astype(int)
    keep &= (j >= 0) & (j < len(b))
    if keep.sum() < MIN_AUDIO_WINDOWS:
        return 0.0
    sim = a[keep] @ b.T  # [k, wb]
    rows = np.arange(int(keep.sum()))
    cols = j[keep]
    best = sim[rows, cols]
    for d in (-1, 1):
        c = np.clip(cols + d, 0, len(b) - 1)
        best = np.maximum(best, sim[rows, c])
    return float(np.median(best))


def align_views(
    qdesc: np.ndarray,
    qviews: np.ndarray,
    tq: np.ndarray,
    qaudio: np.ndarray,
    descriptors: np.ndarray,
    views: np.ndarray,
    row_times: np.ndarray,
    audio: np.ndarray,
    duration_s: float,
    min_inliers: int,
    tolerance_s: float,
    constant_audio: float,
    levels: np.ndarray | None = None,
) -> list[ViewPair]:
    """Every (query view, candidate view) alignment with some evidence (confidence > 0).

    qdesc: float32 [4n or 2n, 512] query views one after the other (``query_views``), qviews
    their view ids, tq: [n] s; descriptors/views/row_times: the candidate's stored rows;
    audio: [w, 128] windows of each; levels: [len(qdesc)] background levels of the query rows
    (``background_levels``; None = 0). Cost: one [q, r] product and, per pair, an alignment
    and a motion comparison (well under a millisecond each at 96 frames).
    """
    n = len(tq)
    levels = np.zeros(len(qdesc), np.float32) if levels is None else levels
    sim_all = qdesc @ descriptors.T
    needed = min(min_inliers, frames_for(duration_s, tq))
    out: list[ViewPair] = []
    for qv in np.unique(qviews):
        start = int(np.argmax(qviews == qv))
        q = qdesc[start : start + n]
        for rv in np.unique(views):
            mask = views == rv
            a = align(
                sim_all[start : start + n][:, mask], tq, row_times[mask], tolerance_s=tolerance_s
            )
            conf = a.score * min(1.0, a.inliers / needed)
            if conf <= 0.0:
                continue
            d = dynamics(q, descriptors[mask], tq, row_times[mask], a)
            rows = np.array([i for i, _ in a.pairs], np.int64)
            bg = float(levels[start + rows].mean())
            out.append(
                ViewPair(
                    (int(qv), int(rv)),
                    float(conf),
                    a,
                    d,
                    aligned_audio(qaudio, audio, a, constant_audio),
                    normalised=a.score - bg,
                    background=bg,
                )
            )
    return out


def vector(
    pair: ViewPair,
    *,
    needed: int,
    audio: float,
    audio_present: bool,
    retrieval: float,
    rank: int,
    rival: float,
    query_duration_s: float,
    candidate_duration_s: float,
    query_frames: int,
) -> np.ndarray:
    """float32 [len(FEATURES)]: one view pair's evidence (see ``FEATURES`` for each entry).

    rival: best confidence of any aligned candidate of another root (0 when none).
    """
    a, d = pair.alignment, pair.dynamics
    moving = d.frames >= MIN_DYNAMIC_FRAMES
    qv, rv = pair.views
    values = {
        "confidence": pair.confidence,
        "similarity": a.score,
        "peak": a.peak,
        "gain": a.gain,
        "inliers": np.log1p(a.inliers),
        "inlier_share": min(1.0, a.inliers / max(needed, 1)),
        "query_coverage": a.query_coverage,
        "ref_coverage": a.ref_coverage,
        "speed_change": abs(np.log2(max(a.speed, 1e-3))),
        "motion_agreement": d.agreement if moving else 0.0,
        "motion_energy": d.energy if moving else 0.0,
        "motion_frames": np.log1p(d.frames),
        "audio": audio,
        "audio_aligned": pair.audio_aligned,
        "audio_present": float(audio_present),
        "retrieval": retrieval,
        "rank": np.log1p(rank),
        "margin": pair.confidence - rival,
        "query_flipped": float(qv in (1, 3)),
        "query_region": float(qv in (2, 3)),
        "candidate_region": float(rv == 2),
        "query_duration": np.log1p(max(query_duration_s, 0.0)),
        "candidate_duration": np.log1p(max(candidate_duration_s, 0.0)),
        "query_frames": np.log1p(query_frames),
        "normalised": pair.normalised,
        "background": pair.background,
    }
    return np.array([values[name] for name in FEATURE_NAMES], np.float32)


def without_audio(x: np.ndarray) -> np.ndarray:
    """A copy of evidence rows [m, F] with the soundtrack's features as for a silent video."""
    y = np.array(x, np.float32, copy=True)
    y[..., AUDIO_COLUMNS] = 0.0
    return y
