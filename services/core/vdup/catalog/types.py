"""What the catalog stores about a video, and the small interface every catalog implements.

The embedded mode uses ``LocalCatalog`` (one SQLite file plus one FAISS index in a directory);
the sharded mode uses ``vdup.indexer.client.ShardedCatalog``, which speaks to indexer shards that
each run a ``LocalCatalog``. The checker does not know which one it has.

Why ids are strings: they come from clients (Yappy sends UUIDs, others send their own keys).
FAISS row ids are internal integers; the store maps them to (video id, time, view).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Protocol

import numpy as np

from vdup.features.types import AUDIO_DIM, DIM, VideoFeatures
from vdup.matching.decide import Candidate
from vdup.matching.explain import Evidence


@dataclass
class VideoRecord:
    """One catalog entry. root_id is the first upload of the content (itself for an original);
    duplicate_for is '' for an original; created_at is a Unix time, s."""

    video_id: str
    root_id: str
    sha256: str
    is_duplicate: bool
    duplicate_for: str
    matched_video: str
    score: float
    path: str
    duration_s: float
    frames: int
    created_at: float
    source: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def as_row(self) -> tuple:
        """The fields in ``RECORD_FIELDS`` order, as both stores' ``videos`` tables hold them."""
        return tuple(getattr(self, f) for f in RECORD_FIELDS)

    @staticmethod
    def from_row(row: Sequence) -> VideoRecord:
        """The record of a ``videos`` row read in ``RECORD_FIELDS`` order (SQLite or PostgreSQL)."""
        return VideoRecord(
            video_id=row[0],
            root_id=row[1],
            sha256=row[2],
            is_duplicate=bool(row[3]),
            duplicate_for=row[4],
            matched_video=row[5],
            score=float(row[6]),
            path=row[7],
            duration_s=float(row[8]),
            frames=int(row[9]),
            created_at=float(row[10]),
            source=row[11],
        )


#: The record's columns, in the order of the ``videos`` tables and of ``as_row``/``from_row``.
RECORD_FIELDS = tuple(f.name for f in fields(VideoRecord))


@dataclass
class StoredRows:
    """What the catalog stores for one video's frames: descriptors float16/float32 [r, 512]
    (L2-normalised; stored as float16), views int8 [r] (0 whole frame, 2 content region),
    times float32 [r] s, audio float16/float32 [w, 128]."""

    descriptors: np.ndarray
    views: np.ndarray
    times: np.ndarray
    audio: np.ndarray

    def __post_init__(self) -> None:
        r = self.descriptors.shape[0]
        if self.descriptors.shape != (r, DIM) or r == 0:
            raise ValueError(f"descriptors must be [r>0, {DIM}], got {self.descriptors.shape}")
        if self.views.shape != (r,) or self.times.shape != (r,):
            raise ValueError(
                f"views and times must be [{r}], got {self.views.shape}, {self.times.shape}"
            )
        if self.audio.ndim != 2 or self.audio.shape[1] != AUDIO_DIM:
            raise ValueError(f"audio must be [w, {AUDIO_DIM}], got {self.audio.shape}")

    @classmethod
    def from_features(cls, features: VideoFeatures) -> StoredRows:
        vecs, views = features.stored_views()
        times = np.tile(features.timestamps, len(vecs) // len(features.timestamps))
        return cls(vecs, views, times.astype(np.float32), features.audio)


class Catalog(Protocol):
    def get(self, video_id: str) -> VideoRecord | None: ...

    def find_sha256(self, sha256: str) -> VideoRecord | None: ...

    def search(self, features: VideoFeatures, k: int, max_candidates: int) -> list[Candidate]:
        """Candidates for ``features``: the videos whose rows are among the ``k`` nearest of any
        query row, best ``max_candidates`` by their best row similarity."""
        ...

    def add(
        self,
        record: VideoRecord,
        features: VideoFeatures | None,
        *,
        evidence: Evidence | None = None,
    ) -> VideoRecord:
        """Durably add ``record`` (and its descriptors, and with a review store its thumbnails
        and the decision's ``evidence``); returns, once it is durable, the record as stored. That is ``record`` itself unless the catalog settled a race: two replicas
        adding the same new content at once end as one original and one copy, and the stored
        record of the later one then names the other. ``record`` is never changed."""
        ...

    def delete(self, video_id: str) -> bool: ...

    def list(self, limit: int = 100, after: str = "") -> list[VideoRecord]: ...

    def stats(self) -> dict: ...

    def close(self) -> None: ...
