"""Helpers for the indexer tests: real shard processes on free loopback ports, and synthetic
videos as features.

Synthetic features stand in for extraction where the test is about storage and placement, not
vision: a "scene" is a seeded sequence of unit descriptors; a copy is the same sequence with a
little noise (cosine ~0.97 per frame), so the real alignment and decision code sees a clear copy,
and unrelated seeds are near-orthogonal.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import numpy as np

from vdup.catalog.types import VideoRecord
from vdup.devstack.stack import ServiceProcess, shard_process
from vdup.features.preprocess import sha256_of
from vdup.features.types import VideoFeatures


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scene(seed: int, n: int = 8, copy: int = 0, noise: float = 0.25) -> VideoFeatures:
    """Features of scene ``seed``; ``copy`` > 0 gives a distinct noisy copy of it."""
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((n, 512)).astype(np.float32)
    if copy:
        f = f + noise * np.random.default_rng(10_000 * copy + seed).standard_normal(
            (n, 512)
        ).astype(np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    empty = np.zeros((0, 512), np.float32)
    audio = np.random.default_rng(seed + 77).standard_normal((2 * n, 128)).astype(np.float32)
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    data = f"scene {seed} copy {copy}".encode()
    return VideoFeatures(
        timestamps=np.arange(n, dtype=np.float32),
        frames=f,
        flipped=f[:, ::-1].copy(),
        region=empty,
        region_flipped=empty,
        audio=audio,
        duration_s=float(n),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def payload(seed: int, copy: int = 0) -> bytes:
    """The "file bytes" that ``FeatureExtractor`` maps to ``scene(seed, copy=copy)``."""
    return f"scene {seed} copy {copy}".encode()


class FeatureExtractor:
    """An ``Extractor`` for synthetic payloads: parses ``payload`` bytes back into features."""

    def extract(self, data: bytes) -> VideoFeatures:
        _, seed, _, copy = data.decode().split()
        return scene(int(seed), copy=int(copy))

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        pass


def record(vid: str, seed: int = 0, created_at: float = 0.0) -> VideoRecord:
    return VideoRecord(
        vid, vid, f"sha-{vid}", False, "", "", 0.0, "", 8.0, 8, created_at or float(seed)
    )


class Shards:
    """N shard processes; ``restart(i)`` keeps shard i's port and data directory."""

    def __init__(
        self, root: Path, n: int, index_factory: str | None = None, env: dict | None = None
    ) -> None:
        self.root = root
        self.procs: list[ServiceProcess] = [
            shard_process(
                i,
                free_port(),
                root / f"shard-{i}",
                index_factory=index_factory,
                log_path=root / "logs" / f"shard-{i}.log",
                env=env,
            )
            for i in range(n)
        ]

    @property
    def urls(self) -> list[str]:
        return [p.ready_url.removesuffix("/readyz") for p in self.procs]

    def start(self) -> Shards:
        for p in self.procs:
            p.start()
        for p in self.procs:
            p.wait_ready(60)
        return self

    def restart(self, i: int) -> float:
        """Start shard i again (after stop/kill); returns seconds to ready."""
        return self.procs[i].start().wait_ready(60)

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


class Cached:
    """Extracts each distinct file once; both catalogs then see identical features."""

    def __init__(self, extractor) -> None:
        self.extractor, self.seen = extractor, {}

    def extract(self, data: bytes):
        key = sha256_of(data)
        if key not in self.seen:
            self.seen[key] = self.extractor.extract(data)
        return self.seen[key]

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        pass
