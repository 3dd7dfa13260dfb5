"""Shared fixtures: generated videos, one embedded extractor per session (models load once), and
one real PostgreSQL server per session with a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support import SHARED
from support.media import make_video

if TYPE_CHECKING:
    from vdup.devstack.postgres import PostgresServer

DEV_MANIFEST = SHARED / "bench" / "dev" / "manifest.csv"


@pytest.fixture(scope="session")
def extractor():
    from vdup.features.extractor import EmbeddedExtractor

    return EmbeddedExtractor()


@pytest.fixture(scope="session")
def videos() -> dict[str, bytes]:
    """A small family of real encoded clips: originals, edited copies and look-alikes."""
    return {
        "orig": make_video(1),
        "orig_b": make_video(2),
        "flip": make_video(1, hflip=True, audio_seed=21),
        "trim_crop": make_video(1, crop=0.1, start_s=1.0, duration_s=3.0),
        "copy_of_flip": make_video(1, hflip=True, crop=0.05, audio_seed=22),
        "same_audio": make_video(3, audio_seed=1),
        "no_audio": make_video(4, with_audio=False),
    }


@pytest.fixture
def dev_manifest() -> Path:
    if not DEV_MANIFEST.exists():
        pytest.skip(f"the shared dev benchmark is not here ({DEV_MANIFEST}); see README")
    return DEV_MANIFEST


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server on 127.0.0.1 for the whole run (fsync off), stopped at the end;
    skipped where the server binaries are not installed."""
    from support.postgres import running_server

    with running_server() as server:
        yield server


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database on ``postgres_server``, dropped after the test."""
    from support.postgres import fresh_database

    with fresh_database(postgres_server) as url:
        yield url
