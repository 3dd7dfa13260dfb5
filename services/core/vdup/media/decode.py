"""Decode a video held in memory into sampled RGB frames and mono audio, with PyAV.

This is the one decode implementation: the embedded extractor calls it in process, and Triton's
``video_decode`` python model imports it unchanged. Nothing here touches the disk.

Why the sampling looks the way it does: decoding is the floor of the whole pipeline, and decoding
keyframes only costs a small fraction of a full decode (figures:
docs/benchmarks.md#design-choices-measured). So the sampler reads the container's keyframe index
first, takes every keyframe, and only where keyframes leave a gap longer than ``max_gap_s`` (or the
clip is too short to give ``min_frames``) does it decode the GOPs that contain the missing sample
times, and no others, each only up to its last sample time and, of the frames that no other frame
refers to (B-frames, two in three in a typical H.264 stream), only those next to a sample time.

Why the input is distrusted the way it is (docs/reliability.md): the bytes come from anyone.
FFmpeg only gets to open demuxers for video containers (``FORMATS``) and no protocol at all, so
a playlist or concat script cannot make it read local files or fetch URLs; MP4 sample tables are
checked before FFmpeg builds its index from them (``vdup.media.isobmff``); resolution, duration
and frame counts are checked from metadata before any frame is decoded, and again on every
decoded frame, because the bitstream can contradict the container (a 64x48 header over
16000x16000 frames); and at most ``max_sampled_frames`` frames are ever held, however many
keyframes a file has.
"""

from __future__ import annotations

import bisect
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import av
import av.error
import numpy as np
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.video.stream import VideoStream

from vdup.errors import BadMedia, MediaTooLarge
from vdup.media.isobmff import check_declared

#: on_frame(rgb uint8 [S, S, 3], t s): called for each sampled frame as it is decoded
OnFrame = Callable[[np.ndarray, float], None]

AVINDEX_KEYFRAME = 0x0001

#: Demuxers FFmpeg may use: video containers only. Anything else (images, bare audio, raw
#: elementary streams, which carry no timestamps to sample by, HLS and DASH playlists, concat
#: scripts, subtitle and text formats) is refused before it is parsed.
FORMATS = ("mov", "matroska", "avi", "flv", "mpegts", "mpeg", "asf", "ogg", "nut", "ivf")
#: Demuxer options: the format allow-list, and no protocol, so no demuxer opens another input.
_OPEN_OPTIONS = {"format_whitelist": ",".join(FORMATS), "protocol_whitelist": "none"}


@dataclass(frozen=True)
class MediaLimits:
    """Hard limits on what we agree to decode; checked from metadata first, then during decode.

    max_duration_s: longest video, s, declared or reached by a decoded frame's timestamp.
    max_width, max_height: largest frame, px, declared or decoded; FFmpeg also refuses to
        allocate any frame of more than max_width * max_height pixels.
    max_stream_frames: most frames a video track may declare.
    max_decoded_frames: most frames decoded (the decoding CPU bound).
    max_audio_s: most audio decoded, s (the rest is ignored); longer declared audio is refused.
    max_sampled_frames: most sampled frames held at once (memory: S * S * 3 bytes each, 150 KB
        at S = 224). A valid file needs fewer than ~500: keyframes are kept at most
        2 * ``max_frames`` per duration, gap-filling samples at most duration / ``max_gap_s``.
    """

    max_duration_s: float = 600.0
    max_width: int = 4096
    max_height: int = 4096
    max_stream_frames: int = 200_000
    max_decoded_frames: int = 20_000
    max_audio_s: float = 600.0
    max_sampled_frames: int = 1_000


@dataclass(frozen=True)
class SamplingConfig:
    """How frames and audio are sampled.

    frame_size: side of the square RGB frames handed on, px (aspect is squashed: edits re-frame
        and pad videos anyway, and a square input keeps batches uniform).
    max_gap_s: largest gap between two sampled frames, s, before GOPs are decoded to fill it.
    min_frames: fewest frames kept for a clip of any length (very short clips need them).
    max_frames: most frames kept; beyond it the samples are thinned evenly.
    audio_rate: mono sample rate of the returned audio, Hz.
    """

    frame_size: int = 224
    max_gap_s: float = 2.0
    min_frames: int = 12
    max_frames: int = 96
    audio_rate: int = 16_000


@dataclass
class DecodedVideo:
    """frames: uint8 [n, S, S, 3] RGB; timestamps: float32 [n] s from the start of the video;
    audio: float32 [m] mono in [-1, 1] at ``audio_rate`` Hz (m may be 0: no audio track)."""

    frames: np.ndarray
    timestamps: np.ndarray
    audio: np.ndarray
    audio_rate: int
    duration_s: float
    width: int
    height: int
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.timestamps)
        assert self.frames.ndim == 4 and self.frames.shape[0] == n and self.frames.shape[3] == 3
        assert self.frames.dtype == np.uint8 and self.audio.dtype == np.float32


def decode_video(
    data: bytes,
    sampling: SamplingConfig = SamplingConfig(),
    limits: MediaLimits = MediaLimits(),
    on_frame: Callable[[np.ndarray, float], None] | None = None,
    audio: bool = True,
) -> DecodedVideo:
    """Decode ``data`` (a whole video file) into sampled frames and mono audio.

    on_frame(rgb uint8 [S, S, 3], t s) is called for each sampled frame as soon as it is
    decoded, so a caller can start describing frames while decoding goes on; the returned
    frames are those, sorted by time and thinned to ``max_frames``. ``audio`` False leaves the
    audio out (empty), for a caller that runs ``decode_audio`` beside this on another core.
    Raises BadMedia for anything that is not a decodable video, MediaTooLarge past ``limits``.
    """
    return _opened(data, limits, lambda c: _decode(c, sampling, limits, on_frame, audio))


def decode_audio(
    data: bytes, sampling: SamplingConfig = SamplingConfig(), limits: MediaLimits = MediaLimits()
) -> np.ndarray:
    """The soundtrack of ``data`` alone: float32 [m] mono at ``sampling.audio_rate`` Hz, exactly
    ``decode_video(data).audio`` (m = 0 without an audio track), from a pass that demuxes and
    decodes nothing else. Raises as ``decode_video`` does on a file that is not a video."""
    return _opened(data, limits, lambda c: _decode_audio(c, sampling, limits))


def _opened[T](data: bytes, limits: MediaLimits, body: Callable[[InputContainer], T]) -> T:
    """``body(container)`` over ``data`` opened with the format allow-list, FFmpeg's and our
    errors mapped to BadMedia / MediaTooLarge, the container closed afterwards."""
    if not data:
        raise BadMedia("empty body: expected a video file")
    check_declared(data, limits)
    try:
        container = av.open(
            io.BytesIO(data),
            mode="r",
            container_options=_OPEN_OPTIONS,
            options=_codec_options(limits),
        )
    except (av.error.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise BadMedia(
            "not a readable video container: expected a video file such as MP4/MOV, WebM/MKV, "
            f"AVI, FLV or MPEG-TS (FFmpeg: {_reason(exc)})"
        ) from None
    try:
        return body(container)
    except (av.error.FFmpegError, ValueError, ZeroDivisionError, OverflowError) as exc:
        raise BadMedia(f"the video could not be decoded: {_reason(exc)}") from None
    except MemoryError:
        raise MediaTooLarge(
            "the video needs more memory to decode than this service allows"
        ) from None
    finally:
        container.close()


def _codec_options(limits: MediaLimits) -> dict[str, str]:
    """Decoder options: FFmpeg refuses to allocate a frame larger than the limits allow."""
    return {"max_pixels": str(limits.max_width * limits.max_height)}


def _reason(exc: Exception) -> str:
    text = (getattr(exc, "strerror", None) or str(exc)).strip() or type(exc).__name__
    return text.split(";")[0][:200]


def _decode(
    container: InputContainer,
    sampling: SamplingConfig,
    limits: MediaLimits,
    on_frame: OnFrame | None,
    with_audio: bool,
) -> DecodedVideo:
    vstream = _video_stream(container)
    ctx = vstream.codec_context
    if ctx is None:
        raise BadMedia("the video track's codec is unknown or not supported")
    ctx.options = _codec_options(limits)
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width <= 0 or height <= 0:
        raise BadMedia(
            f"the video track has invalid dimensions {width}x{height} (none declared, "
            f"or more pixels than {limits.max_width}x{limits.max_height})"
        )
    if width > limits.max_width or height > limits.max_height:
        raise MediaTooLarge(
            f"resolution {width}x{height} exceeds the limit {limits.max_width}x{limits.max_height}"
        )
    duration = _duration_s(container, vstream)
    if duration > limits.max_duration_s:
        raise MediaTooLarge(
            f"duration {duration:.1f} s exceeds the limit of {limits.max_duration_s:.0f} s"
        )
    if vstream.frames and vstream.frames > limits.max_stream_frames:
        raise MediaTooLarge(
            f"{vstream.frames} frames exceed the limit of {limits.max_stream_frames}"
        )
    astream = _audio_stream(container, limits)
    start = _start_s(vstream)
    keyframes = _index_keyframes(vstream, start)
    if len(keyframes) > limits.max_decoded_frames:  # every keyframe is decoded
        raise MediaTooLarge(
            f"{len(keyframes)} keyframes exceed the limit of {limits.max_decoded_frames} "
            "decoded frames"
        )
    targets = _plan_targets(keyframes, duration, sampling)
    vstream.thread_type = "SLICE"
    if targets is not None and len(targets) == 0:
        ctx.skip_frame = "NONKEY"

    frames, times, audio, decoded, frame_rotation = _run_decode(
        container,
        vstream,
        astream if with_audio else None,
        start,
        keyframes,
        targets,
        sampling,
        limits,
        on_frame,
        duration,
    )
    if not frames:
        raise BadMedia("no decodable video frames in the file")
    times_arr = np.asarray(times, dtype=np.float64)
    if duration <= 0:
        duration = float(times_arr.max()) + 1e-3
    keep = _thin(times_arr, sampling, duration)
    frame_arr = np.stack([frames[i] for i in keep])
    # The display matrix (FFmpeg 7 gives it on each frame); older muxers' 'rotate' tag else.
    rotation = frame_rotation or _rotation_tag(vstream)
    if abs(rotation) % 180 == 90:
        width, height = height, width
    return DecodedVideo(
        frames=frame_arr,
        timestamps=times_arr[keep].astype(np.float32),
        audio=audio,
        audio_rate=sampling.audio_rate,
        duration_s=float(duration),
        width=width,
        height=height,
        meta={
            "keyframes": len(keyframes),
            "kept_frames": len(times),
            "decoded_frames": decoded,
            "codec": ctx.name,
            "has_audio": astream is not None,
        },
    )


def _decode_audio(
    container: InputContainer, sampling: SamplingConfig, limits: MediaLimits
) -> np.ndarray:
    _video_stream(container)  # a file without a video track is refused here too
    astream = _audio_stream(container, limits)
    if astream is None:
        return np.zeros(0, np.float32)
    audio = _AudioCollector(sampling.audio_rate, limits.max_audio_s)
    for packet in container.demux(astream):
        if audio.full:
            break
        for aframe in packet.decode():
            audio.add(aframe)
    return audio.finish()


def _audio_stream(container: InputContainer, limits: MediaLimits) -> AudioStream | None:
    """The first audio track if its codec decodes here (else the video is checked without
    it); MediaTooLarge if it declares more than ``limits.max_audio_s``."""
    astream = container.streams.audio[0] if container.streams.audio else None
    if astream is not None and astream.codec_context is None:
        return None
    if astream is not None and astream.duration and astream.time_base:
        adur = float(astream.duration * astream.time_base)
        if adur > limits.max_audio_s:
            raise MediaTooLarge(
                f"audio of {adur:.1f} s exceeds the limit of {limits.max_audio_s:.0f} s"
            )
    return astream


def _video_stream(container: InputContainer) -> VideoStream:
    """The first video track that is a video, not a cover picture (audio files carry those)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise BadMedia("no video track in the file")


def _rotation_tag(vstream: VideoStream) -> int:
    try:
        return int(float(vstream.metadata.get("rotate", 0) or 0))
    except (TypeError, ValueError):
        return 0


def _duration_s(container: InputContainer, vstream: VideoStream) -> float:
    if vstream.duration and vstream.time_base:
        return float(vstream.duration * vstream.time_base)
    if container.duration:
        return float(container.duration) / 1_000_000
    return 0.0


def _start_s(vstream: VideoStream) -> float:
    if vstream.start_time is not None and vstream.time_base:
        return float(vstream.start_time * vstream.time_base)
    return 0.0


def _index_keyframes(vstream: VideoStream, start: float) -> list[float]:
    """Keyframe times from the container's index (mp4/mov have one; others may not): s, sorted."""
    try:
        entries = vstream.index_entries
    except (AttributeError, av.error.FFmpegError):
        return []
    tb = float(vstream.time_base or 0)
    if not entries or tb <= 0:
        return []
    return sorted(e.timestamp * tb - start for e in entries if e.flags & AVINDEX_KEYFRAME)


def _plan_targets(
    keyframes: list[float], duration: float, sampling: SamplingConfig
) -> list[float] | None:
    """Sample times (s) that keyframes leave uncovered; [] when keyframes suffice.

    None means the container has no keyframe index: decode sequentially and sample on a grid.
    Keyframes past ``duration`` are not planned around (a valid file has none; a file whose
    index runs past its duration would otherwise ask for millions of targets).
    """
    if not keyframes or duration <= 0:
        return None
    gap = min(sampling.max_gap_s, duration / max(sampling.min_frames, 1))
    points = [0.0, *(k for k in keyframes if k <= duration), duration]
    targets: list[float] = []
    for a, b in zip(points, points[1:]):
        if b - a > gap * 1.5:
            steps = math.ceil((b - a) / gap)
            targets.extend(a + (b - a) * i / steps for i in range(1, steps))
    return targets


def _run_decode(
    container: InputContainer,
    vstream: VideoStream,
    astream: AudioStream | None,
    start: float,
    keyframes: list[float],
    targets: list[float] | None,
    sampling: SamplingConfig,
    limits: MediaLimits,
    on_frame: OnFrame | None = None,
    duration: float = 0.0,
) -> tuple[list[np.ndarray], list[float], np.ndarray, int, int]:
    """One demux pass. Returns (frames as uint8 [S,S,3] list, times in s, audio float32 [m],
    frames decoded, the display rotation of the sampled frames in degrees counter-clockwise).

    With ``targets`` None every packet is read and the first frame past each point of a regular
    ``max_gap_s`` grid is kept. With ``targets`` given, keyframes are kept (but none closer than
    ``_key_spacing`` to the last kept one) and non-key packets are read only inside a GOP that
    holds a target, up to its last target; for each target the first frame at or after it
    (within half a frame) is kept. Either way a non-key frame far from the next sample time is
    decoded only if another frame refers to it (``_skip_unless_near``).
    Raises MediaTooLarge past ``limits`` (frames decoded or held, frame size, timestamps).
    """
    size = sampling.frame_size
    pending = sorted(targets or [])
    head = 0  # pending[head:] are the targets not reached yet
    frames: list[np.ndarray] = []
    times: list[float] = []
    audio = (
        _AudioCollector(sampling.audio_rate, limits.max_audio_s) if astream is not None else None
    )
    decoded = 0
    rotation = 0
    next_grid = 0.0
    next_key = -math.inf
    key_spacing = _key_spacing(duration, sampling)
    spaced = _spaced(keyframes, key_spacing)
    gop_has_target = gop_read = False  # this GOP holds a target ahead / held one at its start
    gop_end = math.inf
    ctx = vstream.codec_context
    # a rate under 1 fps is a lie (crafted timestamps) or a slideshow: half a second at most
    half_frame = min(0.5 / float(vstream.average_rate or 30), 0.5)
    streams = [vstream] + ([astream] if astream is not None else [])

    for packet in container.demux(streams):
        if astream is not None and audio is not None and packet.stream is astream:
            if not audio.full:
                for aframe in astream.decode(packet):
                    audio.add(aframe)
            continue
        if targets is not None and packet.dts is not None:
            if packet.is_keyframe and packet.pts is not None:
                t_key = float(packet.pts * packet.time_base) - start
                nxt = bisect.bisect_right(keyframes, t_key + 1e-6)
                gop_end = keyframes[nxt] if nxt < len(keyframes) else math.inf
                first = bisect.bisect_left(pending, t_key - 1e-6, lo=head)
                gop_read = gop_has_target = first < len(pending) and pending[first] < gop_end
                if not (gop_read or packet.is_corrupt or nxt == 0 or spaced[nxt - 1]):
                    continue  # a keyframe too close to the last kept one, needed by no target
            elif not (gop_has_target or (gop_read and packet.is_corrupt)):
                continue
        if targets != []:  # (keyframes only: skip_frame stays NONKEY)
            wanted, lo = (pending, head) if targets is not None else ([next_grid], 0)
            ctx.skip_frame = _skip_unless_near(packet, start, wanted, lo, half_frame)
        for frame in vstream.decode(packet):
            decoded += 1
            if decoded > limits.max_decoded_frames:
                raise MediaTooLarge(
                    f"more than {limits.max_decoded_frames} frames had to be decoded"
                )
            if frame.width > limits.max_width or frame.height > limits.max_height:
                raise MediaTooLarge(
                    f"a decoded frame of {frame.width}x{frame.height} exceeds the limit "
                    f"{limits.max_width}x{limits.max_height}"
                )
            if frame.pts is None:
                continue
            t = float(frame.pts * frame.time_base) - start
            if t > limits.max_duration_s:
                raise MediaTooLarge(
                    f"a frame at {t:.1f} s is past the limit of {limits.max_duration_s:.0f} s"
                )
            if targets is None:
                keep = t >= next_grid - half_frame
                if keep:
                    next_grid = t + sampling.max_gap_s
            else:
                keep = bool(frame.key_frame) and t >= next_key
                while head < len(pending) and pending[head] <= t + half_frame:
                    head += 1
                    keep = True
                if gop_has_target and (head == len(pending) or pending[head] >= gop_end):
                    gop_has_target = False  # the rest of this GOP holds no target
                if keep and frame.key_frame:
                    next_key = t + key_spacing
            if keep:
                if len(frames) >= limits.max_sampled_frames:
                    raise MediaTooLarge(
                        f"more than {limits.max_sampled_frames} frames would be sampled"
                    )
                rgb = _rgb(frame, size)
                rotation = rotation or int(getattr(frame, "rotation", 0) or 0)
                frames.append(rgb)
                times.append(t)
                if on_frame is not None:
                    on_frame(rgb, t)
    samples = audio.finish() if audio is not None else np.zeros(0, np.float32)
    order = sorted(range(len(times)), key=times.__getitem__)
    out_f: list[np.ndarray] = []
    out_t: list[float] = []
    for i in order:
        if out_t and times[i] - out_t[-1] < 1e-3:
            continue
        out_f.append(frames[i])
        out_t.append(times[i])
    return out_f, out_t, samples, decoded, rotation


#: How far (frames) past the next sample time a frame that nothing refers to is still decoded:
#: the first frame at or after it lies within one frame in a constant-rate stream.
NEAR_FRAMES = 1.5


def _skip_unless_near(
    packet: av.Packet, start: float, wanted: list[float], lo: int, half_frame: float
) -> Literal["DEFAULT", "NONREF"]:
    """The decoder's skip_frame for one video packet: "NONREF" for a non-key packet whose time is
    known and lies, for every sample time in ``wanted[lo:]`` (s, sorted), outside half a frame
    before it to ``NEAR_FRAMES`` frames after it: the decoder then drops the frame if no other frame
    refers to it (in a typical H.264 stream two in three) and still decodes it if one does. Else
    "DEFAULT": so the first frame at or after a sample time is always decoded, the samples are the
    very frames of a full decode at a fraction of its cost on long GOPs
    (docs/benchmarks.md#design-choices-measured), and a packet the demuxer flags corrupt (a short
    read: the file is cut short) is decoded whenever its GOP is, for FFmpeg to judge. Every pending
    time is looked at, not only the next one: frames come out of the decoder some packets late
    (B-frame reordering, and more with frame threads), so the next one may already lie behind the
    packets being fed."""
    if packet.is_keyframe or packet.is_corrupt or packet.pts is None:
        return "DEFAULT"
    t = float(packet.pts * packet.time_base) - start
    i = bisect.bisect_left(wanted, t - 2 * NEAR_FRAMES * half_frame, lo=lo)
    return "DEFAULT" if i < len(wanted) and wanted[i] - half_frame <= t else "NONREF"


def _key_spacing(duration: float, sampling: SamplingConfig) -> float:
    """Least time (s) between two kept keyframes: a run of dense keyframes (scene cuts, a
    short GOP) is sampled about once per ``max_gap_s / 2`` in a long clip, and at least
    4 * ``min_frames`` times over a short one; never more than 2 * ``max_frames`` times (the
    samples are thinned to ``max_frames`` at the end anyway). SSCD time is most of a check, so
    dense keyframes of a long clip are thinned; a short clip keeps its keyframes (figures:
    docs/benchmarks.md#design-choices-measured)."""
    dense = min(0.5 * sampling.max_gap_s, duration / (4 * max(sampling.min_frames, 1)))
    return max(duration / (2 * max(sampling.max_frames, 1)), dense)


def _spaced(keyframes: list[float], spacing: float) -> list[bool]:
    """Which keyframes (times s, sorted) the sampler keeps: each at least ``spacing`` s after
    the last kept one (the frame loop's own rule, planned from the index so that the others are
    not even decoded)."""
    kept, next_key = [], -math.inf
    for k in keyframes:
        kept.append(k >= next_key)
        if kept[-1]:
            next_key = k + spacing
    return kept


#: Input samples (per channel) gathered before one resampler call: resampling per AAC frame
#: (1024 samples) gives the same output at a higher cost
#: (docs/benchmarks.md#design-choices-measured).
AUDIO_CHUNK = 65_536


class _AudioCollector:
    """Decoded audio frames in, mono float32 chunks at ``rate`` Hz out, through an
    ``AudioFifo`` so that swresample works on large chunks. Up to ``max_s`` seconds of input are
    kept (``full`` says when to stop decoding audio). A change of sample format, layout or rate
    mid-stream flushes the chunk gathered so far and starts a new one."""

    def __init__(self, rate: int, max_s: float) -> None:
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        self.max_s = max_s
        self.seconds = 0.0
        self.fifo: av.AudioFifo | None = None
        self.kind: tuple | None = None
        self.chunks: list[np.ndarray] = []

    @property
    def full(self) -> bool:
        return self.seconds >= self.max_s

    def add(self, frame: av.AudioFrame) -> None:
        kind = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self.fifo is None or kind != self.kind:
            self._drain()
            self.fifo, self.kind = av.AudioFifo(), kind
        frame.pts = None  # the fifo checks timestamps for gaps; we only want the samples
        self.fifo.write(frame)
        self.seconds += frame.samples / max(frame.sample_rate, 1)
        if self.fifo.samples >= AUDIO_CHUNK:
            self._drain()

    def finish(self) -> np.ndarray:
        """Everything collected: float32 [m] mono (m = 0 when nothing was)."""
        self._drain()
        self._resample(None)
        if not self.chunks:
            return np.zeros(0, np.float32)
        return np.concatenate(self.chunks).astype(np.float32, copy=False)

    def _drain(self) -> None:
        if self.fifo is not None and self.fifo.samples:
            self._resample(self.fifo.read())

    def _resample(self, frame: av.AudioFrame | None) -> None:
        for out in self.resampler.resample(frame):
            self.chunks.append(out.to_ndarray().reshape(-1))


def _rgb(frame: av.VideoFrame, size: int) -> np.ndarray:
    """The frame as uint8 [size, size, 3] RGB, upright. swscale's AREA filter averages: right for
    downscaling, and much cheaper than the default filter
    (docs/benchmarks.md#design-choices-measured)."""
    rgb = frame.to_ndarray(width=size, height=size, format="rgb24", interpolation="AREA")
    rotation = getattr(frame, "rotation", 0) or 0
    k = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=k)) if k else rgb


def _thin(times: np.ndarray, sampling: SamplingConfig, duration: float) -> list[int]:
    """Indices of at most ``max_frames`` samples spread evenly over time."""
    n = len(times)
    if n <= sampling.max_frames:
        return list(range(n))
    grid = np.linspace(times.min(), times.max(), sampling.max_frames)
    idx = np.searchsorted(times, grid).clip(0, n - 1)
    return sorted(set(int(i) for i in idx))
