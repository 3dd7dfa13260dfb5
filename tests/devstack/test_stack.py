"""``vdup up`` as a library: the API process in front of two shard processes, end to end with
real generated videos, and ``vdup indexer --train`` on a stopped shard."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from support.shards import free_port, record, scene
from vdup.catalog.local import LocalCatalog
from vdup.devstack.stack import LocalStack

pytestmark = pytest.mark.slow  # the local stack's processes


def test_local_stack_serves_checks_through_two_shards(tmp_path, videos):
    stack = LocalStack(
        2,
        triton=False,
        data_root=tmp_path,
        api_port=free_port(),
        shard_ports=[free_port(), free_port()],
    )
    with stack:
        with httpx.Client(base_url=stack.api_url, timeout=60) as api:
            first = api.post(
                "/videos", files={"file": ("orig.mp4", videos["orig"])}, data={"uuid": "orig"}
            )
            assert first.status_code == 200 and not first.json()["is_duplicate"], first.text
            copy = api.post(
                "/videos", files={"file": ("flip.mp4", videos["flip"])}, data={"uuid": "flip"}
            )
            assert copy.json()["is_duplicate"] and copy.json()["duplicate_for"] == "orig"
            ready = api.get("/readyz").json()
            assert ready["catalog"]["videos"] == 2 and len(ready["catalog"]["shards"]) == 2
        for url in stack.shard_urls:
            assert httpx.get(url + "/metrics").text.count("vdup_shard_vectors{") == 1
    assert not any(p.running() for p in stack.shards)


def test_train_subcommand_builds_a_compressed_index_from_stored_rows(tmp_path):
    cat = LocalCatalog(tmp_path, index_factory="IVF8,Flat")
    for i in range(150):
        cat.add(record(f"v{i}", i + 1), scene(i))
    cat.close()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vdup.cli",
            "indexer",
            "--data",
            str(tmp_path),
            "--index-factory",
            "IVF8,Flat",
            "--train",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["factory"] == "IVF8,Flat" and out["vectors"] == 1200
    again = LocalCatalog(tmp_path, index_factory="IVF8,Flat")
    assert again.stats()["index"] == "IVF8,Flat" and again.unsnapshotted_rows == 0
    again.close()
