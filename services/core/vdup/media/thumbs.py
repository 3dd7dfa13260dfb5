"""Thumbnails for people: a few small JPEGs of the frames already sampled for the descriptors.

Made from the S x S RGB frames the decoder hands on (``vdup.media.decode``: the whole frame
squashed into a square, upright), inside the one pre-processing path
(``vdup.features.preprocess.prepare``), so no frame is decoded twice and the embedded extractor
and Triton's ``video_decode`` give the same bytes. Each one is scaled back to the video's aspect
ratio, ``THUMB_LONG_SIDE`` px on its long side, with FFmpeg's swscale, and encoded by FFmpeg's
``mjpeg`` encoder (baseline JPEG, 4:2:0, full range: what every browser shows), through PyAV.

Why these settings: at ``QUALITY`` 3 (FFmpeg's ``-q:v`` scale) the dev clips' thumbnails weigh
3.1 KB median, 4.4 KB at the 90th percentile, 6.7 KB at most, at 38.5 dB PSNR against the
scaled frame (2: 4.0 KB, 40.0 dB; 5: 2.3 KB, 36.5 dB). The encoder runs on one thread: with
slice threads FFmpeg writes one restart interval per thread, so the bytes would depend on the
machine's core count. Then a codec context costs ~0.05 ms to open, so each thumbnail has its own,
and a thumbnail ~0.5 ms in all (12 per video: ~6 ms).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

#: Long side of a thumbnail, px.
THUMB_LONG_SIDE = 160


@dataclass(frozen=True)
class Thumbnails:
    """Small JPEGs of a few sampled frames, for people (the review page), never for matching.

    times: float32 [k] s, ascending, each one of the video's sampled timestamps; jpegs: k JPEG
    files, upright and of the video's aspect ratio (``vdup.media.thumbs``). k may be 0."""

    times: np.ndarray
    jpegs: tuple[bytes, ...]

    def __post_init__(self) -> None:
        assert self.times.ndim == 1 and len(self.times) == len(self.jpegs)

    @staticmethod
    def empty() -> Thumbnails:
        return Thumbnails(np.zeros(0, np.float32), ())

    def nearest(self, t: float) -> int:
        """Index of the thumbnail closest in time to ``t`` s; -1 when there is none."""
        if not len(self.times):
            return -1
        return int(np.argmin(np.abs(self.times - t)))


#: Thumbnails kept per video by default (``Settings.thumbnails``).
DEFAULT_COUNT = 12
#: mjpeg quantiser scale, 2 (best, largest) .. 31 (FFmpeg's ``-q:v``).
QUALITY = 3

_PIX_FMT = "yuvj420p"  # full-range 4:2:0, what the mjpeg encoder takes


def thumbnail_rows(n: int, count: int) -> np.ndarray:
    """Indices (int64 [min(n, count)], ascending, unique) of the frames, out of ``n`` sampled
    ones in time order, that get a thumbnail: spread evenly, the first and the last included
    when two or more are asked; one alone is the middle frame. ``count`` >= n takes all."""
    k = max(0, min(int(n), int(count)))
    if k == 0:
        return np.zeros(0, np.int64)
    if k == 1:
        return np.array([(n - 1) // 2], np.int64)
    # step (n - 1) / (k - 1) >= 1, so rounding half up keeps the rows distinct
    return np.floor(np.linspace(0, n - 1, k) + 0.5).astype(np.int64)


def thumbnail_size(width: int, height: int, long_side: int = THUMB_LONG_SIDE) -> tuple[int, int]:
    """(width, height) px of the thumbnail of a ``width`` x ``height`` video (its display size,
    upright): the aspect kept, ``long_side`` on the long side, both even (4:2:0 chroma) and at
    least 2. A video of unknown size (0) gets a square."""
    if width <= 0 or height <= 0:
        width = height = 1
    scale = long_side / max(width, height)
    return _even(width * scale), _even(height * scale)


def encode_jpeg(
    rgb: np.ndarray,
    width: int,
    height: int,
    long_side: int = THUMB_LONG_SIDE,
    quality: int = QUALITY,
) -> bytes:
    """One thumbnail: a baseline JPEG file of the frame ``rgb`` (uint8 [S, S, 3], upright, the
    whole frame squashed into the square) scaled back to the aspect of a ``width`` x ``height``
    video (its display size, after rotation), ``long_side`` px on its long side
    (``thumbnail_size``). ``quality``: mjpeg's quantiser scale, 2..31, lower is better."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected uint8 [h, w, 3] RGB, got {rgb.dtype} {rgb.shape}")
    if not 2 <= quality <= 31:
        raise ValueError(f"quality must be in 2..31, not {quality}")
    w, h = thumbnail_size(width, height, long_side)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    small = frame.reformat(w, h, format=_PIX_FMT, interpolation="AREA")
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, _PIX_FMT
    ctx.time_base = Fraction(1, 1)
    ctx.thread_count = 1  # deterministic bytes (see the module docstring)
    ctx.qmin = ctx.qmax = quality
    packets = ctx.encode(small)  # an intra-only encoder: the packet comes out at once
    packets += ctx.encode(None)
    data = b"".join(bytes(p) for p in packets)
    if not (data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")):
        raise RuntimeError("the mjpeg encoder did not produce a whole JPEG file")
    return data


def make_thumbnails(
    frames: np.ndarray,
    timestamps: np.ndarray,
    width: int,
    height: int,
    count: int,
    long_side: int = THUMB_LONG_SIDE,
    quality: int = QUALITY,
) -> Thumbnails:
    """Thumbnails of ``count`` of the sampled ``frames`` (uint8 [n, S, S, 3], upright, in time
    order, taken at ``timestamps`` float32 [n] s) of a ``width`` x ``height`` video (display
    size): the rows ``thumbnail_rows(n, count)``, at their own timestamps. ``count`` 0 gives
    ``Thumbnails.empty()``."""
    assert len(frames) == len(timestamps), (frames.shape, timestamps.shape)
    rows = thumbnail_rows(len(frames), count)
    if not len(rows):
        return Thumbnails.empty()
    jpegs = tuple(encode_jpeg(frames[i], width, height, long_side, quality) for i in rows)
    return Thumbnails(np.asarray(timestamps, np.float32)[rows], jpegs)


def _even(x: float) -> int:
    return max(2, 2 * int(np.floor(x / 2 + 0.5)))
