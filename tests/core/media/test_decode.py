import io
from fractions import Fraction

import av
import numpy as np
import pytest

from support.media import make_video
from vdup.errors import BadMedia, MediaTooLarge
from vdup.media.decode import MediaLimits, SamplingConfig, _rgb, decode_audio, decode_video


def test_samples_frames_and_mono_audio():
    v = decode_video(make_video(1, duration_s=4.0, fps=15))
    assert v.frames.shape[1:] == (224, 224, 3) and v.frames.dtype == np.uint8
    assert len(v.frames) >= SamplingConfig().min_frames
    assert np.all(np.diff(v.timestamps) > 0)
    assert 0 <= v.timestamps[0] < 0.5 and v.timestamps[-1] <= 4.0
    assert v.audio_rate == 16000 and abs(len(v.audio) / 16000 - 4.0) < 0.2
    assert (v.width, v.height) == (320, 240)


def test_long_gop_is_filled_but_dense_keyframes_are_used_as_they_are():
    sparse = decode_video(make_video(1, duration_s=6.0, gop=300))
    assert sparse.meta["keyframes"] == 1 and len(sparse.frames) >= 12
    dense = decode_video(make_video(1, duration_s=6.0, gop=15), SamplingConfig(min_frames=4))
    # keyframes every second are enough: nothing but keyframes is kept
    assert dense.meta["keyframes"] == len(dense.frames)


def test_missing_audio_track_is_fine():
    v = decode_video(make_video(4, with_audio=False))
    assert v.audio.size == 0 and len(v.frames) > 0


def test_odd_size_and_variable_frame_rate():
    buf = io.BytesIO()
    out = av.open(buf, "w", format="mp4")
    s = out.add_stream("libx264", rate=30)
    s.width, s.height, s.pix_fmt = 250, 142, "yuv420p"
    s.codec_context.time_base = Fraction(1, 1000)
    pts = 0
    rng = np.random.default_rng(0)
    for i in range(40):
        img = np.full((142, 250, 3), (i * 6) % 255, np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        pts += int(rng.integers(20, 120))
        for p in s.encode(frame):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()
    v = decode_video(buf.getvalue())
    assert (v.width, v.height) == (250, 142)
    assert len(v.frames) >= 5 and np.all(np.diff(v.timestamps) > 0)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (np.random.default_rng(0).bytes(50_000), "container"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "container"),
    ],
)
def test_non_video_bytes_are_refused_with_a_message(data, message):
    with pytest.raises(BadMedia, match=message):
        decode_video(data)


def test_audio_only_file_is_refused():
    with pytest.raises(BadMedia, match="no video track"):
        decode_video(make_video(1, with_video=False))


def test_truncated_file_is_refused_or_decodes_what_is_there():
    data = make_video(1)
    try:
        v = decode_video(data[: len(data) // 3])
    except BadMedia as exc:
        assert exc.message
    else:
        assert len(v.frames) > 0


def test_limits_are_checked_from_metadata_first():
    with pytest.raises(MediaTooLarge, match="duration"):
        decode_video(make_video(1, duration_s=3.0), limits=MediaLimits(max_duration_s=1.0))
    with pytest.raises(MediaTooLarge, match="resolution"):
        decode_video(make_video(1), limits=MediaLimits(max_width=100))


def test_audio_resampled_in_chunks_equals_resampling_every_frame():
    """Audio goes through swresample in chunks of decode.AUDIO_CHUNK input samples (for
    speed); the samples must be exactly those of resampling each decoded frame in turn."""
    data = make_video(2, duration_s=4.0, audio_rate=44100, audio_channels=2)
    reference = []
    with av.open(io.BytesIO(data)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        for frame in c.decode(c.streams.audio[0]):
            reference += [o.to_ndarray().reshape(-1) for o in resampler.resample(frame)]
        reference += [o.to_ndarray().reshape(-1) for o in resampler.resample(None)]
    expected = np.concatenate(reference)
    got = decode_video(data).audio
    assert len(expected) > 2 * 65536 * 16000 / 44100  # more than two chunks
    assert got.shape == expected.shape and np.array_equal(got, expected)


def test_dense_keyframes_of_a_long_clip_are_sampled_about_once_a_gap_half():
    """Keyframes every 0.2 s over 40 s: about one kept every max_gap_s / 2 (1 s), not all 200
    (thinned to max_frames), still no gap over max_gap_s, and the others not even decoded."""
    v = decode_video(
        make_video(3, duration_s=40.0, width=96, height=64, fps=10, gop=2, with_audio=False)
    )
    assert v.meta["keyframes"] >= 190
    assert 36 <= len(v.frames) <= 44
    assert v.meta["decoded_frames"] <= len(v.frames) + 2
    assert np.diff(v.timestamps).max() <= SamplingConfig().max_gap_s


def _every_frame(data: bytes) -> dict[float, np.ndarray]:
    """Reference: every frame of the video track decoded, by time (s), at the sampler's size."""
    out = {}
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.video[0]
        for frame in c.decode(s):
            out[round(float(frame.pts * frame.time_base), 4)] = _rgb(frame, 224)
    return out


@pytest.mark.parametrize(
    "container,duration_s,fps",
    [
        ("mp4", 8.0, 15),
        ("mpegts", 8.0, 15),
        ("mp4", 1.2, 30),  # 12 samples in 36 frames: one every 3 frames
    ],
)
def test_gap_filling_skips_unreferenced_frames_yet_samples_the_frames_of_a_full_decode(
    container, duration_s, fps
):
    """One keyframe per clip, with B-frames: the gap is filled (mp4: from the keyframe index;
    MPEG-TS has none, so the whole track is read) with fewer than all frames decoded, and every
    sample is bit-identical to the frame a full decode gives at that time."""
    data = make_video(
        5, duration_s=duration_s, fps=fps, gop=300, bframes=3, with_audio=False, container=container
    )
    reference = _every_frame(data)
    v = decode_video(data)
    assert len(v.frames) >= 4 and np.diff(v.timestamps).max() <= SamplingConfig().max_gap_s + 0.1
    assert v.meta["decoded_frames"] <= 0.8 * len(reference)
    start = min(reference)
    for frame, t in zip(v.frames, v.timestamps):
        assert np.array_equal(frame, reference[round(float(t) + start, 4)])


def test_the_audio_pass_alone_gives_the_soundtrack_of_the_whole_decode():
    """decode_audio (run beside a decode_video(audio=False) on another core) returns exactly
    the samples of the single pass; no audio track gives none; a file decode_video refuses
    is refused too."""
    data = make_video(6, duration_s=3.0, audio_rate=44100, audio_channels=2)
    whole = decode_video(data)
    assert whole.audio.size > 0
    assert np.array_equal(decode_audio(data), whole.audio)
    assert decode_video(data, audio=False).audio.size == 0
    assert decode_audio(make_video(6, with_audio=False)).size == 0
    with pytest.raises(BadMedia, match="no video track"):
        decode_audio(make_video(6, with_video=False))
