"""The FAISS snapshot of a catalog directory: ``index.faiss`` (the serialized index) and
``index.json`` (its checkpoint: what it covers). Both are written to a temporary file, fsynced
and renamed, the checkpoint last, so a crash leaves the old pair or the new one. ``read``
refuses a pair that is not this catalog's, damaged, or of another index type, with the reason;
the catalog then rebuilds from SQLite, which loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Buffer
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss

from vdup.features.types import DIM

INDEX_FILE, CHECKPOINT_FILE = "index.faiss", "index.json"


class SnapshotUnusable(ValueError):
    """The snapshot cannot be used (the message says why); rebuild from the rows."""


@dataclass(frozen=True)
class Checkpoint:
    """What a snapshot covers: rows up to ``max_row_id`` and deletions up to ``deletion_seq``
    of catalog ``catalog_id``; ``ntotal`` rows in an index of ``factory``; ``written_at`` Unix
    s; ``sha256`` of the index file."""

    catalog_id: str
    max_row_id: int
    deletion_seq: int
    ntotal: int
    factory: str
    written_at: float
    sha256: str = ""


def exists(directory: Path) -> bool:
    """Whether either snapshot file is there."""
    return (directory / INDEX_FILE).exists() or (directory / CHECKPOINT_FILE).exists()


def write(directory: Path, data: Buffer, checkpoint: Checkpoint) -> Checkpoint:
    """Write the serialized index ``data`` and then its checkpoint (with the index's sha256,
    which the returned checkpoint carries)."""
    done = Checkpoint(**{**asdict(checkpoint), "sha256": hashlib.sha256(data).hexdigest()})
    atomic_write(directory / INDEX_FILE, data)
    atomic_write(directory / CHECKPOINT_FILE, json.dumps(asdict(done)).encode())
    return done


def read(
    directory: Path, catalog_id: str, factories: tuple[str, ...]
) -> tuple[faiss.Index, Checkpoint]:
    """The index and checkpoint of ``directory``'s snapshot; SnapshotUnusable when it is not
    catalog ``catalog_id``'s, its checksum or shape is wrong, or its type is not in
    ``factories``. OSError when a file is missing or unreadable."""
    try:
        meta = json.loads((directory / CHECKPOINT_FILE).read_text())
        if not isinstance(meta, dict):
            raise SnapshotUnusable("index.json is not an object")
        cp = Checkpoint(
            catalog_id=str(meta["catalog_id"]),
            max_row_id=int(meta["max_row_id"]),
            deletion_seq=int(meta["deletion_seq"]),
            ntotal=int(meta.get("ntotal", -1)),
            factory=str(meta["factory"]),
            written_at=float(meta.get("written_at", 0.0)),
            sha256=str(meta["sha256"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotUnusable(f"index.json: {exc}") from None
    if cp.catalog_id != catalog_id:
        raise SnapshotUnusable("it belongs to another catalog")
    if cp.factory not in factories:
        raise SnapshotUnusable(
            f"it is a {cp.factory!r} index, the catalog is set to {factories[0]!r}"
        )
    with open(directory / INDEX_FILE, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != cp.sha256:
        raise SnapshotUnusable("checksum mismatch")
    try:
        index = faiss.read_index(str(directory / INDEX_FILE))
    except RuntimeError as exc:
        raise SnapshotUnusable(f"FAISS cannot read it: {exc}") from None
    if index.d != DIM or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise SnapshotUnusable(f"dimension {index.d} / metric {index.metric_type}")
    return index, cp


def atomic_write(path: Path, data: Buffer) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
