"""What the catalog stores about a video, and the small interface every catalog implements.

The embedded mode uses ``LocalCatalog`` (one SQLite file plus one FAISS index in a directory);
the sharded mode uses ``vdup.indexer.client.ShardedCatalog``, which speaks to indexer shards that
each run a ``LocalCatalog``. The checker does not know which one it has.

Why ids are strings: they come from clients (Yappy sends UUIDs, others send their own keys).
FAISS row ids are internal integers; the store maps them to (video id, time, view).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

from vdup.features.types import VideoFeatures
from vdup.matching.decide import Candidate


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


class Catalog(Protocol):
    def get(self, video_id: str) -> VideoRecord | None: ...

    def find_sha256(self, sha256: str) -> VideoRecord | None: ...

    def search(self, features: VideoFeatures, k: int, max_candidates: int) -> list[Candidate]:
        """Candidates for ``features``: the videos whose rows are among the ``k`` nearest of any
        query row, best ``max_candidates`` by their best row similarity."""
        ...

    def add(self, record: VideoRecord, features: VideoFeatures | None) -> None:
        """Durably add ``record`` (and its descriptors). Returns only once it is durable."""
        ...

    def delete(self, video_id: str) -> bool: ...

    def list(self, limit: int = 100, after: str = "") -> list[VideoRecord]: ...

    def stats(self) -> dict: ...

    def close(self) -> None: ...
