"""What an MP4/MOV file's sample tables declare, read before FFmpeg parses them.

Why this exists: FFmpeg's MP4 demuxer sizes its in-memory index from the sample count that the
``stsz`` box *declares*, while it opens the file and before any limit of ours can look at the
stream. A sample table saying "50 million samples of 64 bytes each" costs a few bytes in a 200 KB
file and makes ``av.open`` allocate and touch about a gigabyte. Likewise a compressed movie header
(``cmov``) is inflated by FFmpeg to whatever size it declares. So the few numbers that drive those
allocations are read here, straight from the box headers, and checked first.

Any file whose top level parses as boxes holding a ``moov`` is looked at, whatever its first box
(FFmpeg's MP4 probe skips unknown leading boxes too); anything else passes through unchanged.
The walk reads box headers only (no sample data), so it costs microseconds.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vdup.errors import BadMedia, MediaTooLarge

if TYPE_CHECKING:
    from vdup.media.decode import MediaLimits

#: Boxes whose payload is a list of child boxes, on the way to the sample tables.
_PARENTS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
STBL = b"trak/mdia/minf/stbl"
#: Uncompressed audio sample entries: FFmpeg indexes these per chunk, not per sample, so their
#: (legitimately huge) sample counts allocate nothing per sample.
PCM_FORMATS = {
    b"sowt",
    b"twos",
    b"lpcm",
    b"raw ",
    b"in24",
    b"in32",
    b"fl32",
    b"fl64",
    b"ulaw",
    b"alaw",
    b"NONE",
    b"ipcm",
    b"fpcm",
}
#: A non-video, non-PCM track may declare this many times ``max_stream_frames`` samples
#: (audio frames are as short as 2.5 ms; video frames rarely shorter than 16 ms).
OTHER_TRACK_FACTOR = 4


@dataclass(frozen=True)
class TrackTable:
    """One track's declarations: handler ('vide', 'soun', ...), sample entry format, constant
    sample size in bytes (0: a per-sample size table follows), sample count, and for video the
    sample entry's width and height, px (0 when absent)."""

    handler: bytes
    fmt: bytes
    sample_size: int
    sample_count: int
    width: int = 0
    height: int = 0


def check_declared(data: bytes, limits: MediaLimits) -> None:
    """Refuse an MP4/MOV whose declarations would make FFmpeg allocate past ``limits``.

    Raises MediaTooLarge when a video track declares more than ``limits.max_stream_frames``
    samples (another track: ``OTHER_TRACK_FACTOR`` times that, PCM exempt) or a frame larger
    than ``limits.max_width`` x ``limits.max_height``; BadMedia when constant-size samples would
    need more bytes than the file has, or the movie header is compressed.
    """
    for table in sample_tables(data):
        if table.width > limits.max_width or table.height > limits.max_height:
            raise MediaTooLarge(
                f"resolution {table.width}x{table.height} exceeds the limit "
                f"{limits.max_width}x{limits.max_height}"
            )
        limit = limits.max_stream_frames
        if table.handler != b"vide":
            if table.fmt in PCM_FORMATS:
                limit = len(data)
            else:
                limit *= OTHER_TRACK_FACTOR
        if table.sample_count > limit:
            kind = "video frames" if table.handler == b"vide" else "samples"
            raise MediaTooLarge(
                f"the file declares {table.sample_count} {kind} in one track, more than the "
                f"limit of {limit}"
            )
        if table.sample_size and table.sample_size * table.sample_count > len(data):
            raise BadMedia(
                f"the sample table declares {table.sample_count} samples of "
                f"{table.sample_size} bytes, more than the {len(data)}-byte file holds"
            )


def sample_tables(data: bytes) -> Iterator[TrackTable]:
    """The declared sample table of each track in the file's movie box."""
    for kind, body, end in _boxes(data, 0, len(data)):
        if kind == b"moov":
            yield from _tracks(data, body, end)


def _tracks(data: bytes, start: int, end: int) -> Iterator[TrackTable]:
    for kind, body, box_end in _boxes(data, start, end):
        if kind == b"cmov":
            raise BadMedia("compressed movie headers (cmov) are not accepted")
        if kind == b"trak":
            handler, fmt, size, count, width, height = b"", b"", 0, 0, 0, 0
            for path, b, e in _walk(data, body, box_end, b"trak"):
                if path == b"trak/mdia/hdlr" and e - b >= 12:  # not minf/hdlr (QuickTime's)
                    handler = data[b + 8 : b + 12]
                elif path == STBL + b"/stsd" and e - b >= 16:
                    fmt = data[b + 12 : b + 16]
                    if e - b >= 44:  # entry: 8 box, 6 reserved, 2 ref, 16 reserved, 2 w, 2 h
                        width, height = struct.unpack(">HH", data[b + 40 : b + 44])
                elif path == STBL + b"/stsz" and e - b >= 12:
                    size, count = struct.unpack(">II", data[b + 4 : b + 12])
                elif path == STBL + b"/stz2" and e - b >= 12:
                    count = struct.unpack(">I", data[b + 8 : b + 12])[0]
            if handler != b"vide":
                width = height = 0
            yield TrackTable(handler, fmt, size, count, width, height)


def _walk(data: bytes, start: int, end: int, path: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(path, payload start, payload end) of every box below ``path`` on the way to stbl."""
    for kind, body, box_end in _boxes(data, start, end):
        sub = path + b"/" + kind
        yield sub, body, box_end
        if kind in _PARENTS:
            yield from _walk(data, body, box_end, sub)


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes in ``data[start:end]``; a box that
    overruns ``end`` is clipped to it (FFmpeg reads such files as far as they go)."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield kind, pos + header, min(pos + size, end)
        pos += size
