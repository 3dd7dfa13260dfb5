import numpy as np
import pytest

from vdup.catalog.local import CatalogCorrupt, LocalCatalog
from vdup.catalog.types import VideoRecord
from vdup.features.types import VideoFeatures


def features(seed: int, n: int = 6) -> VideoFeatures:
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((n, 512)).astype(np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    return VideoFeatures(
        timestamps=np.arange(n, dtype=np.float32), frames=f, flipped=f[:, ::-1].copy(),
        region=np.zeros((0, 512), np.float32), region_flipped=np.zeros((0, 512), np.float32),
        audio=np.zeros((0, 128), np.float32), duration_s=float(n), sha256=f"sha{seed}",
    )


def record(vid: str, seed: int) -> VideoRecord:
    return VideoRecord(vid, vid, f"sha{seed}", False, "", "", 0.0, "", 6.0, 6, float(seed))


def test_search_finds_the_stored_video_first(tmp_path):
    cat = LocalCatalog(tmp_path)
    for i in range(5):
        cat.add(record(f"v{i}", i), features(i))
    cands = cat.search(features(3), k=8, max_candidates=3)
    assert cands[0].video_id == "v3" and cands[0].retrieval > 0.99
    assert cands[0].descriptors.shape == (6, 512)
    cat.close()


def test_restart_keeps_everything_acknowledged_even_without_a_clean_close(tmp_path):
    cat = LocalCatalog(tmp_path, snapshot_every=4)
    for i in range(5):
        cat.add(record(f"v{i}", i), features(i))
    cat.delete("v1")
    del cat  # no close(): the last rows and the deletion are only in SQLite
    again = LocalCatalog(tmp_path)
    assert again.get("v4") is not None and again.get("v1") is None
    assert again.stats()["vectors"] == 4 * 6
    assert [c.video_id for c in again.search(features(4), 8, 1)] == ["v4"]
    assert again.find_sha256("sha2").video_id == "v2"
    again.close()


def test_a_duplicate_id_is_refused_and_leaves_the_catalog_unchanged(tmp_path):
    import sqlite3

    cat = LocalCatalog(tmp_path)
    cat.add(record("v0", 0), features(0))
    with pytest.raises(sqlite3.IntegrityError):
        cat.add(record("v0", 1), features(1))
    assert cat.stats() == {"videos": 1, "vectors": 6, "index": "Flat"}
    cat.close()


def test_a_foreign_file_as_catalog_stops_start_up_with_a_clear_error(tmp_path):
    (tmp_path / "catalog.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(CatalogCorrupt, match="not a vdup catalog"):
        LocalCatalog(tmp_path)


def test_a_corrupt_snapshot_is_rebuilt_without_loss(tmp_path):
    cat = LocalCatalog(tmp_path)
    for i in range(3):
        cat.add(record(f"v{i}", i), features(i))
    cat.close()
    (tmp_path / "index.faiss").write_bytes(b"garbage")
    again = LocalCatalog(tmp_path)
    assert again.stats()["vectors"] == 18
    again.close()
