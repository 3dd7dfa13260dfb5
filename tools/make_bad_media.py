"""Write a corpus of malformed and hostile media files, for the API's and the decoder's tests.

Why a script and not files in the repository: every case is made from a clip that PyAV encodes
here and then cut, patched or padded in a known way, so a reader sees exactly what each file is
and why it is bad, and the corpus follows FFmpeg upgrades instead of freezing one encoder's bytes.
Nothing is random but seeded: two runs write the same bytes.

    python tools/make_bad_media.py DEST_DIR      # writes the files and prints what each one is

``build_corpus(dest_dir)`` does the same from Python and returns {file name: description}.
``corpus()`` returns {file name: (bytes, description)} without touching the disk; ``CASES`` lists
each file with the error the API must answer it with.

None of them is a video the service should accept. Which defence stops each one (format
allow-list, sample-table check, metadata limits, limits enforced while decoding) is in
docs/reliability.md.
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
import tempfile
import wave
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import numpy as np

#: Boxes whose payload is a list of child boxes (ISO/IEC 14496-12).
CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta"}

#: Side the "decompression bomb" files declare, px: 256 Mpx, ~384 MB per decoded YUV frame.
BOMB_SIDE = 16_000


# ---------------------------------------------------------------- encoding sources


def _frames(
    width: int, height: int, n: int, seed: int = 0, flat: bool = False
) -> Iterator[np.ndarray]:
    """n uint8 [height, width, 3] frames: a seeded colour pattern that moves, or flat grey."""
    if flat:
        for _ in range(n):
            yield np.full((height, width, 3), 128, np.uint8)
        return
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    for i in range(n):
        yield np.roll(base, i * 3, axis=1)


def encode(
    codec: str = "libx264",
    width: int = 160,
    height: int = 120,
    n_frames: int = 30,
    fps: int = 15,
    container: str = "mp4",
    gop: int = 15,
    audio_s: float = 0.0,
    movflags: str = "",
    pix_fmt: str = "yuv420p",
    flat: bool = False,
) -> bytes:
    """A small real clip: ``n_frames`` at ``fps`` of ``codec`` in ``container``, and ``audio_s``
    seconds of a 16 kHz AAC tone when positive (``n_frames`` 0: audio only). ``flat`` frames
    are one grey (they compress to almost nothing at any size)."""
    with tempfile.TemporaryDirectory() as tmp:  # faststart re-reads its output: a real file
        path = Path(tmp) / f"clip.{container}"
        _encode_to(
            str(path),
            codec,
            width,
            height,
            n_frames,
            fps,
            container,
            gop,
            audio_s,
            movflags,
            pix_fmt,
            flat,
        )
        return path.read_bytes()


def _encode_to(
    path, codec, width, height, n_frames, fps, container, gop, audio_s, movflags, pix_fmt, flat
) -> None:
    out = av.open(
        path, mode="w", format=container, options={"movflags": movflags} if movflags else {}
    )
    video = None
    if n_frames:
        video = out.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            video.options = {
                "g": str(gop),
                "preset": "ultrafast",
                "bf": "0",
                "rc-lookahead": "0",
                "threads": "1",
            }
    audio = None
    if audio_s > 0:
        audio = out.add_stream("aac", rate=16_000)
        audio.layout = "mono"
    if video is not None:
        for i, img in enumerate(_frames(width, height, n_frames, flat=flat)):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode())
    if audio is not None:
        t = np.arange(int(audio_s * 16_000)) / 16_000
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(
                samples[None, i : i + 1024], format="flt", layout="mono"
            )
            frame.sample_rate, frame.pts = 16_000, i
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    out.close()


def _wav(seconds: float = 1.0) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        t = np.arange(int(seconds * 16_000)) / 16_000
        w.writeframes((8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes())
    return buf.getvalue()


def _png(width: int = 64, height: int = 48) -> bytes:
    """A real PNG image (zlib + CRCs by hand: the format is small enough to write down)."""
    img = next(_frames(width, height, 1))
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _audio_with_cover(seconds: float = 2.0) -> bytes:
    """An MP4 of AAC audio with a cover picture: FFmpeg lists the picture as a video stream."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "song.mp4"
        out = av.open(str(path), mode="w", format="mp4")
        audio = out.add_stream("aac", rate=16_000)
        audio.layout = "mono"
        cover = out.add_stream("mjpeg", rate=1)
        cover.width = cover.height = 64
        cover.pix_fmt = "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(next(_frames(64, 64, 1)), format="rgb24")
        picture.pts = 0
        packets = cover.encode(picture) + cover.encode()
        t = np.arange(int(seconds * 16_000)) / 16_000
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(
                samples[None, i : i + 1024], format="flt", layout="mono"
            )
            frame.sample_rate, frame.pts = 16_000, i
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
        out.mux(packets)
        out.close()
        return path.read_bytes()


def _mp3ish(seconds: float = 1.0) -> bytes:
    """MPEG-1 layer II audio (what an ``.mp3`` upload that is not a video looks like)."""
    buf = io.BytesIO()
    out = av.open(buf, mode="w", format="mp2")
    stream = out.add_stream("mp2", rate=16_000)
    stream.layout = "mono"
    t = np.arange(int(seconds * 16_000)) / 16_000
    samples = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    for i in range(0, len(samples), 1152):
        frame = av.AudioFrame.from_ndarray(samples[None, i : i + 1152], format="s16", layout="mono")
        frame.sample_rate, frame.pts = 16_000, i
        out.mux(stream.encode(frame))
    out.mux(stream.encode())
    out.close()
    return buf.getvalue()


# ---------------------------------------------------------------- MP4 surgery


def boxes(
    data: bytes, start: int = 0, end: int | None = None
) -> Iterator[tuple[bytes, int, int, int]]:
    """Top-level boxes of ``data[start:end]``: (type, offset, size, header length), in order.

    Stops at the first box whose size field does not fit (the file may be truncated)."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos, size, header
        pos += size


def find_boxes(data: bytes, path: str) -> list[tuple[int, int, int]]:
    """Every box at ``path`` ("moov/trak/tkhd"): (offset, size, header length) of each."""
    found = []

    def walk(start: int, end: int, parts: list[bytes]) -> None:
        for kind, pos, size, header in boxes(data, start, end):
            if kind != parts[0]:
                continue
            if len(parts) == 1:
                found.append((pos, size, header))
            elif kind in CONTAINER_BOXES:
                walk(pos + header, pos + size, parts[1:])

    walk(0, len(data), [p.encode() for p in path.split("/")])
    return found


def _track_kind(data: bytes, trak: tuple[int, int, int]) -> bytes:
    """'vide' or 'soun': the handler type of the track box ``trak``."""
    pos, size, header = trak
    sub = data[pos + header : pos + size]
    for mdia in find_boxes(sub, "mdia/hdlr"):
        return sub[mdia[0] + mdia[2] + 8 : mdia[0] + mdia[2] + 12]
    return b""


def patch_track(data: bytes, kind: bytes, fn: Callable[[bytearray, int], None]) -> bytes:
    """Apply ``fn(buffer, offset of the trak box)`` to each track of handler ``kind``."""
    out = bytearray(data)
    for trak in find_boxes(data, "moov/trak"):
        if _track_kind(data, trak) == kind:
            fn(out, trak[0])
    return bytes(out)


def _in_trak(buf: bytearray, trak_pos: int, path: str) -> list[tuple[int, int, int]]:
    size = struct.unpack(">I", buf[trak_pos : trak_pos + 4])[0]
    sub = bytes(buf[trak_pos + 8 : trak_pos + size])
    return [(trak_pos + 8 + p, s, h) for p, s, h in find_boxes(sub, path)]


def set_dimensions(data: bytes, width: int, height: int) -> bytes:
    """Make the video track's tkhd (16.16 fixed point) and its sample entry (stsd) declare
    ``width`` x ``height``; the coded bitstream is left alone."""

    def fn(buf: bytearray, trak: int) -> None:
        for pos, size, _ in _in_trak(buf, trak, "tkhd"):
            struct.pack_into(">II", buf, pos + size - 8, width << 16, height << 16)
        for pos, _, header in _in_trak(buf, trak, "mdia/minf/stbl/stsd"):
            entry = pos + header + 8  # version/flags, entry count
            # sample entry: size, format, 6 reserved, data ref index, 16 pre-defined/reserved
            struct.pack_into(">HH", buf, entry + 8 + 6 + 2 + 16, width, height)

    return patch_track(data, b"vide", fn)


def set_duration(data: bytes, kind: bytes, seconds: float) -> bytes:
    """Make the track of handler ``kind`` (its tkhd, edit list, mdhd and sample durations in
    stts) and the movie (mvhd) declare ``seconds`` of media; the samples' bytes stay as they
    are, so their timestamps are spread over ``seconds``."""
    out = bytearray(data)
    for pos, _, header in find_boxes(data, "moov/mvhd"):
        _set_header_duration(out, pos + header, seconds, timescale_at=12, duration_at=16)

    def fn(buf: bytearray, trak: int) -> None:
        movie_scale = _movie_timescale(data)
        for pos, _, header in _in_trak(buf, trak, "tkhd"):
            _set_header_duration(buf, pos + header, seconds, timescale=movie_scale, duration_at=20)
        for pos, _, header in _in_trak(buf, trak, "edts/elst"):  # the edit list cuts the rest
            count = struct.unpack(">I", buf[pos + header + 4 : pos + header + 8])[0]
            for i in range(count):
                _set_header_duration(
                    buf, pos + header, seconds, timescale=movie_scale, duration_at=8 + 12 * i
                )
        for pos, _, header in _in_trak(buf, trak, "mdia/mdhd"):
            scale = _set_header_duration(
                buf, pos + header, seconds, timescale_at=12, duration_at=16
            )
        for pos, _, header in _in_trak(buf, trak, "mdia/minf/stbl/stts"):
            count = struct.unpack(">I", buf[pos + header + 4 : pos + header + 8])[0]
            samples = sum(
                struct.unpack(">I", buf[pos + header + 8 + 8 * i : pos + header + 12 + 8 * i])[0]
                for i in range(count)
            )
            delta = min(int(seconds * scale / max(samples, 1)), 0x7FFFFFFF)
            for i in range(count):
                struct.pack_into(">I", buf, pos + header + 12 + 8 * i, delta)

    fixed = bytes(out)
    return patch_track(fixed, kind, fn)


def _movie_timescale(data: bytes) -> int:
    pos, _, header = find_boxes(data, "moov/mvhd")[0]
    return struct.unpack(">I", data[pos + header + 12 : pos + header + 16])[0]


def _set_header_duration(
    buf: bytearray,
    body: int,
    seconds: float,
    timescale: int = 0,
    timescale_at: int = 0,
    duration_at: int = 0,
) -> int:
    """Version-0 full box (mvhd, mdhd, tkhd): write the duration; returns its timescale."""
    assert buf[body] == 0, "only version-0 headers are patched"
    if timescale_at:
        timescale = struct.unpack(">I", buf[body + timescale_at : body + timescale_at + 4])[0]
    struct.pack_into(">I", buf, body + duration_at, min(int(seconds * timescale), 0xFFFFFFFF))
    return timescale


def set_sample_count(data: bytes, count: int) -> bytes:
    """Make the video track's stsz declare ``count`` samples of one constant size: a frame
    count far beyond what the file holds."""

    def fn(buf: bytearray, trak: int) -> None:
        for pos, _size, header in _in_trak(buf, trak, "mdia/minf/stbl/stsz"):
            struct.pack_into(">II", buf, pos + header + 4, 64, count)

    return patch_track(data, b"vide", fn)


def set_chunk_offsets(data: bytes, offset: int) -> bytes:
    """Point every chunk of every track (stco) at ``offset`` bytes into the file."""
    out = bytearray(data)
    for pos, _, header in find_boxes(data, "moov/trak/mdia/minf/stbl/stco"):
        count = struct.unpack(">I", out[pos + header + 4 : pos + header + 8])[0]
        for i in range(count):
            struct.pack_into(">I", out, pos + header + 8 + 4 * i, offset)
    return bytes(out)


def scramble_box(data: bytes, path: str, seed: int, keep: int = 0) -> bytes:
    """Overwrite the payload of the box at ``path`` (after its first ``keep`` bytes) with seeded
    random bytes; sizes stay, so the file still parses as boxes."""
    out = bytearray(data)
    rng = np.random.default_rng(seed)
    for pos, size, header in find_boxes(data, path):
        start = pos + header + keep
        out[start : pos + size] = rng.bytes(pos + size - start)
    return bytes(out)


def patch_mjpeg_sof(data: bytes, width: int, height: int) -> bytes:
    """Rewrite every baseline JPEG start-of-frame (FFC0) in ``data`` to ``width`` x ``height``."""
    out = bytearray(data)
    pos = out.find(b"\xff\xc0")
    while pos >= 0:
        struct.pack_into(">HH", out, pos + 5, height, width)
        pos = out.find(b"\xff\xc0", pos + 2)
    return bytes(out)


def raw_video(declared: tuple[int, int], side: int = 8, frames: int = 5) -> bytes:
    """Uncompressed RGB frames in QuickTime, whose sample entry alone says their size: the one
    place a size can be declared without a bitstream header that contradicts it."""
    data = encode("rawvideo", side, side, frames, fps=5, container="mov", pix_fmt="rgb24")
    return set_dimensions(data, *declared)


# ---------------------------------------------------------------- the corpus


@cache
def _clip() -> bytes:
    """2 s, 160x120 H.264 + AAC, moov after mdat (what most encoders write)."""
    return encode(audio_s=2.0, n_frames=30)


@cache
def _faststart() -> bytes:
    """The same clip with moov before mdat (what streaming uploads look like)."""
    return encode(audio_s=2.0, n_frames=30, movflags="faststart")


@cache
def _mjpeg() -> bytes:
    """64x48 MJPEG in MP4: its frames carry their own size in each JPEG header."""
    return encode("mjpeg", 64, 48, 10, fps=5, pix_fmt="yuvj420p")


def _cut_in(data: bytes, path: str) -> bytes:
    pos, size, _ = find_boxes(data, path)[0]
    return data[: pos + size // 2]


@dataclass(frozen=True)
class Case:
    """One corpus file: its name, the error the API must answer with ("bad_media": 422,
    "media_too_large": 413), what is wrong with it, and how it is made."""

    name: str
    error: str
    description: str
    make: Callable[[], bytes]


BAD = "bad_media"
TOO_LARGE = "media_too_large"
DAY_S = 24 * 3600.0

CASES: tuple[Case, ...] = (
    # not a video at all
    Case("empty.mp4", BAD, "zero-length upload", lambda: b""),
    Case(
        "random.bin",
        BAD,
        "64 KiB of random bytes",
        lambda: np.random.default_rng(8).bytes(64 * 1024),
    ),
    Case(
        "text.txt",
        BAD,
        "a plain text file",
        lambda: b"This is not a video, it is a text file.\n" * 200,
    ),
    Case(
        "html.mp4",
        BAD,
        "an HTML error page saved under a video's name",
        lambda: b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n" * 20,
    ),
    # the wrong container
    Case("image.png", BAD, "a PNG still image (FFmpeg would read it as a one-frame video)", _png),
    Case("audio.wav", BAD, "a WAV file: audio only", _wav),
    Case("audio.mp3", BAD, "an MPEG audio file: audio only", _mp3ish),
    Case(
        "audio_only.mp4",
        BAD,
        "an MP4 with an AAC track and no video track",
        lambda: encode(n_frames=0, audio_s=2.0),
    ),
    Case(
        "audio_with_cover.mp4",
        BAD,
        "an MP4 song with a cover picture, which FFmpeg lists as a one-frame video stream",
        _audio_with_cover,
    ),
    Case(
        "concat_list.mp4",
        BAD,
        "an FFmpeg concat script: would make FFmpeg open local files",
        lambda: b"ffconcat version 1.0\nfile seg.ts\nfile ../data/catalog.sqlite\n",
    ),
    Case(
        "hls_playlist.mp4",
        BAD,
        "an HLS playlist: would make FFmpeg fetch URLs",
        lambda: (
            b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
            b"http://127.0.0.1:9/seg.ts\n#EXT-X-ENDLIST\n"
        ),
    ),
    # truncated
    Case("truncated_in_ftyp.mp4", BAD, "an MP4 cut inside its first box", lambda: _clip()[:16]),
    Case(
        "truncated_ftyp_only.mp4",
        BAD,
        "an MP4 cut right after its ftyp box: header only",
        lambda: _clip()[: find_boxes(_clip(), "ftyp")[0][1]],
    ),
    Case(
        "truncated_in_mdat.mp4",
        BAD,
        "an MP4 (moov last) cut half-way through mdat: no moov",
        lambda: _cut_in(_clip(), "mdat"),
    ),
    Case(
        "truncated_in_moov.mp4",
        BAD,
        "an MP4 (moov last) cut 200 bytes before its end",
        lambda: _clip()[:-200],
    ),
    Case(
        "truncated_faststart_in_moov.mp4",
        BAD,
        "a fast-start MP4 cut half-way through moov",
        lambda: _cut_in(_faststart(), "moov"),
    ),
    Case(
        "truncated_faststart_in_mdat.mp4",
        BAD,
        "a fast-start MP4 cut half-way through mdat: its index points past the end",
        lambda: _cut_in(_faststart(), "mdat"),
    ),
    # damaged
    Case(
        "corrupt_moov.mp4",
        BAD,
        "moov payload overwritten with random bytes",
        lambda: scramble_box(_faststart(), "moov", seed=1),
    ),
    Case(
        "corrupt_stbl.mp4",
        BAD,
        "sample tables (stbl) overwritten with random bytes",
        lambda: scramble_box(_faststart(), "moov/trak/mdia/minf/stbl", seed=2),
    ),
    Case(
        "garbage_mdat.mp4",
        BAD,
        "a valid moov over an mdat of random bytes",
        lambda: scramble_box(_clip(), "mdat", seed=3),
    ),
    Case(
        "chunk_offsets_past_end.mp4",
        BAD,
        "every chunk offset (stco) points 2 GiB past the end",
        lambda: set_chunk_offsets(_faststart(), 0x7FFF0000),
    ),
    # lying dimensions
    Case(
        "zero_dims.mp4",
        BAD,
        "MJPEG whose container (tkhd, stsd) and JPEG headers say 0x0",
        lambda: set_dimensions(patch_mjpeg_sof(_mjpeg(), 0, 0), 0, 0),
    ),
    Case(
        "zero_dims_raw.mov",
        BAD,
        "uncompressed video whose only size field says 0x0",
        lambda: raw_video((0, 0)),
    ),
    # decompression bombs and resource exhaustion
    Case(
        "bomb_declared_16000.mp4",
        TOO_LARGE,
        f"an 18 KiB MJPEG declaring {BOMB_SIDE}x{BOMB_SIDE} everywhere (~384 MB a frame)",
        lambda: set_dimensions(
            patch_mjpeg_sof(_mjpeg(), BOMB_SIDE, BOMB_SIDE), BOMB_SIDE, BOMB_SIDE
        ),
    ),
    Case(
        "bomb_hidden_16000.mp4",
        BAD,
        f"an MJPEG whose container says 64x48 and whose frames say {BOMB_SIDE}x{BOMB_SIDE}",
        lambda: patch_mjpeg_sof(_mjpeg(), BOMB_SIDE, BOMB_SIDE),
    ),
    Case(
        "resolution_change_wide.ts",
        TOO_LARGE,
        "MPEG-TS whose H.264 opens at 64x48 and switches to 8192x16 frames: only the "
        "per-frame check while decoding sees them",
        lambda: (
            encode(width=64, height=48, n_frames=10, container="mpegts")
            + encode(width=8192, height=16, n_frames=2, container="mpegts")
        ),
    ),
    Case(
        "resolution_change_bomb.ts",
        BAD,
        "MPEG-TS whose H.264 opens at 64x48 and switches to 4160x4160 (17.3 Mpx) frames: "
        "FFmpeg's pixel limit refuses to allocate them",
        lambda: (
            encode(width=64, height=48, n_frames=10, container="mpegts")
            + encode(width=4160, height=4160, n_frames=1, container="mpegts", flat=True)
        ),
    ),
    Case(
        "huge_duration.mp4",
        TOO_LARGE,
        "30 frames whose headers and timestamps spread them over a day",
        lambda: set_duration(_clip(), b"vide", DAY_S),
    ),
    Case(
        "huge_audio_duration.mp4",
        TOO_LARGE,
        "a clip whose audio track lasts a day",
        lambda: set_duration(_clip(), b"soun", DAY_S),
    ),
    Case(
        "timestamps_past_duration.mp4",
        TOO_LARGE,
        "frames 8 h apart under a duration FFmpeg cannot read (10 days overflows the 32-bit "
        "header): only the timestamp check while decoding sees them",
        lambda: set_duration(_clip(), b"vide", 10 * DAY_S),
    ),
    Case(
        "huge_frame_count.mp4",
        TOO_LARGE,
        "a 220 KB file whose sample table declares 50 million frames (FFmpeg would allocate "
        "~1 GB of index for them)",
        lambda: set_sample_count(_faststart(), 50_000_000),
    ),
    Case(
        "many_tiny_frames.mp4",
        TOO_LARGE,
        "21,000 16x16 keyframes at 1000 fps: more keyframes (each one decoded) than the "
        "limit on decoded frames",
        lambda: encode(width=16, height=16, n_frames=21_000, fps=1000, gop=1),
    ),
    Case(
        "many_tiny_frames.ts",
        TOO_LARGE,
        "21,000 16x16 frames in MPEG-TS (no index: every frame is decoded)",
        lambda: encode(width=16, height=16, n_frames=21_000, fps=1000, gop=250, container="mpegts"),
    ),
)


@cache
def corpus() -> dict[str, tuple[bytes, str]]:
    """{file name: (bytes, what is wrong with it)}, made in memory once per process (treat it as
    read-only)."""
    return {case.name: (case.make(), case.description) for case in CASES}


def build_corpus(dest_dir: str | Path) -> dict[str, str]:
    """Write every corpus file into ``dest_dir`` (created); returns {file name: description}."""
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    described = {}
    for name, (data, description) in corpus().items():
        (dest / name).write_bytes(data)
        described[name] = description
    return described


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dest", type=Path, help="directory to write the files into")
    args = parser.parse_args(argv)
    for name, description in build_corpus(args.dest).items():
        size = (args.dest / name).stat().st_size
        print(f"{name:36s} {size:>9,d} B  {description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
