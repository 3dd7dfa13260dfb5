"""Temporal alignment of a query video against one candidate, from their frame similarities.

Why: one similar frame proves little. Two recordings of the same room look alike frame by frame
(SSCD similarity ~0.87-0.92), while a heavily edited copy can fall below that. What a copy has
and a look-alike lacks is *time*: its matching frames lie along a line ``t_ref = speed * t_query +
offset`` (a trim shifts the offset, a speed change tilts the line, a partial copy is a short
line), and along that line the two videos *change in the same way*.

Two steps, both on plain arrays (nothing here does I/O):

1. ``align`` finds the line. Every strong frame pair votes for the (speed, offset) lines through
   it (a Hough vote, one vote per query frame and line); the best few lines per speed are then
   scored exactly: per query frame, the best similarity within ``tolerance_s`` of the line minus
   what a line through a random moment would get from that frame (so a line that explains
   nothing scores ~0, however many frames it covers), summed. Speed 1.0 wins ties: on static
   content every line fits equally well, and a real speed change must explain the frames
   *better* (``SPEED_PRIOR``, ``MIN_LINE_GAIN``) to be believed.
2. ``dynamics`` compares the two videos' motion along the line. Each video's descriptors are
   centred on their mean over the aligned segment, which removes what stays the same (the room,
   a logo, an overlay, a colour shift) and keeps what changes (the gestures, the cuts). With the
   reference resampled at the query's mapped times, the pooled correlation of the two centred
   sequences is ~1 for a copy and ~0 for another recording of the same place, whatever the
   static edits were.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPEEDS = (0.5, 2 / 3, 0.8, 1.0, 1.25, 1.5, 2.0)
PAIR_FLOOR = 0.25  # frame pairs below this similarity never vote or count
SPEED_PRIOR = 1.1  # line score another speed needs over the best line at speed 1.0
TOP_PER_ROW = 3  # each query frame votes with its best few reference frames
LINES_PER_SPEED = 2  # Hough peaks per speed that are scored exactly
MIN_LINE_GAIN = 0.01  # mean gain per query frame another speed needs beyond the prior


@dataclass(frozen=True)
class Alignment:
    """score: mean similarity of the inlier pairs (0..1); inliers: query frames with a reference
    frame within the tolerance of the line (at most one pair each); query_coverage /
    ref_coverage: share of each video's samples in the inlier pairs (0..1); peak: best inlier
    similarity; speed, offset_s: the line ``t_ref = speed * t_query + offset_s``;
    query_span_s / ref_span_s: (start, end) of the matched segments, s; pairs: the inlier
    (query index, reference index) pairs; gain: mean over the inliers of how much their
    similarity exceeds what a line through a random moment gets from the same query frame
    (~0 for frames that look like every moment of the reference: a black frame, a template)."""

    score: float
    inliers: int
    query_coverage: float
    ref_coverage: float
    peak: float
    speed: float
    offset_s: float
    query_span_s: tuple[float, float]
    ref_span_s: tuple[float, float]
    pairs: tuple[tuple[int, int], ...] = ()
    gain: float = 0.0

    @staticmethod
    def empty() -> Alignment:
        return Alignment(0.0, 0, 0.0, 0.0, 0.0, 1.0, 0.0, (0.0, 0.0), (0.0, 0.0))


MIN_DYNAMIC_FRAMES = 3  # fewer aligned frames cannot show motion


@dataclass(frozen=True)
class Dynamics:
    """agreement: pooled correlation (-1..1) of the two videos' centred descriptors along the
    line, 0 when fewer than ``MIN_DYNAMIC_FRAMES`` frames are aligned; energy: RMS norm of the
    centred descriptors of the calmer of the two videos (0 for a still image, ~0.1 for a static
    shot with small motion, 0.2-0.8 for people moving or cuts); frames: query frames used."""

    agreement: float
    energy: float
    frames: int


def align(
    sim: np.ndarray,
    tq: np.ndarray,
    tr: np.ndarray,
    tolerance_s: float = 1.25,
) -> Alignment:
    """sim: float32 [nq, nr] frame similarities; tq: [nq], tr: [nr] increasing timestamps, s.

    tolerance_s: how far (s, in reference time) an inlier may sit from the line; about the
    largest sampling gap, since the two videos are sampled at different moments. Cost: a few
    [nq, nr] passes per candidate line and per reference sample within a window (nq, nr <= 96
    frames: well under a millisecond).
    """
    nq, nr = sim.shape
    if nq == 0 or nr == 0:
        return Alignment.empty()
    lines = _hough_lines(sim, tq, tr, tolerance_s)
    if not lines:
        return Alignment.empty()
    base = _chance_level(sim, tr, tolerance_s)
    best_one: tuple[float, float, float] | None = None
    best_other: tuple[float, float, float] | None = None
    for speed, offset in lines:
        value = _line_value(sim, base, tq, tr, speed, offset, tolerance_s)
        if speed == 1.0:
            if best_one is None or value > best_one[0]:
                best_one = (value, speed, offset)
        elif best_other is None or value > best_other[0]:
            best_other = (value, speed, offset)
    chosen = best_one
    if chosen is None or (
        best_other is not None
        and best_other[0] > SPEED_PRIOR * max(chosen[0], 0.0) + MIN_LINE_GAIN * nq
    ):
        chosen = best_other
    assert chosen is not None  # lines is not empty, so one of the two was set
    _, speed, offset = chosen
    return _inliers(sim, base, tq, tr, speed, offset, tolerance_s)


def dynamics(
    q: np.ndarray, r: np.ndarray, tq: np.ndarray, tr: np.ndarray, a: Alignment
) -> Dynamics:
    """q: float32 [nq, d], r: [nr, d] L2-normalised descriptors of the aligned views; tq, tr
    their timestamps (s); ``a`` the alignment of ``q @ r.T``.

    The query frames between the first and last inlier whose mapped time falls inside the
    reference are kept; the reference is resampled at those times (linear interpolation of its
    neighbouring samples). Both sequences are centred on their own mean, and the agreement is
    ``sum(xc . yc) / sqrt(sum |xc|^2 * sum |yc|^2)``.
    """
    if a.inliers == 0 or len(tr) < 2:
        return Dynamics(0.0, 0.0, 0)
    lo, hi = a.query_span_s
    t = a.speed * tq + a.offset_s
    keep = (tq >= lo) & (tq <= hi) & (t >= tr[0]) & (t <= tr[-1])
    if keep.sum() < MIN_DYNAMIC_FRAMES:
        return Dynamics(0.0, 0.0, int(keep.sum()))
    x = q[keep]
    y = _resample(r, tr, t[keep])
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    ex, ey = float((xc**2).sum()), float((yc**2).sum())
    energy = float(np.sqrt(min(ex, ey) / len(x)))
    agreement = float((xc * yc).sum() / np.sqrt(ex * ey)) if ex > 0 and ey > 0 else 0.0
    return Dynamics(agreement, energy, int(len(x)))


def _hough_lines(
    sim: np.ndarray, tq: np.ndarray, tr: np.ndarray, tol: float
) -> list[tuple[float, float]]:
    """Candidate (speed, offset) lines: the best ``LINES_PER_SPEED`` Hough peaks per speed."""
    nq, nr = sim.shape
    k = min(TOP_PER_ROW, nr)
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(nq), k)
    cols = top.reshape(-1)
    vals = sim[rows, cols]
    keep = vals >= PAIR_FLOOR
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    if len(vals) == 0:
        return []
    lines = []
    for speed in SPEEDS:
        offsets = tr[cols] - speed * tq[rows]
        bins = np.floor(offsets / tol).astype(np.int64)
        # one vote per query frame and bin: its best pair there
        key = (bins - bins.min()) * nq + rows
        order = np.lexsort((-vals, key))
        first = np.ones(len(order), bool)
        first[1:] = key[order][1:] != key[order][:-1]
        b_sel, v_sel = bins[order][first], vals[order][first]
        uniq, inv = np.unique(b_sel, return_inverse=True)
        votes = np.zeros(len(uniq))
        np.add.at(votes, inv, v_sel)
        # a line sits near a bin edge as often as not: add each bin's neighbours
        support = votes.copy()
        adjacent = np.diff(uniq) == 1
        support[1:] += votes[:-1] * adjacent
        support[:-1] += votes[1:] * adjacent
        for b in np.argsort(-support, kind="stable")[:LINES_PER_SPEED]:
            near = np.abs(bins - uniq[b]) <= 1
            lines.append((float(speed), float(np.median(offsets[near]))))
    return lines


def _window(tq: np.ndarray, tr: np.ndarray, speed: float, offset: float, tol: float) -> np.ndarray:
    """bool [nq, nr]: reference samples within ``tol`` of each query frame's mapped time."""
    mapped = speed * tq + offset
    return np.abs(tr[None, :] - mapped[:, None]) <= tol


def _chance_level(sim: np.ndarray, tr: np.ndarray, tol: float) -> np.ndarray:
    """float [nq]: what a line through a random moment gets from each query frame, the mean
    over reference times of the best similarity within ``tol`` of it. The windows are
    contiguous (``tr`` is sorted), so a running maximum over shifts builds them in
    O(nq * nr * samples per window)."""
    idx = np.arange(len(tr))
    lo = np.searchsorted(tr, tr - tol, side="left")  # window of sample j: [lo[j], hi[j])
    hi = np.searchsorted(tr, tr + tol, side="right")
    slide = sim.copy()
    for d in range(1, int((hi - idx).max())):
        ok = idx + d < hi
        slide[:, ok] = np.maximum(slide[:, ok], sim[:, idx[ok] + d])
    for d in range(1, int((idx - lo).max()) + 1):
        ok = idx - d >= lo
        slide[:, ok] = np.maximum(slide[:, ok], sim[:, idx[ok] - d])
    return slide.mean(axis=1)


def _line_value(
    sim: np.ndarray,
    base: np.ndarray,
    tq: np.ndarray,
    tr: np.ndarray,
    speed: float,
    offset: float,
    tol: float,
) -> float:
    """Sum over query frames of how much the best similarity near the line (>= PAIR_FLOOR)
    exceeds what a random line gets from that frame (``base``): 0 on average for a line that
    explains nothing, however many frames it covers."""
    near = np.where(_window(tq, tr, speed, offset, tol), sim, -np.inf).max(axis=1)
    ok = near >= PAIR_FLOOR
    return float((near[ok] - base[ok]).sum())


def _inliers(
    sim: np.ndarray,
    base: np.ndarray,
    tq: np.ndarray,
    tr: np.ndarray,
    speed: float,
    offset: float,
    tol: float,
) -> Alignment:
    masked = np.where(_window(tq, tr, speed, offset, tol), sim, -np.inf)
    cols = masked.argmax(axis=1)
    vals = masked[np.arange(len(tq)), cols]
    rows = np.flatnonzero(vals >= PAIR_FLOOR)
    if len(rows) == 0:
        return Alignment.empty()
    cols, vals = cols[rows], vals[rows]
    # refit the offset on the inliers (median residual), keeping the speed
    offset = float(offset + np.median(tr[cols] - (speed * tq[rows] + offset)))
    return Alignment(
        score=float(vals.mean()),
        inliers=int(len(rows)),
        query_coverage=float(len(rows)) / len(tq),
        ref_coverage=float(len(np.unique(cols))) / len(tr),
        peak=float(vals.max()),
        speed=float(speed),
        offset_s=offset,
        query_span_s=(float(tq[rows].min()), float(tq[rows].max())),
        ref_span_s=(float(tr[cols].min()), float(tr[cols].max())),
        pairs=tuple(zip(rows.tolist(), cols.tolist())),
        gain=float((vals - base[rows]).mean()),
    )


def _resample(r: np.ndarray, tr: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation of the rows of ``r`` (sampled at ``tr``) at times ``t``."""
    j = np.clip(np.searchsorted(tr, t, side="right") - 1, 0, len(tr) - 2)
    span = np.maximum(tr[j + 1] - tr[j], 1e-6)
    w = np.clip((t - tr[j]) / span, 0.0, 1.0)[:, None]
    return (1.0 - w) * r[j] + w * r[j + 1]
