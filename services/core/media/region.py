"""Find the region of the frame where the video's own content lives.

Why: re-uploads often place the copied video inside something else: a 9:16 frame over a blurred
copy of itself, solid padding, a screenshot of a feed, another video. A whole-frame descriptor of
such a frame is dominated by the surroundings (similarity falls to 0.1-0.3), so we also describe
the content region on its own.

The content is where pixels are both *detailed* (spatial gradient: blur and solid padding have
none) and *alive* (temporal change: a screenshot or a still border has none). The box is the
densest run of such rows and columns. It is a heuristic with a clear failure mode (a region over
a moving, detailed background is not found), and the whole frame is always described as well.
"""

from __future__ import annotations

import numpy as np

MIN_SIDE = 0.25  # smallest box side kept, as a fraction of the frame side
MAX_AREA = 0.80  # a box covering more than this of the frame adds nothing over the full frame


def content_box(frames: np.ndarray) -> tuple[int, int, int, int] | None:
    """frames: uint8 [n, H, W, 3]. Returns (top, left, bottom, right) in px, or None.

    None when there are fewer than 3 frames, nothing moves, or the box would cover more than
    ``MAX_AREA`` of the frame or have a side under ``MIN_SIDE`` of it.
    """
    if frames.shape[0] < 3:
        return None
    gray = frames.astype(np.float32).mean(axis=3)  # [n, H, W]
    n, h, w = gray.shape
    motion = gray.std(axis=0)  # [H, W]
    gx = np.abs(np.diff(gray, axis=2, prepend=gray[:, :, :1])).mean(axis=0)
    gy = np.abs(np.diff(gray, axis=1, prepend=gray[:, :1, :])).mean(axis=0)
    detail = gx + gy
    if motion.max() < 4.0:
        return None
    alive = (motion > max(3.0, 0.25 * np.percentile(motion, 95))) & (detail > 2.0)
    rows = _densest_run(alive.mean(axis=1))
    cols = _densest_run(alive.mean(axis=0))
    if rows is None or cols is None:
        return None
    top, bottom = rows
    left, right = cols
    bh, bw = bottom - top, right - left
    if bh < MIN_SIDE * h or bw < MIN_SIDE * w or (bh * bw) > MAX_AREA * h * w:
        return None
    return top, left, bottom, right


def _densest_run(profile: np.ndarray) -> tuple[int, int] | None:
    """The longest run of entries above 40% of the profile's 90th percentile: (start, stop)."""
    ref = np.percentile(profile, 90)
    if ref <= 0.02:
        return None
    on = profile > 0.4 * ref
    best, start = None, None
    for i, v in enumerate(np.append(on, False)):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if best is None or i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best
