"""The decoder against hostile files: each corpus file of ``tools/make_bad_media.py`` is refused
with the error its case names, quickly, and the defences behind them hold on their own."""

from __future__ import annotations

import io
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from support.media import make_video
from tools import make_bad_media as bad
from vdup.errors import BadMedia, MediaTooLarge
from vdup.media.decode import MediaLimits, SamplingConfig, decode_video
from vdup.media.isobmff import check_declared, sample_tables

ERRORS = {bad.BAD: BadMedia, bad.TOO_LARGE: MediaTooLarge}

#: Which defence stops a file, told by its message (docs/reliability.md has the full table).
STOPPED_BY = {
    "image.png": "not a readable video container",  # format allow-list
    "audio_with_cover.mp4": "no video track",  # cover art is not a video
    "concat_list.mp4": "not a readable video container",
    "hls_playlist.mp4": "not a readable video container",
    "huge_frame_count.mp4": "declares 50000000 video frames",  # sample tables, before FFmpeg
    "bomb_declared_16000.mp4": "resolution 16000x16000",  # declared metadata
    "huge_duration.mp4": "duration 86400",
    "huge_audio_duration.mp4": "audio of 86400",
    "resolution_change_wide.ts": "decoded frame of 8192x16",  # while decoding
    "timestamps_past_duration.mp4": "past the limit",
    "many_tiny_frames.mp4": "21000 keyframes exceed",
    "many_tiny_frames.ts": "had to be decoded",
}


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    return {name: data for name, (data, _) in bad.corpus().items()}


@pytest.mark.parametrize("case", bad.CASES, ids=lambda c: c.name)
def test_each_bad_file_is_refused_quickly_with_its_error(case, corpus):
    t0 = time.perf_counter()
    with pytest.raises(BadMedia) as caught:
        decode_video(corpus[case.name])
    assert type(caught.value) is ERRORS[case.error], caught.value.message
    assert caught.value.message and "Traceback" not in caught.value.message
    assert STOPPED_BY.get(case.name, "") in caught.value.message
    assert time.perf_counter() - t0 < 5.0


def test_the_corpus_script_writes_every_file(tmp_path):
    written = bad.main([str(tmp_path)])
    assert written == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(c.name for c in bad.CASES)


def test_a_concat_script_cannot_make_ffmpeg_read_a_local_file(tmp_path, monkeypatch):
    (tmp_path / "seg.mp4").write_bytes(make_video(1, duration_s=1.0))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadMedia, match="not a readable video container"):
        decode_video(b"ffconcat version 1.0\nfile seg.mp4\n")


def test_an_image_is_not_a_one_frame_video(corpus):
    data = corpus["image.png"]
    with av.open(io.BytesIO(data)) as c:  # FFmpeg alone would decode it as a video
        assert len(c.streams.video) == 1
    with pytest.raises(BadMedia, match="container"):
        decode_video(data)


def all_intra(n: int, fps: int, side: int = 16) -> bytes:
    """``n`` frames at ``fps``, every one a keyframe, MP4."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width = s.height = side
        s.pix_fmt = "yuv420p"
        s.options = {"g": "1", "preset": "ultrafast", "bf": "0"}
        for i in range(n):
            img = np.full((side, side, 3), (i * 7) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(s.encode(frame))
        out.mux(s.encode())
    return buf.getvalue()


def test_a_valid_all_intra_video_holds_a_bounded_number_of_frames():
    sampling = SamplingConfig(max_frames=20)
    video = decode_video(all_intra(600, fps=60), sampling)  # 600 keyframes over 10 s
    assert video.meta["keyframes"] == 600
    assert video.meta["kept_frames"] <= 2 * sampling.max_frames + 1
    assert len(video.frames) <= sampling.max_frames
    with pytest.raises(MediaTooLarge, match="sampled"):
        decode_video(all_intra(600, fps=60), sampling, MediaLimits(max_sampled_frames=10))


def test_decoded_frames_are_counted_against_the_limit():
    with pytest.raises(MediaTooLarge, match="decoded"):
        decode_video(
            make_video(1, duration_s=2.0, gop=300), limits=MediaLimits(max_decoded_frames=5)
        )


def test_the_pixel_limit_is_what_refuses_frames_larger_than_declared(corpus):
    data = corpus["resolution_change_bomb.ts"]  # 64x48, then 4160x4160
    decode_video(data, limits=MediaLimits(max_width=4160, max_height=4160))
    with pytest.raises(BadMedia, match="could not be decoded"):
        decode_video(data, limits=MediaLimits(max_width=4159, max_height=4160))


class TestSampleTables:
    def test_a_clip_declares_its_tracks(self):
        tables = {t.handler: t for t in sample_tables(make_video(1, duration_s=2.0, fps=15))}
        video, audio = tables[b"vide"], tables[b"soun"]
        assert (video.fmt, video.sample_count, video.width, video.height) == (b"avc1", 30, 320, 240)
        assert audio.fmt == b"mp4a" and audio.width == 0

    def test_declared_frames_over_the_limit(self):
        data = bad.set_sample_count(make_video(1, duration_s=1.0), 300_000)
        with pytest.raises(MediaTooLarge, match="300000 video frames"):
            check_declared(data, MediaLimits())

    def test_constant_size_samples_past_the_end_of_the_file(self):
        data = bad.set_sample_count(make_video(1, duration_s=1.0), 100_000)
        with pytest.raises(BadMedia, match="more than the"):
            check_declared(data, MediaLimits())

    def test_declared_resolution_over_the_limit(self):
        data = bad.set_dimensions(make_video(1, duration_s=1.0), 5000, 100)
        with pytest.raises(MediaTooLarge, match="5000x100"):
            check_declared(data, MediaLimits())

    def test_a_compressed_movie_header_is_refused(self):
        data = bytearray(make_video(1, duration_s=1.0))
        pos, _, header = bad.find_boxes(bytes(data), "moov/trak")[0]
        data[pos + 4 : pos + 8] = b"cmov"
        with pytest.raises(BadMedia, match="cmov"):
            check_declared(bytes(data), MediaLimits())

    def test_pcm_audio_may_declare_one_sample_per_pcm_sample(self, tmp_path):
        path = tmp_path / "pcm.mov"
        with av.open(str(path), "w", format="mov") as out:
            v = out.add_stream("libx264", rate=5)
            v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
            a = out.add_stream("pcm_s16le", rate=48_000)
            a.layout = "mono"
            for i in range(5):
                frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), "rgb24")
                frame.pts, frame.time_base = i, Fraction(1, 5)
                out.mux(v.encode(frame))
            out.mux(v.encode())
            for i in range(0, 48_000 * 5, 4800):
                chunk = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.int16), "s16", "mono")
                chunk.sample_rate, chunk.pts = 48_000, i
                out.mux(a.encode(chunk))
            out.mux(a.encode())
        data = path.read_bytes()
        pcm = next(t for t in sample_tables(data) if t.handler == b"soun")
        assert pcm.sample_count == 240_000 > 4 * 50_000
        check_declared(data, MediaLimits(max_stream_frames=50_000))
        assert decode_video(data).audio.size > 0

    def test_an_unknown_first_box_does_not_hide_the_tables(self):
        data = bad.set_sample_count(make_video(1, duration_s=1.0), 300_000)
        with pytest.raises(MediaTooLarge):
            check_declared(b"\x00\x00\x00\x10junk" + b"\x00" * 8 + data, MediaLimits())

    def test_other_files_are_not_looked_at(self):
        check_declared(b"\x00" * 64, MediaLimits())
        check_declared(make_video(1, duration_s=1.0, container="matroska"), MediaLimits())
