"""Find the rectangle of the frame where the video's own content lives.

Why: re-uploads often place the copied video inside something else: a 9:16 frame over a blurred
copy of itself, solid padding, a screenshot of a feed, another video. A whole-frame descriptor of
such a frame is dominated by the surroundings (similarity falls to 0.1-0.3), so we also describe
the content rectangle on its own.

What every such edit has in common is a *boundary*: an axis-aligned rectangle whose sides are
straight edges that stay put in every frame, whatever moves on either side. So the detector

1. finds persistent edges: the median over frames of the intensity step across each pixel
   (moving edges and noise vanish in the median; the overlay's border does not), kept only where
   the step across clearly exceeds the step along (``ORIENTATION``: a side, not texture);
2. takes the rows and columns that carry most of them as candidate sides (the frame border is
   a side too) and keeps the *closed* rectangles: at least two inner sides, each showing a
   persistent edge along at least ``MIN_SIDE_SUPPORT`` of its length;
3. picks among them the one that holds the video's life: the share of "alive" pixels (moving
   *and* detailed, which excludes still screenshots, solid pads and blurred backgrounds) inside
   it, minus its share of the area (plus ``SIDE_BONUS`` per inner side: a rectangle closed on
   more sides is a likelier overlay). When nothing concentrates life (an overlay onto another
   moving video), a rectangle closed on at least three inner sides is taken on its geometry
   alone: the one whose inner sides show an edge along the largest share of their length
   (a clean border, not merely a long one: a screenshot's media slot, whose top edge stops
   where its blank part begins, must not win over the clip inside it);
4. trims flat bands (no detail, no motion: letterbox bars inside a screenshot's media slot)
   from its border.

It is a heuristic with clear failure modes (a content rectangle thinner than ``MIN_SIDE``, nested
overlays, a static scene with a closed rectangle of straight edges) and the whole frame is always
described as well, so a wrong box costs one extra view, not a miss.
"""

from __future__ import annotations

import numpy as np

MIN_SIDE = 0.25  # smallest box side kept, as a fraction of the frame side
MAX_AREA = 0.80  # a box covering more than this of the frame adds nothing over the full frame
EDGE_STEP = 6.0  # grey levels: the least median intensity step that counts as a persistent edge
MIN_SIDE_SUPPORT = 0.6  # share of an inner side's length that must show a persistent edge
MIN_CONCENTRATION = 0.15  # share of life inside minus share of area, to choose by life
CANDIDATE_LINES = 10  # strongest edge rows / columns considered as sides
MAX_FRAMES = 16  # frames used for the statistics (evenly spread)
SIDE_BONUS = 0.05  # preference per closed inner side (a fuller frame is a likelier overlay)
FLAT = 2.0  # grey levels: motion and detail below this are padding
ORIENTATION = 2.0  # a side's step across it must exceed this many times the step along it


def content_box(frames: np.ndarray) -> tuple[int, int, int, int] | None:
    """frames: uint8 [n, H, W, 3]. Returns (top, left, bottom, right) in px, or None.

    None when there are fewer than 3 frames or no closed rectangle qualifies (see the module
    docstring); boxes covering more than ``MAX_AREA`` of the frame or with a side under
    ``MIN_SIDE`` of it are never returned.
    """
    if frames.shape[0] < 3 or frames.shape[1] < 8 or frames.shape[2] < 8:
        return None
    if frames.shape[0] > MAX_FRAMES:
        frames = frames[np.linspace(0, frames.shape[0] - 1, MAX_FRAMES).round().astype(int)]
    g = _half_gray(frames)  # [n, h, w]
    n, h, w = g.shape
    dx = np.abs(g[:, :, 2:] - g[:, :, :-2])
    dy = np.abs(g[:, 2:, :] - g[:, :-2, :])
    step_x = np.zeros((h, w), np.float32)  # median step across column x, at (y, x)
    step_y = np.zeros((h, w), np.float32)  # median step across row y
    step_x[:, 1:-1] = np.median(dx, axis=0)
    step_y[1:-1, :] = np.median(dy, axis=0)
    # a side of a rectangle is a step across it and none along it (texture has both)
    edge_v = (step_x >= EDGE_STEP) & (step_x >= ORIENTATION * step_y)
    edge_h = (step_y >= EDGE_STEP) & (step_y >= ORIENTATION * step_x)
    detail = np.zeros((h, w), np.float32)
    detail[1:-1, 1:-1] = (dx[:, 1:-1, :] + dy[:, :, 1:-1]).mean(axis=0)
    motion = g.std(axis=0)

    rect = _best_rectangle(edge_v, edge_h, _alive(motion, detail))
    if rect is None:
        return None
    t, l, b, r = _trim_flat(rect, motion, detail)
    if b - t < MIN_SIDE * h or r - l < MIN_SIDE * w or (b - t) * (r - l) > MAX_AREA * h * w:
        return None
    sy, sx = frames.shape[1] / h, frames.shape[2] / w
    return int(t * sy), int(l * sx), int(round(b * sy)), int(round(r * sx))


def _half_gray(frames: np.ndarray) -> np.ndarray:
    """uint8 [n, H, W, 3] -> float32 [n, H//2, W//2] grey, 2x2 block means (integer sums)."""
    h2, w2 = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    acc = frames[:, 0:h2:2, 0:w2:2].astype(np.uint16)
    acc += frames[:, 1:h2:2, 0:w2:2]
    acc += frames[:, 0:h2:2, 1:w2:2]
    acc += frames[:, 1:h2:2, 1:w2:2]
    return acc.sum(axis=3, dtype=np.uint16).astype(np.float32) * np.float32(1 / 12)


def _alive(motion: np.ndarray, detail: np.ndarray) -> np.ndarray:
    """Per pixel 0..1: moving (temporal std) and detailed (spatial gradient), each relative to
    the frame's 90th percentile."""
    m = np.clip(motion / max(float(np.percentile(motion, 90)), 1e-3), 0, 1)
    d = np.clip(detail / max(float(np.percentile(detail, 90)), 1e-3), 0, 1)
    return m * d


def _best_rectangle(
    edge_v: np.ndarray, edge_h: np.ndarray, alive: np.ndarray
) -> tuple[int, int, int, int] | None:
    """Steps 2-3 of the module docstring on the half-size grid; every candidate rectangle is
    scored at once with cumulative sums (<= 66 x 66 rectangles)."""
    h, w = alive.shape
    cv = _cumulative(edge_v)  # [h+1, w]: edge pixels of column x above row y
    ch = _cumulative(edge_h.T)  # [w+1, h]: edge pixels of row y left of column x
    cols = np.array(sorted({0, w, *_peaks(edge_v.mean(axis=0))}))
    rows = np.array(sorted({0, h, *_peaks(edge_h.mean(axis=1))}))
    tb = np.array([(t, b) for t in rows for b in rows if b - t >= MIN_SIDE * h])
    lr = np.array([(l, r) for l in cols for r in cols if r - l >= MIN_SIDE * w])
    if len(tb) == 0 or len(lr) == 0:
        return None
    t, b = tb[:, :1], tb[:, 1:]  # [TB, 1]
    l, r = lr[:, 0][None, :], lr[:, 1][None, :]  # [1, LR]
    height, width = (b - t).astype(float), (r - l).astype(float)
    lc, rc = np.minimum(l, w - 1), np.minimum(r, w - 1)  # a border side indexes nothing real
    tc, bc = np.minimum(t, h - 1), np.minimum(b, h - 1)
    # (edge pixels along each inner side, whether the side is inner, its length)
    sides = [
        (cv[b, lc] - cv[t, lc], np.broadcast_to(l > 0, (len(tb), len(lr))), height),
        (cv[b, rc] - cv[t, rc], np.broadcast_to(r < w, (len(tb), len(lr))), height),
        (ch[r, tc] - ch[l, tc], np.broadcast_to(t > 0, (len(tb), len(lr))), width),
        (ch[r, bc] - ch[l, bc], np.broadcast_to(b < h, (len(tb), len(lr))), width),
    ]
    weakest = np.ones((len(tb), len(lr)))
    supported = np.zeros((len(tb), len(lr)))
    inner_length = np.zeros((len(tb), len(lr)))
    inner_sides = np.zeros((len(tb), len(lr)), int)
    for got, inner, length in sides:
        weakest = np.where(inner, np.minimum(weakest, got / length), weakest)
        supported += np.where(inner, got, 0.0)
        inner_length += np.where(inner, length, 0.0)
        inner_sides += inner
    area = height * width
    ia = np.pad(alive.cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))
    inside = (ia[b, r] - ia[t, r] - ia[b, l] + ia[t, l]) / max(float(ia[-1, -1]), 1e-9)
    concentration = inside - area / (h * w)

    closed = (inner_sides >= 2) & (weakest >= MIN_SIDE_SUPPORT) & (area <= MAX_AREA * h * w)
    if not closed.any():
        return None
    score = np.where(closed, concentration + SIDE_BONUS * inner_sides, -np.inf)
    i, j = np.unravel_index(int(np.argmax(score)), score.shape)
    if concentration[i, j] < MIN_CONCENTRATION:
        geometric = closed & (inner_sides >= 3) & (concentration >= 0)
        if not geometric.any():
            return None
        share = supported / np.maximum(inner_length, 1.0)
        i, j = np.unravel_index(int(np.argmax(np.where(geometric, share, -1.0))), score.shape)
    return int(tb[i, 0]), int(lr[j, 0]), int(tb[i, 1]), int(lr[j, 1])


def _cumulative(edge: np.ndarray) -> np.ndarray:
    """bool [L, P] -> [L+1, P] running counts along axis 0 of the edge, widened by one position
    along axis 1 (a border resampled to the half-size grid can straddle two columns)."""
    wide = edge.copy()
    wide[:, 1:] |= edge[:, :-1]
    wide[:, :-1] |= edge[:, 1:]
    return np.concatenate([np.zeros((1, edge.shape[1])), np.cumsum(wide, axis=0)])


def _peaks(profile: np.ndarray) -> list[int]:
    """Positions of the strongest local maxima of an edge profile (share of the line that is
    edge), at least 10% and away from the frame border."""
    p = profile
    idx = [i for i in range(2, len(p) - 2) if p[i] >= p[i - 1] and p[i] >= p[i + 1] and p[i] > 0.1]
    idx.sort(key=lambda i: -p[i])
    return idx[:CANDIDATE_LINES]


def _trim_flat(
    rect: tuple[int, int, int, int], motion: np.ndarray, detail: np.ndarray
) -> tuple[int, int, int, int]:
    """Shrink the rectangle past border rows / columns that are flat (padding)."""
    t, l, b, r = rect
    flat = (motion < FLAT) & (detail < FLAT)
    while b - t > 2 and flat[t, l:r].mean() > 0.95:
        t += 1
    while b - t > 2 and flat[b - 1, l:r].mean() > 0.95:
        b -= 1
    while r - l > 2 and flat[t:b, l].mean() > 0.95:
        l += 1
    while r - l > 2 and flat[t:b, r - 1].mean() > 0.95:
        r -= 1
    return t, l, b, r
