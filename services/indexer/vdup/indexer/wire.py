"""The bytes that carry arrays between the API and the indexer shards.

Why not JSON or pickle: a search answer holds a few thousand 512-d descriptor rows; as JSON float
lists that is ~10x the bytes and most of the time goes to printing and parsing floats, and pickle
would let a peer run code in our process. Why not ``np.savez``: a zip per message, and its
``.npy`` headers need their own validation anyway. So one small frame:

    b"VDUP" | version: u8 = 1 | header length: u32 LE | header: UTF-8 JSON | payload

    header = {"meta": {...}, "arrays": [{"name": "descriptors", "dtype": "f2", "shape": [r, 512]},
                                        ...]}
    payload = each array's raw little-endian C-order bytes, in header order, back to back

dtypes are limited to f2 (float16), f4 (float32), i1 (int8). Decoding checks the magic, version,
header size, dtype names, shapes against the payload length (exactly, no trailing bytes), then
each message checks its own arrays' names, dtypes and shapes and that floats are finite. Anything
else is a ``WireError`` (the shard answers 400 with its message).

Precision: query rows travel as float32 (retrieval on a shard sees exactly what it would see in
process); stored descriptors and audio travel as float16, which is what the store keeps, so that
is lossless too.
"""

from __future__ import annotations

import json
import struct
from dataclasses import fields
from typing import Any

import numpy as np

from vdup.catalog.types import StoredRows, VideoRecord
from vdup.features.types import AUDIO_DIM, DIM
from vdup.matching.decide import Candidate

MEDIA_TYPE = "application/x-vdup-arrays"
#: Response header naming the shard that answered (its shard id)
SHARD_HEADER = "X-Vdup-Shard"
MAGIC = b"VDUP"
VERSION = 1
MAX_HEADER_BYTES = 4 * 1024 * 1024
MAX_QUERY_ROWS = 4096
MAX_CANDIDATES = 1000
_DTYPES: dict[str, np.dtype] = {"f2": np.dtype("<f2"), "f4": np.dtype("<f4"), "i1": np.dtype("i1")}
_PREFIX = struct.Struct("<4sBI")


class WireError(ValueError):
    """A body that is not a well-formed message of the expected kind."""


# ------------------------------------------------------------------------------ frame


def encode(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """One frame: ``meta`` (JSON-serialisable) and named arrays of dtype f2/f4/i1."""
    specs, chunks = [], []
    for name, arr in arrays.items():
        code = next((c for c, dt in _DTYPES.items() if arr.dtype == dt), None)
        if code is None:
            raise TypeError(f"array {name!r}: dtype {arr.dtype} is not carried on the wire")
        specs.append({"name": name, "dtype": code, "shape": list(arr.shape)})
        chunks.append(np.ascontiguousarray(arr, _DTYPES[code]).tobytes())
    header = json.dumps({"meta": meta, "arrays": specs}, separators=(",", ":")).encode()
    return b"".join([_PREFIX.pack(MAGIC, VERSION, len(header)), header, *chunks])


def decode(body: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of a frame; raises WireError for anything malformed. Arrays are read-only
    views of ``body``."""
    if len(body) < _PREFIX.size:
        raise WireError("body too short for a vdup frame")
    magic, version, hlen = _PREFIX.unpack_from(body)
    if magic != MAGIC:
        raise WireError(f"not a vdup frame (content type {MEDIA_TYPE} expected)")
    if version != VERSION:
        raise WireError(f"frame version {version}, this shard reads version {VERSION}")
    if hlen > MAX_HEADER_BYTES or _PREFIX.size + hlen > len(body):
        raise WireError("frame header length out of bounds")
    try:
        header = json.loads(body[_PREFIX.size : _PREFIX.size + hlen])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"frame header is not JSON: {exc}") from None
    if (
        not isinstance(header, dict)
        or not isinstance(header.get("meta"), dict)
        or not isinstance(header.get("arrays"), list)
    ):
        raise WireError("frame header must be {'meta': {...}, 'arrays': [...]}")
    arrays: dict[str, np.ndarray] = {}
    offset = _PREFIX.size + hlen
    for spec in header["arrays"]:
        if not isinstance(spec, dict):
            raise WireError("array spec must be an object")
        name, code, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
        if not isinstance(name, str) or name in arrays:
            raise WireError(f"array name {name!r} missing or repeated")
        if code not in _DTYPES:
            raise WireError(f"array {name!r}: dtype {code!r} not one of {sorted(_DTYPES)}")
        if (
            not isinstance(shape, list)
            or not 1 <= len(shape) <= 3
            or not all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape
            )
        ):
            raise WireError(f"array {name!r}: bad shape {shape!r}")
        dtype = _DTYPES[code]
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if offset + nbytes > len(body):
            raise WireError(f"array {name!r}: payload shorter than its shape {shape}")
        arrays[name] = np.frombuffer(
            body, dtype, count=nbytes // dtype.itemsize, offset=offset
        ).reshape(shape)
        offset += nbytes
    if offset != len(body):
        raise WireError(f"{len(body) - offset} bytes after the last array")
    return header["meta"], arrays


def _array(arrays: dict, name: str, codes: tuple[str, ...], shape: tuple) -> np.ndarray:
    """arrays[name], checked: dtype one of ``codes``, shape matching (None = any length),
    finite if floating."""
    a = arrays.get(name)
    if a is None:
        raise WireError(f"array {name!r} is missing")
    if not any(a.dtype == _DTYPES[c] for c in codes):
        raise WireError(f"array {name!r}: dtype {a.dtype}, expected {'/'.join(codes)}")
    if len(a.shape) != len(shape) or any(w is not None and w != d for w, d in zip(shape, a.shape)):
        want = "[" + ", ".join("n" if w is None else str(w) for w in shape) + "]"
        raise WireError(f"array {name!r}: shape {list(a.shape)}, expected {want}")
    if a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
        raise WireError(f"array {name!r} holds NaN or infinite values")
    return a


def _int(meta: dict, name: str, lo: int, hi: int) -> int:
    v = meta.get(name)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise WireError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


# ------------------------------------------------------------------------------ records

_RECORD_TYPES = {f.name: f.type for f in fields(VideoRecord)}
_PY: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "bool": bool,
    "float": (int, float),
    "int": int,
}


def record_from_dict(d: object) -> VideoRecord:
    """A VideoRecord from its dict form, every field present and of its type."""
    if not isinstance(d, dict):
        raise WireError("record must be an object")
    values: dict[str, Any] = {}
    for name, typ in _RECORD_TYPES.items():
        if name not in d:
            raise WireError(f"record field {name!r} is missing")
        v, want = d[name], _PY[str(typ)]
        if not isinstance(v, want) or (want is int and isinstance(v, bool)):
            raise WireError(f"record field {name!r} must be {typ}, got {type(v).__name__}")
        values[name] = float(v) if typ == "float" else v  # type: ignore[arg-type]  # checked above
    if not values["video_id"] or len(values["video_id"]) > 512:
        raise WireError("record video_id must be 1..512 characters")
    return VideoRecord(**values)


# ------------------------------------------------------------------------------ messages


def encode_search(query: np.ndarray, k: int, max_candidates: int) -> bytes:
    """query: float32 [q, 512] rows (all views of the query video)."""
    return encode(
        {"k": int(k), "max_candidates": int(max_candidates)},
        {"query": np.asarray(query, np.float32)},
    )


def decode_search(body: bytes) -> tuple[np.ndarray, int, int]:
    """(query float32 [q, 512], k, max_candidates)."""
    meta, arrays = decode(body)
    query = _array(arrays, "query", ("f4", "f2"), (None, DIM))
    if not 1 <= len(query) <= MAX_QUERY_ROWS:
        raise WireError(f"query must have 1..{MAX_QUERY_ROWS} rows, got {len(query)}")
    k = _int(meta, "k", 1, 4096)
    m = _int(meta, "max_candidates", 1, MAX_CANDIDATES)
    return query.astype(np.float32), k, m


def encode_candidates(cands: list[Candidate]) -> bytes:
    """Per-video evidence; descriptors and audio as float16 (the stored precision)."""
    meta = {
        "candidates": [
            {
                "video_id": c.video_id,
                "root_id": c.root_id,
                "duration_s": float(c.duration_s),
                "retrieval": float(c.retrieval),
                "rows": int(len(c.descriptors)),
                "audio_rows": int(len(c.audio)),
            }
            for c in cands
        ]
    }

    def cat(parts, shape, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype)

    arrays = {
        "descriptors": cat([c.descriptors for c in cands], (0, DIM), np.float16),
        "views": cat([c.views for c in cands], (0,), np.int8),
        "row_times": cat([c.row_times for c in cands], (0,), np.float32),
        "audio": cat([c.audio for c in cands], (0, AUDIO_DIM), np.float16),
    }
    return encode(meta, arrays)


def decode_candidates(body: bytes) -> list[Candidate]:
    meta, arrays = decode(body)
    items = meta.get("candidates")
    if not isinstance(items, list) or len(items) > MAX_CANDIDATES:
        raise WireError(f"candidates must be a list of at most {MAX_CANDIDATES} entries")
    desc = _array(arrays, "descriptors", ("f2", "f4"), (None, DIM))
    views = _array(arrays, "views", ("i1",), (len(desc),))
    times = _array(arrays, "row_times", ("f4",), (len(desc),))
    audio = _array(arrays, "audio", ("f2", "f4"), (None, AUDIO_DIM))
    out, r, w = [], 0, 0
    for it in items:
        if not isinstance(it, dict):
            raise WireError("candidate must be an object")
        n, na = it.get("rows"), it.get("audio_rows")
        if (
            not isinstance(n, int)
            or not isinstance(na, int)
            or n < 1
            or na < 0
            or not isinstance(it.get("video_id"), str)
            or not isinstance(it.get("root_id"), str)
            or not isinstance(it.get("duration_s"), (int, float))
            or not isinstance(it.get("retrieval"), (int, float))
        ):
            raise WireError(f"malformed candidate {str(it)[:200]}")
        if r + n > len(desc) or w + na > len(audio):
            raise WireError("candidate row counts exceed the arrays")
        out.append(
            Candidate(
                video_id=it["video_id"],
                root_id=it["root_id"],
                descriptors=desc[r : r + n].astype(np.float32),
                views=views[r : r + n].copy(),
                row_times=times[r : r + n].copy(),
                audio=audio[w : w + na].astype(np.float32),
                duration_s=float(it["duration_s"]),
                retrieval=float(it["retrieval"]),
            )
        )
        r, w = r + n, w + na
    if r != len(desc) or w != len(audio):
        raise WireError("arrays hold rows that no candidate claims")
    return out


def encode_add(record: VideoRecord, rows: StoredRows | None, pending: bool = False) -> bytes:
    meta = {"record": record.to_dict(), "pending": bool(pending), "has_rows": rows is not None}
    arrays: dict[str, np.ndarray] = {}
    if rows is not None:
        arrays = {
            "descriptors": np.asarray(rows.descriptors, np.float16),
            "views": np.asarray(rows.views, np.int8),
            "times": np.asarray(rows.times, np.float32),
            "audio": np.asarray(rows.audio, np.float16),
        }
    return encode(meta, arrays)


def decode_add(body: bytes) -> tuple[VideoRecord, StoredRows | None, bool]:
    """(record, rows or None, pending)."""
    meta, arrays = decode(body)
    record = record_from_dict(meta.get("record"))
    pending, has_rows = meta.get("pending"), meta.get("has_rows")
    if not isinstance(pending, bool) or not isinstance(has_rows, bool):
        raise WireError("pending and has_rows must be booleans")
    if not has_rows:
        if arrays:
            raise WireError("has_rows is false but the frame carries arrays")
        return record, None, pending
    desc = _array(arrays, "descriptors", ("f2", "f4"), (None, DIM))
    if not 1 <= len(desc) <= 100_000:
        raise WireError(f"a video has 1..100000 descriptor rows, got {len(desc)}")
    views = _array(arrays, "views", ("i1",), (len(desc),))
    times = _array(arrays, "times", ("f4",), (len(desc),))
    audio = _array(arrays, "audio", ("f2", "f4"), (None, AUDIO_DIM))
    return record, StoredRows(desc, views, times, audio), pending
