"""The features of one video, as every part of vdup exchanges them.

``VideoFeatures`` is what an extractor (in process or Triton) returns and what the catalog stores.
Views: ``frames`` describes each sampled frame whole; ``flipped`` the same frames mirrored (a
flipped copy of a video matches its original through it); ``region`` the content box found by
``vdup.media.region`` (empty when none was found), ``region_flipped`` that box mirrored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vdup.media.thumbs import Thumbnails as Thumbnails  # re-exported: matching reads it here

DIM = 512
AUDIO_DIM = 128

#: Defaults of the ``distinct_rows`` selection (docs/benchmarks.md, "Frames kept per video"):
#: rows indexed per video and query rows sent to search.
INDEX_MAX_SIM = 0.8
QUERY_MAX_SIM = 0.8


def distinct_rows(descriptors: np.ndarray, max_sim: float) -> np.ndarray:
    """Indices (int64, ascending) of the rows worth indexing or searching: scene representatives.

    descriptors: float32/float16 [r, 512], L2-normalised, in time order (views one after the
    other). A row is kept unless its cosine similarity to a row already kept is >= ``max_sim``,
    so a static shot of 30 frames keeps one row and a cut keeps the first frame of each scene.
    ``max_sim`` >= 1 keeps every row. The first row is always kept. Greedy, O(r * kept).
    """
    r = len(descriptors)
    if max_sim >= 1.0 or r <= 1:
        return np.arange(r, dtype=np.int64)
    d = np.asarray(descriptors, np.float32)
    kept = [0]
    for i in range(1, r):
        if float(np.max(d[kept] @ d[i])) < max_sim:
            kept.append(i)
    return np.asarray(kept, np.int64)


@dataclass
class VideoFeatures:
    """timestamps: float32 [n] s; frames, flipped: float32 [n, 512] L2-normalised SSCD;
    region, region_flipped: float32 [n, 512] or [0, 512]; audio: float32 [w, 128], window i
    covering [0.5 i, 0.5 i + 1) s; duration_s: s; sha256: hex digest of the file's bytes."""

    timestamps: np.ndarray
    frames: np.ndarray
    flipped: np.ndarray
    region: np.ndarray
    region_flipped: np.ndarray
    audio: np.ndarray
    duration_s: float
    sha256: str
    width: int = 0
    height: int = 0
    thumbnails: Thumbnails = field(default_factory=Thumbnails.empty)

    def __post_init__(self) -> None:
        n = len(self.timestamps)
        assert n > 0, "a video has at least one sampled frame"
        assert self.frames.shape == (n, DIM) and self.flipped.shape == (n, DIM)
        assert self.region.shape in ((0, DIM), (n, DIM))
        assert self.region_flipped.shape == self.region.shape
        assert self.audio.ndim == 2 and self.audio.shape[1] == AUDIO_DIM
        for a in (self.frames, self.flipped, self.region, self.region_flipped, self.audio):
            assert a.dtype == np.float32

    @property
    def has_region(self) -> bool:
        return self.region.shape[0] > 0

    def stored_views(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows a catalog indexes for this video: (descriptors [r, 512], view ids [r]).

        View 0 is the whole frame, view 2 the content region (flips are only needed on the query
        side: mirror(a)·b = a·mirror(b)).
        """
        if self.has_region:
            desc = np.concatenate([self.frames, self.region])
            views = np.repeat(np.array([0, 2], np.int8), len(self.timestamps))
        else:
            desc, views = self.frames, np.zeros(len(self.timestamps), np.int8)
        return np.ascontiguousarray(desc), views

    def search_rows(self, max_sim: float = 1.0) -> np.ndarray:
        """float32 [q', 512]: the query views' scene representatives (``distinct_rows``), the
        rows a catalog search sends to FAISS; the aligner still compares every view."""
        query, _ = self.query_views()
        return np.ascontiguousarray(query[distinct_rows(query, max_sim)])

    def query_views(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows used to search: (descriptors [q, 512], view ids [q]); views 0..3 are frames,
        flipped, region, region_flipped."""
        parts = [self.frames, self.flipped]
        ids = [0, 1]
        if self.has_region:
            parts += [self.region, self.region_flipped]
            ids += [2, 3]
        n = len(self.timestamps)
        return (
            np.ascontiguousarray(np.concatenate(parts)),
            np.repeat(np.array(ids, np.int8), n),
        )
