"""kill -9 while the catalog is writing: every add that returned before the kill is there after a
restart, searchable, and nothing half-written is.

A child process adds videos as fast as it can (snapshots every two videos, so the kill also lands
inside snapshot writes) and prints each id once ``add`` has returned; the test SIGKILLs it at a
varying moment, reopens the directory, and compares. Three rounds share one directory, so each
restart also recovers from the previous kill's leftovers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np

from vdup.catalog.local import LocalCatalog

CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from vdup.catalog.local import LocalCatalog
    from vdup.catalog.types import VideoRecord
    from vdup.features.types import VideoFeatures

    def features(seed):
        f = np.random.default_rng(seed).standard_normal((6, 512)).astype(np.float32)
        f /= np.linalg.norm(f, axis=1, keepdims=True)
        z = np.zeros((0, 512), np.float32)
        return VideoFeatures(np.arange(6, dtype=np.float32), f, f[:, ::-1].copy(), z, z,
                             np.zeros((0, 128), np.float32), 6.0, f"sha{seed}")

    cat = LocalCatalog(sys.argv[1], snapshot_every=12)
    seed = int(sys.argv[2])
    print("ready", flush=True)
    while True:
        vid = f"v{seed}"
        cat.add(VideoRecord(vid, vid, f"sha{seed}", False, "", "", 0.0, "", 6.0, 6, 0.0),
                features(seed))
        print(vid, flush=True)
        seed += 1
""")


def query(seed: int) -> np.ndarray:
    f = np.random.default_rng(seed).standard_normal((6, 512)).astype(np.float32)
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def test_sigkill_mid_write_loses_nothing_acknowledged(tmp_path):
    acked: list[str] = []
    for round_, kill_after in enumerate((5, 23, 41)):
        with subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), str(len(acked))],
            stdout=subprocess.PIPE,
            text=True,
        ) as child:
            assert child.stdout.readline().strip() == "ready"
            for _ in range(kill_after):
                acked.append(child.stdout.readline().strip())
            os.kill(child.pid, signal.SIGKILL)
            acked.extend(line.strip() for line in child.stdout)  # acked while it was killed
        assert child.returncode == -signal.SIGKILL

        catalog = LocalCatalog(tmp_path)
        try:
            stored = {r.video_id for r in catalog.list(limit=1000)}
            assert set(acked) <= stored, (round_, sorted(set(acked) - stored))
            assert len(stored - set(acked)) <= 1  # at most the add the kill interrupted
            assert catalog.stats()["vectors"] == 6 * len(stored)
            for vid in (acked[0], acked[-1]):
                best = catalog.search_vectors(query(int(vid[1:])), False, 8, 1)
                assert best[0].video_id == vid
        finally:
            catalog.close()
        acked = sorted(stored, key=lambda v: int(v[1:]))  # the next child goes on after them
