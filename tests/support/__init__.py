"""What tests share: where the repository and the benchmark are, generated media
(``support.media``), a loopback file server (``support.fileserver``) and real shard processes
(``support.shards``). The tests folder is on ``sys.path`` (pytest's rootdir conftest), so
``from support.media import make_video`` works from every test module."""

from __future__ import annotations

from pathlib import Path

#: The repository root (this file is tests/support/__init__.py).
REPO = Path(__file__).resolve().parent.parent.parent
#: ``../shared`` beside the clone: the benchmark. Tests that need it skip when it is absent.
SHARED = REPO.parent / "shared"
