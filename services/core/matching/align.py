"""Temporal alignment of a query video against one candidate, from their frame similarities.

Why: one similar frame proves little. Two recordings of the same room look alike frame by frame
(SSCD similarity ~0.87), while a heavily edited copy can fall below that. What a copy has and a
look-alike lacks is *time*: its matching frames line up along a line ``t_ref = speed * t_query +
offset`` (a trim shifts the offset, a speed change tilts the line, a partial copy is a short
line), and each of its frames matches *its own* moment of the reference better than the rest.

The method is a Hough vote: every strong frame pair votes for the (speed, offset) lines through
it; the best-supported line gives the inliers, at most one per query frame. Reordered segments
yield their longest segment. All inputs are plain arrays; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPEEDS = (0.5, 2 / 3, 0.8, 1.0, 1.25, 1.5, 2.0)
PAIR_FLOOR = 0.25  # frame pairs below this similarity never vote
SPEED_PRIOR = 1.15  # support ratio another speed needs over speed 1.0
TOP_PER_ROW = 3  # each query frame votes with its best few reference frames


@dataclass(frozen=True)
class Alignment:
    """score: mean similarity of the inlier pairs (0..1); inliers: count of query frames on the
    line; query_coverage / ref_coverage: share of each video's frames (by time span, 0..1)
    covered by the aligned segment; contrast: how much better each inlier matches its own
    moment than other moments of the reference (similarity units, ~0 for a static scene);
    speed, offset_s: the line; query_span_s / ref_span_s: (start, end) of the matched segments."""

    score: float
    inliers: int
    query_coverage: float
    ref_coverage: float
    contrast: float
    peak: float
    speed: float
    offset_s: float
    query_span_s: tuple[float, float]
    ref_span_s: tuple[float, float]
    pairs: tuple[tuple[int, int], ...] = ()

    @staticmethod
    def empty() -> "Alignment":
        return Alignment(0.0, 0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, (0.0, 0.0), (0.0, 0.0))


def align(
    sim: np.ndarray,
    tq: np.ndarray,
    tr: np.ndarray,
    tolerance_s: float = 1.25,
) -> Alignment:
    """sim: float32 [nq, nr] frame similarities; tq: [nq], tr: [nr] timestamps in s.

    tolerance_s: how far (s, in reference time) an inlier may sit from the line; it should be
    about the sampling gap, since samples of the two videos are taken at different moments.
    """
    nq, nr = sim.shape
    if nq == 0 or nr == 0:
        return Alignment.empty()
    k = min(TOP_PER_ROW, nr)
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k]  # [nq, k]
    rows = np.repeat(np.arange(nq), k)
    cols = top.reshape(-1)
    vals = sim[rows, cols]
    keep = vals >= PAIR_FLOOR
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    if len(vals) == 0:
        return Alignment.empty()

    best = None
    for speed in SPEEDS:
        offsets = tr[cols] - speed * tq[rows]
        bin_w = tolerance_s
        bins = np.floor(offsets / bin_w).astype(np.int64)
        uniq, inv = np.unique(bins, return_inverse=True)
        votes = np.zeros(len(uniq))
        np.add.at(votes, inv, vals)
        # a line sits near a bin edge as often as not: add each bin's neighbours
        support = votes.copy()
        support[1:] += votes[:-1] * (np.diff(uniq) == 1)
        support[:-1] += votes[1:] * (np.diff(uniq) == 1)
        b = int(np.argmax(support))
        # real speed changes are rare: another speed must beat 1.0 clearly to be chosen
        weight = 1.0 if speed == 1.0 else 1.0 / SPEED_PRIOR
        if best is None or support[b] * weight > best[0]:
            sel = np.abs(inv - b) <= 1
            center = float(np.median(offsets[sel]))
            best = (support[b] * weight, speed, center)
    _, speed, offset = best

    resid = np.abs(tr[cols] - (speed * tq[rows] + offset))
    on_line = resid <= tolerance_s
    if not on_line.any():
        return Alignment.empty()
    r_in, c_in, v_in = rows[on_line], cols[on_line], vals[on_line]
    order = np.lexsort((-v_in, r_in))
    first = np.ones(len(order), bool)
    first[1:] = r_in[order][1:] != r_in[order][:-1]
    idx = order[first]
    r_in, c_in, v_in = r_in[idx], c_in[idx], v_in[idx]

    q_span = (float(tq[r_in].min()), float(tq[r_in].max()))
    r_span = (float(tr[c_in].min()), float(tr[c_in].max()))
    return Alignment(
        score=float(v_in.mean()),
        inliers=int(len(r_in)),
        query_coverage=_coverage(tq, r_in),
        ref_coverage=_coverage(tr, np.unique(c_in)),
        contrast=_contrast(sim, tr, r_in, c_in, v_in),
        peak=float(v_in.max()),
        speed=float(speed),
        offset_s=float(offset),
        query_span_s=q_span,
        ref_span_s=r_span,
        pairs=tuple(zip(r_in.tolist(), c_in.tolist())),
    )


def _coverage(t: np.ndarray, idx: np.ndarray) -> float:
    """Share of the samples of a video that the aligned samples account for (0..1)."""
    return float(len(np.unique(idx))) / float(len(t))


def _contrast(sim, tr, r_in, c_in, v_in, far_s: float = 2.0) -> float:
    """Mean over inliers of (pair similarity - median similarity of the same query frame to
    reference frames more than ``far_s`` away from its match); 0 when no frame is that far."""
    gains = []
    for r, c, v in zip(r_in, c_in, v_in):
        far = np.abs(tr - tr[c]) > far_s
        if far.any():
            gains.append(v - float(np.median(sim[r, far])))
    return float(np.mean(gains)) if gains else 0.0
