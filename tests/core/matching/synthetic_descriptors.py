"""Synthetic descriptor sequences for the matching tests: no model, no media, pure numpy.

A "scene" is a static component (what stays: the room, the background) plus a smooth random
walk in descriptor space (what moves: people, the camera), defined on a fine time grid and
sampled at any times. A copy samples the same scene, possibly at another speed and offset, with
an edit (a fixed offset vector: an overlay, a colour change) and per-frame noise. A look-alike
shares the static component and has its own walk: another recording of the same room.
"""

from __future__ import annotations

import numpy as np

from vdup.features.types import AUDIO_DIM, DIM, VideoFeatures
from vdup.matching.decide import Candidate

GRID_S = 0.05


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class Scene:
    """static: [DIM]; walk: [T, DIM] on a GRID_S grid covering ``duration_s``."""

    def __init__(
        self,
        seed: int,
        duration_s: float = 12.0,
        motion: float = 1.0,
        static: np.ndarray | None = None,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.static = rng.normal(size=DIM) if static is None else static
        steps = int(duration_s / GRID_S) + 2
        # a smooth walk: integrated noise, so nearby moments look alike and far ones do not
        self.walk = np.cumsum(rng.normal(size=(steps, DIM)), axis=0) * (0.1 * motion)
        self.duration_s = duration_s

    def at(self, t: np.ndarray) -> np.ndarray:
        """Raw (unnormalised) descriptors at times ``t`` (s)."""
        pos = np.clip(np.asarray(t) / GRID_S, 0, len(self.walk) - 1.001)
        i = pos.astype(int)
        w = (pos - i)[:, None]
        return self.static + (1 - w) * self.walk[i] + w * self.walk[i + 1]


def sample(
    scene: Scene, t: np.ndarray, edit: np.ndarray | None = None, noise: float = 0.0, seed: int = 0
) -> np.ndarray:
    """L2-normalised descriptors of ``scene`` at source times ``t``, plus an edit and noise."""
    x = scene.at(t)
    scale = np.linalg.norm(x, axis=1, keepdims=True)
    if edit is not None:
        x = x + edit * scale
    if noise:
        x = x + np.random.default_rng(seed).normal(size=x.shape) * noise * scale / np.sqrt(DIM)
    return unit(x)


def edit_vector(seed: int, strength: float) -> np.ndarray:
    """A fixed direction of norm ``strength`` (relative to a descriptor's norm)."""
    return unit(np.random.default_rng(seed).normal(size=DIM)) * strength


def mirror(x: np.ndarray) -> np.ndarray:
    """A stand-in for the mirrored view: a fixed involutive permutation of the dimensions."""
    return np.ascontiguousarray(x[:, ::-1])


def features(
    desc: np.ndarray,
    times: np.ndarray,
    audio: np.ndarray | None = None,
    region: np.ndarray | None = None,
    sha: str = "x",
) -> VideoFeatures:
    empty = np.zeros((0, DIM), np.float32)
    return VideoFeatures(
        timestamps=np.asarray(times, np.float32),
        frames=unit(desc),
        flipped=unit(mirror(desc)),
        region=empty if region is None else unit(region),
        region_flipped=empty if region is None else unit(mirror(region)),
        audio=np.zeros((0, AUDIO_DIM), np.float32) if audio is None else unit(audio),
        duration_s=float(times[-1]) + 0.5,
        sha256=sha,
    )


def candidate(
    video_id: str, f: VideoFeatures, root_id: str | None = None, retrieval: float = 1.0
) -> Candidate:
    desc, views = f.stored_views()
    times = np.tile(f.timestamps, len(desc) // len(f.timestamps))
    return Candidate(
        video_id,
        root_id or video_id,
        desc.astype(np.float16).astype(np.float32),
        views,
        times.astype(np.float32),
        f.audio,
        f.duration_s,
        retrieval,
    )


def soundtrack(seed: int, windows: int) -> np.ndarray:
    """Audio window descriptors [w, AUDIO_DIM] that change from window to window."""
    return unit(np.random.default_rng(seed).normal(size=(windows, AUDIO_DIM)))
