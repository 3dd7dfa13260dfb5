"""Pre-processing shared by the embedded extractor and Triton's models: decoded video in, model
inputs out, and model outputs back into ``VideoFeatures``.

There is exactly one copy of this logic. ``video_decode`` (Triton) calls ``decode_for_models``;
the embedded extractor calls it too and then ``assemble``. Both run the same ONNX graphs on the
arrays these functions produce, so both paths give the same features. The review page's
thumbnails are made here too, from the frames already decoded (``vdup.media.thumbs``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import av
import numpy as np

from vdup.features.types import AUDIO_DIM, Thumbnails, VideoFeatures
from vdup.media.decode import DecodedVideo, MediaLimits, SamplingConfig, decode_video
from vdup.media.region import content_box
from vdup.media.thumbs import make_thumbnails


@dataclass
class ModelInputs:
    """images: uint8 [m, S, S, 3] = the n sampled frames, then (when a content box was found)
    the same n frames cropped to it; timestamps: float32 [n] s; audio: float32 [t] mono 16 kHz;
    box: int32 [4] (top, left, bottom, right) px in the S x S frame, all -1 when none;
    thumbnails: JPEGs of some of the n frames, for people (``vdup.media.thumbs``)."""

    images: np.ndarray
    timestamps: np.ndarray
    audio: np.ndarray
    box: np.ndarray
    duration_s: float
    width: int
    height: int
    thumbnails: Thumbnails = field(default_factory=Thumbnails.empty)


def decode_for_models(
    data: bytes, sampling: SamplingConfig, limits: MediaLimits, thumbnails: int = 0
) -> ModelInputs:
    """Decode ``data`` and build the descriptor model's inputs (raises BadMedia)."""
    decoded = decode_video(data, sampling, limits)
    return prepare(decoded, thumbnails)


def prepare(decoded: DecodedVideo, thumbnails: int = 0) -> ModelInputs:
    """The models' inputs from ``decoded``, with ``thumbnails`` thumbnails of its frames
    (``vdup.media.thumbs.make_thumbnails``; 0 = none)."""
    frames = decoded.frames
    box = content_box(frames)
    images = frames
    if box is not None:
        top, left, bottom, right = box
        size = frames.shape[1]
        crops = np.stack([_resize(f[top:bottom, left:right], size) for f in frames])
        images = np.concatenate([frames, crops])
    return ModelInputs(
        images=np.ascontiguousarray(images),
        timestamps=decoded.timestamps.astype(np.float32),
        audio=decoded.audio.astype(np.float32, copy=False),
        box=np.array(box if box is not None else (-1, -1, -1, -1), np.int32),
        duration_s=decoded.duration_s,
        width=decoded.width,
        height=decoded.height,
        thumbnails=make_thumbnails(
            frames, decoded.timestamps, decoded.width, decoded.height, thumbnails
        ),
    )


def assemble(
    inputs: ModelInputs,
    embeddings: np.ndarray,
    audio_embeddings: np.ndarray,
    sha256: str,
) -> VideoFeatures:
    """embeddings: float32 [2m, 512], the descriptors of ``inputs.images`` then of their mirrors
    (``vdup.features.extractor.decode_and_describe``); audio_embeddings:
    float32 [w, 128] (w may be 0)."""
    n = len(inputs.timestamps)
    m = inputs.images.shape[0]
    assert embeddings.shape[0] == 2 * m, (embeddings.shape, m)
    plain, mirrored = embeddings[:m], embeddings[m:]
    empty = np.zeros((0, embeddings.shape[1]), np.float32)
    has_region = m == 2 * n
    return VideoFeatures(
        timestamps=inputs.timestamps,
        frames=_f32(plain[:n]),
        flipped=_f32(mirrored[:n]),
        region=_f32(plain[n:]) if has_region else empty,
        region_flipped=_f32(mirrored[n:]) if has_region else empty,
        audio=_f32(audio_embeddings.reshape(-1, AUDIO_DIM)),
        duration_s=float(inputs.duration_s),
        sha256=sha256,
        width=int(inputs.width),
        height=int(inputs.height),
        thumbnails=inputs.thumbnails,
    )


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [h, w, 3] -> [size, size, 3] with FFmpeg's swscale (bilinear)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    return frame.to_ndarray(width=size, height=size, format="rgb24")
